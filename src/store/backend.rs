//! The small storage trait under the bank store: ordered key-value column families with atomic
//! batches. Two implementations: RocksDB (the embedded default) and an in-memory map for tests.
//! All bank logic lives above it, in one place, so both behave the same by construction.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Options, ReadOptions,
    WriteBatch, WriteOptions,
};

use super::StoreError;
use super::keys::Cf;

/// One mutation inside an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set a key in a column family: `(cf, key, value)`.
    Put(Cf, Vec<u8>, Vec<u8>),
    /// Remove a key from a column family: `(cf, key)`; an absent key is no error.
    Delete(Cf, Vec<u8>),
}

/// Visitor of a scan: return `Ok(false)` to stop early.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// Ordered key-value storage in column families ([`Cf`]) with atomic batches: what
/// [`Store`](super::Store) needs of a database. Keys compare as unsigned bytes.
pub trait Backend: Send + Sync {
    /// The value stored under `key` in `cf`, or `None`. Errors: [`StoreError::Backend`].
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Apply every op or none. Returns once the batch is durable as configured (synced WAL by default).
    fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
    /// Visit keys in `[start, end)` (`end = None`: to the last key) in ascending order.
    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError>;
    /// The greatest key of a column family.
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError>;
    /// Compact everything (bulk loads in benchmarks); a no-op where meaningless.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Visit every key and value of every column family (in `Cf::ALL` order, keys ascending) as
    /// of one instant: writes that land during the visit are not seen. For snapshots
    /// (`store::snapshot`), which must name exactly the changes they cover.
    fn scan_all_at_once(&self, visit: &mut VisitAll<'_>) -> Result<(), StoreError>;
    /// Make every write acknowledged so far durable (after writes made without a synced WAL).
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Make every write acknowledged so far survive power loss by syncing the write-ahead log
    /// only (no memtable flush): one fsync for a group of unsynced writes. A no-op where
    /// meaningless.
    fn sync_wal(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Visitor of [`Backend::scan_all_at_once`]: column family, key, value.
pub type VisitAll<'a> = dyn FnMut(Cf, &[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// The in-memory backend: one ordered map per column family behind one lock.
/// One ordered map per column family, indexed by `Cf as usize`.
type CfMaps = [BTreeMap<Vec<u8>, Vec<u8>>; 5];

/// An in-memory [`Backend`] for tests: one ordered map per column family behind one lock;
/// nothing outlives the value.
#[derive(Default)]
pub struct MemoryBackend {
    maps: Mutex<CfMaps>,
}

impl MemoryBackend {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, CfMaps>, StoreError> {
        self.maps
            .lock()
            .map_err(|_| StoreError::Backend("in-memory store lock poisoned".into()))
    }
}

impl Backend for MemoryBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?[cf as usize].get(key).cloned())
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let mut maps = self.lock()?;
        for op in ops {
            match op {
                WriteOp::Put(cf, k, v) => {
                    maps[cf as usize].insert(k, v);
                }
                WriteOp::Delete(cf, k) => {
                    maps[cf as usize].remove(&k);
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        // Visit a snapshot in chunks so a visitor may call back into the store without deadlock.
        let mut from = Bound::Included(start.to_vec());
        loop {
            let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
                let maps = self.lock()?;
                let upper = end.map_or(Bound::Unbounded, |e| Bound::Excluded(e.to_vec()));
                maps[cf as usize]
                    .range((from.clone(), upper))
                    .take(1024)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            let Some((last, _)) = chunk.last() else {
                return Ok(());
            };
            from = Bound::Excluded(last.clone());
            for (k, v) in &chunk {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
        }
    }

    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?[cf as usize].keys().next_back().cloned())
    }

    fn scan_all_at_once(&self, visit: &mut VisitAll<'_>) -> Result<(), StoreError> {
        // A copy taken under the lock is the instant; the visitor runs without the lock.
        let copy = self.lock()?.clone();
        for cf in Cf::ALL {
            for (k, v) in &copy[cf as usize] {
                visit(cf, k, v)?;
            }
        }
        Ok(())
    }
}

/// How the RocksDB backend is opened.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// fsync the WAL before acknowledging a write. On by default: an acknowledged write survives
    /// power loss, not only a process crash. Bulk loads in benchmarks turn it off.
    pub sync_writes: bool,
    /// Block cache size in bytes (shared by all column families).
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            sync_writes: true,
            block_cache_bytes: 32 << 20,
        }
    }
}

/// The RocksDB [`Backend`]: one column family per [`Cf`], its data directory held exclusively
/// (RocksDB's `LOCK` file) while open.
pub struct RocksBackend {
    db: DB,
    write_options: WriteOptions,
    path: PathBuf,
}

impl RocksBackend {
    /// One tuned `Options` for every column family. Workload: small values, point reads by key,
    /// long sequential scans at start-up and export, writes in batches.
    fn options(config: &RocksOptions) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Hash bytes are random: compression would cost CPU and save nothing.
        opts.set_compression_type(DBCompressionType::None);
        opts.set_max_background_jobs(2);
        opts.set_level_compaction_dynamic_level_bytes(true);
        opts.set_write_buffer_size(64 << 20);
        opts.set_bytes_per_sync(1 << 20);
        // Bounded open files keep the resident footprint predictable on large stores.
        opts.set_max_open_files(512);
        opts.set_keep_log_file_num(4);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&rocksdb::Cache::new_lru_cache(config.block_cache_bytes));
        // The (bank, external id) lookup on every add is a point read: a Bloom filter saves a disk
        // read for ids not yet present (10 bits per key, ~1% false positives).
        table.set_bloom_filter(10.0, false);
        table.set_block_size(16 << 10);
        opts.set_block_based_table_factory(&table);
        opts
    }

    /// Opens (creating if missing) the RocksDB database in directory `path`, with every column
    /// family. Errors: [`StoreError::Locked`] when another process holds it, else
    /// [`StoreError::Backend`].
    pub fn open(path: &Path, config: &RocksOptions) -> Result<RocksBackend, StoreError> {
        let opts = Self::options(config);
        let descriptors = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Self::options(config)));
        let db =
            DB::open_cf_descriptors(&opts, path, descriptors).map_err(|e| open_error(path, e))?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(config.sync_writes);
        Ok(RocksBackend {
            db,
            write_options,
            path: path.to_path_buf(),
        })
    }

    /// The data directory this backend was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StoreError::Corrupt(format!("column family {} missing", cf.name())))
    }
}

/// RocksDB takes an exclusive `flock` on `<dir>/LOCK` and fails at once when another process holds
/// it: turn that into an error that says what to do.
fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    let message = e.to_string();
    if message.contains("LOCK") || message.contains("lock file") || message.contains("lock hold") {
        StoreError::Locked(path.to_path_buf())
    } else {
        StoreError::Backend(format!("cannot open {}: {message}", path.display()))
    }
}

fn backend_error(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Backend for RocksBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(backend_error)
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                WriteOp::Put(cf, k, v) => batch.put_cf(self.cf(cf)?, k, v),
                WriteOp::Delete(cf, k) => batch.delete_cf(self.cf(cf)?, k),
            }
        }
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(backend_error)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let mut read = ReadOptions::default();
        // Scans are start-up loads and exports: read ahead, and do not evict the hot point-read
        // blocks from the cache with a one-pass sweep.
        read.set_readahead_size(4 << 20);
        read.fill_cache(false);
        if let Some(end) = end {
            read.set_iterate_upper_bound(end.to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, read);
        it.seek(start);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !visit(k, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(backend_error)
    }

    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf)?);
        it.seek_to_last();
        let key = it.key().map(<[u8]>::to_vec);
        it.status().map_err(backend_error)?;
        Ok(key)
    }

    fn compact(&self) -> Result<(), StoreError> {
        for cf in Cf::ALL {
            self.db
                .compact_range_cf(self.cf(cf)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn scan_all_at_once(&self, visit: &mut VisitAll<'_>) -> Result<(), StoreError> {
        // One RocksDB snapshot for every column family: a consistent view across them.
        let snapshot = self.db.snapshot();
        for cf in Cf::ALL {
            let mut read = ReadOptions::default();
            read.set_readahead_size(4 << 20);
            read.fill_cache(false);
            read.set_snapshot(&snapshot);
            let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, read);
            it.seek_to_first();
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                visit(cf, k, v)?;
                it.next();
            }
            it.status().map_err(backend_error)?;
        }
        Ok(())
    }

    fn sync_wal(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(backend_error)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(backend_error)?;
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(backend_error)?;
        }
        Ok(())
    }
}

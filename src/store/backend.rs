//! The small storage trait under the bank store: ordered key-value column families with atomic
//! batches. Two implementations: RocksDB (the embedded default) and an in-memory map for tests.
//! All bank logic lives above it, in one place, so both behave the same by construction.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "store")]
use std::{
    path::Path,
    sync::RwLock,
    time::{Duration, Instant},
};

#[cfg(feature = "store")]
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
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
    /// Visit keys in `[start, end)` (`end = None`: to the last key) in ascending order; an `end`
    /// at or before `start` visits nothing.
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
    /// False while writes are refused for want of space ([`StoreError::StorageFull`]); reads go on.
    fn writes_available(&self) -> bool {
        true
    }
    /// When writes are refused for want of space, try to take them again (a probe write, after a
    /// reopen where needed). `Ok` once writes are available; [`StoreError::StorageFull`] while the
    /// disk is still full. Called by a periodic check so that health recovers without a client
    /// write.
    fn try_resume(&self) -> Result<(), StoreError> {
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

impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cf, key)
    }
    fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        (**self).write(ops)
    }
    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        (**self).scan(cf, start, end, visit)
    }
    fn last_key(&self, cf: Cf) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).last_key(cf)
    }
    fn compact(&self) -> Result<(), StoreError> {
        (**self).compact()
    }
    fn writes_available(&self) -> bool {
        (**self).writes_available()
    }
    fn try_resume(&self) -> Result<(), StoreError> {
        (**self).try_resume()
    }
    fn scan_all_at_once(&self, visit: &mut VisitAll<'_>) -> Result<(), StoreError> {
        (**self).scan_all_at_once(visit)
    }
    fn flush(&self) -> Result<(), StoreError> {
        (**self).flush()
    }
    fn sync_wal(&self) -> Result<(), StoreError> {
        (**self).sync_wal()
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
    /// Fault injection: while set, writes fail as on a full disk.
    full: AtomicBool,
}

impl MemoryBackend {
    /// Fault injection for tests: while `full` is true every write fails with
    /// [`StoreError::StorageFull`], as a RocksDB store on a full disk does; reads go on.
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Release);
    }

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
        if self.full.load(Ordering::Acquire) {
            return Err(StoreError::StorageFull(
                "No space left on device (simulated)".into(),
            ));
        }
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
                // An end at or before the start is an empty range, as RocksDB's iterator bounds
                // give it (`BTreeMap::range` would panic on it).
                if end.is_some_and(|e| e <= start) {
                    return Ok(());
                }
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

    fn writes_available(&self) -> bool {
        !self.full.load(Ordering::Acquire)
    }

    fn try_resume(&self) -> Result<(), StoreError> {
        if self.writes_available() {
            Ok(())
        } else {
            Err(StoreError::StorageFull(
                "No space left on device (simulated)".into(),
            ))
        }
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

    fn sync_wal(&self) -> Result<(), StoreError> {
        // Nothing to sync in memory; a simulated full disk refuses it as RocksDB's fsync would.
        self.try_resume()
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
    /// Create a store when the directory does not exist yet or is empty (the admin commands that
    /// write, and tests). `false` opens only an existing store: `vigie serve` uses it so that a
    /// mistyped or unmounted `--data-dir` is refused instead of served empty. Either way a
    /// directory that holds files but no RocksDB `CURRENT` is refused, never re-created over.
    pub create_if_missing: bool,
    /// What to do when the write-ahead log is damaged before its last record.
    pub wal_recovery: WalRecovery,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            sync_writes: true,
            block_cache_bytes: 32 << 20,
            create_if_missing: true,
            wal_recovery: WalRecovery::Strict,
        }
    }
}

/// How RocksDB replays the write-ahead log at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalRecovery {
    /// Refuse to open when a record before the log's last one is damaged (RocksDB's
    /// `kTolerateCorruptedTailRecords`): such a record was acknowledged (writes are acknowledged
    /// once their whole record is synced), so opening past it would drop acknowledged writes in
    /// silence. Only an incomplete *last* record is tolerated: a crash in the middle of writing it
    /// means it was never acknowledged. (`kAbsoluteConsistency` would also refuse that torn tail,
    /// so every crash during a large batch would need an operator.)
    #[default]
    Strict,
    /// Keep every record before the first damaged one and drop the rest (RocksDB's
    /// `kPointInTimeRecovery`). Only on the operator's explicit request: before opening, the
    /// write-ahead log files are copied aside, and [`RocksBackend::recovery_report`] says what
    /// the open dropped.
    PointInTime,
}

/// What a point-in-time recovery dropped (see [`WalRecovery::PointInTime`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Where the write-ahead log files were copied before the open.
    pub wal_copy: PathBuf,
    /// Write batches found in the copied log (each vigie change is one batch).
    pub batches_in_log: u64,
    /// Batches at or below the recovered sequence number: kept.
    pub batches_kept: u64,
    /// Batches past the recovered sequence number, or unreadable: dropped.
    pub batches_dropped: u64,
    /// Key-value operations inside the dropped batches that could be read.
    pub operations_dropped: u64,
    /// Bytes of log from the first damaged record to the end.
    pub bytes_after_damage: u64,
    /// The last sequence number the store holds after the open.
    pub recovered_sequence: u64,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "point-in-time recovery: kept {} of {} write batches in the log, dropped {} \
             ({} operations readable, {} bytes of log from the damage on); the store now ends at \
             sequence {}; the original log files are in {}",
            self.batches_kept,
            self.batches_in_log,
            self.batches_dropped,
            self.operations_dropped,
            self.bytes_after_damage,
            self.recovered_sequence,
            self.wal_copy.display()
        )
    }
}

#[cfg(feature = "store")]
/// The open database and whether it accepts writes.
enum Handle {
    /// The normal state.
    ReadWrite(DB),
    /// After a disk-full error whose reopen could not yet write: reads go on, writes are refused
    /// with [`StoreError::StorageFull`] until a reopen succeeds.
    ReadOnly(DB),
}

#[cfg(feature = "store")]
impl Handle {
    fn db(&self) -> &DB {
        match self {
            Handle::ReadWrite(db) | Handle::ReadOnly(db) => db,
        }
    }
}

#[cfg(feature = "store")]
/// The RocksDB backend. A write that fails because the disk is full marks the store full; later
/// writes (and [`Backend::try_resume`]) reopen the database, at most once a second, until space
/// is back. RocksDB stops all writes after such an error and resumes on its own only once free
/// space reaches its reserve (the largest write buffer, 64 MiB here), polled every 5 s; a reopen
/// replays the log and resumes as soon as the replay can be written.
pub struct RocksBackend {
    handle: RwLock<Handle>,
    config: RocksOptions,
    write_options: WriteOptions,
    path: PathBuf,
    /// Set by a disk-full error, cleared by the first write that succeeds.
    full: AtomicBool,
    /// When the last reopen was tried (throttles reopen attempts).
    last_reopen: Mutex<Option<Instant>>,
    recovery: Option<RecoveryReport>,
}

#[cfg(feature = "store")]
/// What a directory holds, judged before RocksDB is let near it.
enum DirState {
    /// Has a `CURRENT` file: an existing store (or one RocksDB will say is damaged).
    Store,
    /// Missing or empty: a store may be created there.
    Absent,
}

#[cfg(feature = "store")]
fn inspect_dir(path: &Path) -> Result<DirState, StoreError> {
    let shown = path.display();
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Absent),
        Err(e) => {
            return Err(StoreError::NotAStore(format!(
                "cannot read the data directory {shown}: {e}"
            )));
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            StoreError::NotAStore(format!("cannot read the data directory {shown}: {e}"))
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.iter().any(|n| n == "CURRENT") {
        return Ok(DirState::Store);
    }
    if names.is_empty() {
        return Ok(DirState::Absent);
    }
    let rocks_files: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.ends_with(".sst")
                || n.ends_with(".log")
                || n.starts_with("MANIFEST-")
                || n.starts_with("OPTIONS-")
                || *n == "IDENTITY"
        })
        .collect();
    if rocks_files.is_empty() {
        Err(StoreError::NotAStore(format!(
            "{shown} is not empty and holds no vigie store; point --data-dir at a store or at a \
             directory that does not exist yet"
        )))
    } else {
        let mut shown_files: Vec<&str> = rocks_files.iter().take(5).map(|s| s.as_str()).collect();
        shown_files.sort_unstable();
        Err(StoreError::Damaged(format!(
            "{shown} holds RocksDB files ({}{}) but no CURRENT file, which names the live \
             MANIFEST; vigie never re-creates a store over them (that would delete them): \
             restore CURRENT or the store from a backup",
            shown_files.join(", "),
            if rocks_files.len() > 5 {
                format!(" and {} more", rocks_files.len() - 5)
            } else {
                String::new()
            }
        )))
    }
}

#[cfg(feature = "store")]
impl RocksBackend {
    /// One tuned `Options` for every column family. Workload: small values, point reads by key,
    /// long sequential scans at start-up and export, writes in batches.
    fn options(config: &RocksOptions, create: bool) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(create);
        opts.create_missing_column_families(true);
        // Check every block and file read against its checksum, and stop on any inconsistency,
        // rather than serve what a damaged file happens to hold.
        opts.set_paranoid_checks(true);
        opts.set_wal_recovery_mode(match config.wal_recovery {
            WalRecovery::Strict => DBRecoveryMode::TolerateCorruptedTailRecords,
            WalRecovery::PointInTime => DBRecoveryMode::PointInTime,
        });
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

    /// Opens the store in `path`: an existing one, or a new one where `config.create_if_missing`
    /// allows and the directory does not exist yet or is empty. Errors: [`StoreError::NotAStore`]
    /// (nothing to open, or a directory that is not a store), [`StoreError::Damaged`] (files
    /// RocksDB cannot read, a damaged log under [`WalRecovery::Strict`]), [`StoreError::Locked`].
    pub fn open(path: &Path, config: &RocksOptions) -> Result<RocksBackend, StoreError> {
        let create = match inspect_dir(path)? {
            DirState::Store => false,
            DirState::Absent if config.create_if_missing => true,
            DirState::Absent => {
                return Err(StoreError::NotAStore(format!(
                    "no vigie store in {} (the directory is missing or empty); check \
                     --data-dir, or create a store with `vigie keys create` or `vigie bank create`",
                    path.display()
                )));
            }
        };
        let wal_copy = match config.wal_recovery {
            WalRecovery::PointInTime if !create => Some(super::wal::copy_aside(path)?),
            _ => None,
        };
        let db = Self::open_db(path, config, create, false)?;
        let recovery = match wal_copy {
            Some(copy) => Some(super::wal::report(&copy, db.latest_sequence_number())?),
            None => None,
        };
        let mut write_options = WriteOptions::default();
        write_options.set_sync(config.sync_writes);
        Ok(RocksBackend {
            handle: RwLock::new(Handle::ReadWrite(db)),
            config: config.clone(),
            write_options,
            path: path.to_path_buf(),
            full: AtomicBool::new(false),
            last_reopen: Mutex::new(None),
            recovery,
        })
    }

    fn open_db(
        path: &Path,
        config: &RocksOptions,
        create: bool,
        read_only: bool,
    ) -> Result<DB, StoreError> {
        let opts = Self::options(config, create);
        let descriptors = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Self::options(config, create)));
        let opened = if read_only {
            DB::open_cf_descriptors_read_only(&opts, path, descriptors, false)
        } else {
            DB::open_cf_descriptors(&opts, path, descriptors)
        };
        opened.map_err(|e| open_error(path, e))
    }

    /// The data directory this backend was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What a [`WalRecovery::PointInTime`] open dropped; `None` for a strict open.
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.recovery.as_ref()
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Handle>, StoreError> {
        self.handle
            .read()
            .map_err(|_| StoreError::Backend("store handle lock poisoned".into()))
    }

    /// Close and reopen the database so that RocksDB replays its log into a fresh state after a
    /// disk-full stop. At most once a second; never waits for readers (a scan in progress just
    /// defers it). When the read-write open fails (still no space), the store is reopened
    /// read-only so that reads go on.
    fn reopen(&self) -> Result<(), StoreError> {
        {
            let mut last = self
                .last_reopen
                .lock()
                .map_err(|_| StoreError::Backend("reopen lock poisoned".into()))?;
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return Err(storage_full("the disk is still full"));
            }
            *last = Some(Instant::now());
        }
        let Ok(mut guard) = self.handle.try_write() else {
            return Err(storage_full(
                "the disk is full (reopen deferred: store busy)",
            ));
        };
        // A read-only handle first: it takes no LOCK, and keeps reads going should the
        // read-write open fail. Swapping it in closes the read-write handle, freeing its LOCK.
        let previous = std::mem::replace(
            &mut *guard,
            Handle::ReadOnly(Self::open_db(&self.path, &self.config, false, true)?),
        );
        drop(previous);
        match Self::open_db(&self.path, &self.config, false, false) {
            Ok(db) => {
                *guard = Handle::ReadWrite(db);
                tracing::info!(dir = %self.path.display(), "store reopened after a full disk; writes resume");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "store still cannot take writes (disk full?); reads go on");
                Err(storage_full(&e.to_string()))
            }
        }
    }

    fn cf(db: &DB, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        db.cf_handle(cf.name())
            .ok_or_else(|| StoreError::Corrupt(format!("column family {} missing", cf.name())))
    }

    fn write_batch(&self, handle: &Handle, ops: &[WriteOp]) -> Result<(), StoreError> {
        let Handle::ReadWrite(db) = handle else {
            return Err(storage_full(
                "the disk is full; writes resume once space is freed",
            ));
        };
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                WriteOp::Put(cf, k, v) => batch.put_cf(Self::cf(db, *cf)?, k, v),
                WriteOp::Delete(cf, k) => batch.delete_cf(Self::cf(db, *cf)?, k),
            }
        }
        db.write_opt(batch, &self.write_options)
            .map_err(|e| self.io_error(e))
    }

    /// Sync the write-ahead log of a read-write handle; a read-only one (after a full disk) is
    /// refused with [`StoreError::StorageFull`].
    fn sync_wal_on(&self, handle: &Handle) -> Result<(), StoreError> {
        let Handle::ReadWrite(db) = handle else {
            return Err(storage_full(
                "the disk is full; writes resume once space is freed",
            ));
        };
        db.flush_wal(true).map_err(|e| self.io_error(e))
    }

    /// A RocksDB error from a write or sync: a full disk marks the store full (logged once) and
    /// is [`StoreError::StorageFull`]; anything else as [`backend_error`].
    fn io_error(&self, e: rocksdb::Error) -> StoreError {
        if is_no_space(&e) {
            if !self.full.swap(true, Ordering::AcqRel) {
                tracing::error!(dir = %self.path.display(), error = %e, "disk full: writes refused until space is freed; screens go on");
            }
            return storage_full(e.as_ref());
        }
        backend_error(e)
    }

    /// Run a write-like operation (a batch, a WAL sync) on the current handle. RocksDB refuses
    /// every write after a disk-full error until it resumes: on [`StoreError::StorageFull`],
    /// reopen (at most once a second) and try once more. The first success after a full disk
    /// clears the mark.
    fn resuming(&self, op: impl Fn(&Handle) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let first = {
            let handle = self.read()?;
            op(&handle)
        };
        let result = match first {
            Err(StoreError::StorageFull(_)) => {
                self.reopen()?;
                let handle = self.read()?;
                op(&handle)
            }
            other => other,
        };
        if result.is_ok() && self.full.swap(false, Ordering::AcqRel) {
            tracing::info!(dir = %self.path.display(), "space is back: writes resumed");
        }
        result
    }
}

#[cfg(feature = "store")]
/// True for RocksDB's `NoSpace` and `SpaceLimit` I/O errors (`ENOSPC`, or a space limit hit).
fn is_no_space(e: &rocksdb::Error) -> bool {
    let m = e.to_string();
    m.contains("No space left on device") || m.contains("Space limit reached")
}

#[cfg(feature = "store")]
fn storage_full(detail: &str) -> StoreError {
    StoreError::StorageFull(detail.to_string())
}

#[cfg(feature = "store")]
/// Turn an open failure into an error that names the directory and what is wrong: another process
/// holds RocksDB's `LOCK`, a file is damaged (the log, a table, the MANIFEST), or the directory is
/// not a store.
fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    let message = e.to_string();
    if message.contains("LOCK") || message.contains("lock file") || message.contains("lock hold") {
        return StoreError::Locked(path.to_path_buf());
    }
    if message.contains("does not exist (create_if_missing is false)") {
        return StoreError::NotAStore(format!("no vigie store in {}: {message}", path.display()));
    }
    if matches!(e.kind(), rocksdb::ErrorKind::Corruption) || message.contains("Corruption") {
        let wal = super::wal::log_files(path)
            .map(|files| {
                files
                    .iter()
                    .map(|(name, len)| format!("{name} ({len} bytes)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let (what, remedy) = if message.contains(".sst") {
            ("a table file".to_string(), String::new())
        } else if message.contains("MANIFEST") {
            ("the MANIFEST".to_string(), String::new())
        } else {
            (
                format!("the write-ahead log ({wal})"),
                format!(
                    "; or, accepting the loss of every write from the damage on, run `vigie \
                     recover-wal --accept-wal-loss --data-dir {}`, which keeps a copy of the log \
                     and reports what it dropped",
                    path.display()
                ),
            )
        };
        return StoreError::Damaged(format!(
            "the store in {} is damaged: {what}: {message}. It is not opened, so nothing it holds \
             is served as if whole: restore it from a backup or a replica{remedy}",
            path.display()
        ));
    }
    StoreError::Backend(format!("cannot open {}: {message}", path.display()))
}

#[cfg(feature = "store")]
fn backend_error(e: rocksdb::Error) -> StoreError {
    if matches!(e.kind(), rocksdb::ErrorKind::Corruption) {
        return StoreError::Damaged(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

#[cfg(feature = "store")]
impl Backend for RocksBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let handle = self.read()?;
        let db = handle.db();
        db.get_cf(Self::cf(db, cf)?, key).map_err(backend_error)
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.resuming(|handle| self.write_batch(handle, &ops))
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let handle = self.read()?;
        let db = handle.db();
        let mut read = ReadOptions::default();
        // Scans are start-up loads and exports: read ahead, and do not evict the hot point-read
        // blocks from the cache with a one-pass sweep.
        read.set_readahead_size(4 << 20);
        read.fill_cache(false);
        if let Some(end) = end {
            read.set_iterate_upper_bound(end.to_vec());
        }
        let mut it = db.raw_iterator_cf_opt(Self::cf(db, cf)?, read);
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
        let handle = self.read()?;
        let db = handle.db();
        let mut it = db.raw_iterator_cf(Self::cf(db, cf)?);
        it.seek_to_last();
        let key = it.key().map(<[u8]>::to_vec);
        it.status().map_err(backend_error)?;
        Ok(key)
    }

    fn compact(&self) -> Result<(), StoreError> {
        let handle = self.read()?;
        let db = handle.db();
        for cf in Cf::ALL {
            db.compact_range_cf(Self::cf(db, cf)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn writes_available(&self) -> bool {
        !self.full.load(Ordering::Acquire)
    }

    fn try_resume(&self) -> Result<(), StoreError> {
        if self.writes_available() {
            return Ok(());
        }
        // A synced write that changes nothing: it succeeds only once the store takes writes.
        self.write(vec![WriteOp::Delete(Cf::Meta, WRITE_PROBE_KEY.to_vec())])
    }

    fn scan_all_at_once(&self, visit: &mut VisitAll<'_>) -> Result<(), StoreError> {
        // One RocksDB snapshot for every column family: a consistent view across them. The
        // handle stays read-locked for the visit, so a reopen after a full disk waits for it
        // (the reopen never blocks on readers: it is deferred to its next attempt).
        let handle = self.read()?;
        let db = handle.db();
        let snapshot = db.snapshot();
        for cf in Cf::ALL {
            let mut read = ReadOptions::default();
            read.set_readahead_size(4 << 20);
            read.fill_cache(false);
            read.set_snapshot(&snapshot);
            let mut it = db.raw_iterator_cf_opt(Self::cf(db, cf)?, read);
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
        // After a full disk only a write that succeeds shows that RocksDB takes writes again (a
        // sync of an empty log buffer may succeed while it still refuses them): probe first.
        self.try_resume()?;
        // A replica's group commit: like a write, a full disk refuses it with `StorageFull` and
        // a later call reopens the store (which writes the replayed log to table files, so the
        // unsynced writes it held are durable once the reopen succeeds).
        self.resuming(|handle| self.sync_wal_on(handle))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.try_resume()?;
        self.resuming(|handle| {
            self.sync_wal_on(handle)?;
            let db = handle.db();
            for cf in Cf::ALL {
                db.flush_cf(Self::cf(db, cf)?)
                    .map_err(|e| self.io_error(e))?;
            }
            Ok(())
        })
    }
}

#[cfg(feature = "store")]
/// A `meta` key never written: deleting it is the write that probes whether writes resumed.
const WRITE_PROBE_KEY: &[u8] = b"write_probe";

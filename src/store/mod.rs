//! Hash banks: banks, entries, the audit log, and their durable storage.
//!
//! [`Store`] holds all the bank logic (validation, external-id upserts, id counters, audit events)
//! over a small ordered key-value [`Backend`]: RocksDB ([`RocksBackend`]) as the embedded default,
//! an in-memory map ([`MemoryBackend`]) for tests. Every mutation, with its audit event and counter
//! updates, is one atomic batch; with RocksDB it is acknowledged only once the WAL is synced.
//! The key layout is documented in [`keys`].

pub mod api_keys;
pub mod backend;
pub mod change;
pub mod formats;
pub mod keys;
pub mod load;
pub mod model;
mod schema;
pub mod snapshot;
pub mod wal;

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
#[cfg(feature = "store")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock};

#[cfg(feature = "store")]
pub use backend::RocksBackend;
pub use backend::{Backend, MemoryBackend, RecoveryReport, RocksOptions, WalRecovery, WriteOp};
pub use change::{Applied, Change, Origin};
use keys::{Cf, EntryHead, EntryRecord};
pub use model::*;
pub use schema::{SCHEMA_VERSION, schema_5_order};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory (this path) is locked by another process holding RocksDB's `LOCK`.
    #[error(
        "the data directory {0} is in use by another vigie process (RocksDB LOCK held); stop the server or use the API"
    )]
    Locked(PathBuf),
    /// The store was written by a newer vigie: its schema version is above [`SCHEMA_VERSION`].
    #[error(
        "the store has schema version {found}, newer than this vigie supports ({supported}); upgrade vigie"
    )]
    SchemaTooNew {
        /// The schema version recorded in the store.
        found: u32,
        /// The newest version this build reads ([`SCHEMA_VERSION`]).
        supported: u32,
    },
    /// Stored data cannot be decoded or is inconsistent; the text says what.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// Nothing to open: the directory is missing, empty, not a store, or holds another database.
    #[error("{0}")]
    NotAStore(String),
    /// A file of the store cannot be read as written (a damaged log, table or MANIFEST, or
    /// RocksDB files without their `CURRENT`): the store is refused rather than served in part.
    #[error("{0}")]
    Damaged(String),
    /// The disk is full: writes are refused until space is freed (they then resume by
    /// themselves); reads and screens go on.
    #[error("the store's disk is full; writes resume once space is freed ({0})")]
    StorageFull(String),
    /// The storage engine failed (I/O, RocksDB, a poisoned lock); the text is its message.
    #[error("storage error: {0}")]
    Backend(String),
    /// An input was refused by validation; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// An algorithm name that is not pdq, phash, dhash, md5 or sha256 (the name given).
    #[error("unknown algorithm {} (expected pdq, phash, dhash, md5 or sha256)", quote(.0))]
    UnknownAlgorithm(String),
    /// A bank with this name already exists.
    #[error("bank {} already exists", quote(.0))]
    BankExists(String),
    /// No bank has this name.
    #[error("no bank named {}", quote(.0))]
    BankNotFound(String),
    /// No such entry; the text names it (an id, or an external id and its bank).
    #[error("no entry {0}")]
    EntryNotFound(String),
}

/// Longest piece of caller input an error message quotes, in characters (see [`quote`]).
pub const MAX_QUOTED_CHARS: usize = 200;

/// `input` as an error message quotes it: in Rust debug form (quotes, escapes), cut to
/// [`MAX_QUOTED_CHARS`] characters with a note of its full length when longer. A caller that sent
/// a megabyte name gets its error, not a status too large for its metadata limit.
pub fn quote(input: &str) -> String {
    let total = input.chars().count();
    if total <= MAX_QUOTED_CHARS {
        return format!("{input:?}");
    }
    let head: String = input.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{head:?}... ({total} characters, cut)")
}

/// Counters handed out under the writer lock and persisted in the batch that uses them.
#[derive(Debug, Clone, Copy)]
struct Counters {
    next_entry_id: EntryId,
    next_bank_id: BankId,
    next_audit_seq: u64,
}

/// Audit events list at most this many entry ids; the count is always recorded in `detail`.
const AUDIT_MAX_IDS: usize = 10_000;

/// The bank store: banks, entries, the audit log and id counters over a [`Backend`]. Shared
/// across threads: reads run concurrently, writers are serialised by one lock.
pub struct Store {
    backend: Box<dyn Backend>,
    /// Serialises writers: upserts read the external-id lookup then write, and counters advance.
    writer: Mutex<Counters>,
    /// Banks are few; a cache keyed by name is coherent because this process owns the store.
    banks: RwLock<BTreeMap<String, Bank>>,
}

impl Store {
    #[cfg(feature = "store")]
    /// Open the RocksDB store in `dir`, checking and migrating its schema. A store is created
    /// only where `options.create_if_missing` allows and `dir` does not exist yet or is empty; with
    /// it off, a RocksDB database that is not a vigie store (no schema version) is refused too.
    /// Errors: [`StoreError::NotAStore`], [`StoreError::Damaged`], [`StoreError::Locked`],
    /// [`StoreError::SchemaTooNew`], storage failures.
    pub fn open(dir: &Path, options: &RocksOptions) -> Result<Store, StoreError> {
        Store::open_reporting(dir, options).map(|(store, _)| store)
    }

    #[cfg(feature = "store")]
    /// [`Store::open`], also returning what a [`WalRecovery::PointInTime`] open dropped.
    pub fn open_reporting(
        dir: &Path,
        options: &RocksOptions,
    ) -> Result<(Store, Option<RecoveryReport>), StoreError> {
        let backend = RocksBackend::open(dir, options)?;
        if !options.create_if_missing && !schema::has_version(&backend)? {
            return Err(StoreError::NotAStore(format!(
                "{} holds a RocksDB database but no vigie schema version: not a vigie store",
                dir.display()
            )));
        }
        let report = backend.recovery_report().cloned();
        Ok((Store::with_backend(Box::new(backend))?, report))
    }

    /// False while writes are refused because the disk is full ([`StoreError::StorageFull`]).
    pub fn writes_available(&self) -> bool {
        self.backend.writes_available()
    }

    /// Try to take writes again after a full disk; `Ok` once they are available. See
    /// [`Backend::try_resume`].
    pub fn try_resume_writes(&self) -> Result<(), StoreError> {
        self.backend.try_resume()
    }

    /// A fresh store held in memory.
    pub fn in_memory() -> Store {
        // Invariant: a fresh in-memory backend cannot fail to initialise.
        Store::with_backend(Box::new(MemoryBackend::default())).expect("fresh in-memory store")
    }

    /// Opens a store over `backend`: checks and migrates its schema, reads the id counters and
    /// caches the banks. Errors: [`StoreError::SchemaTooNew`], [`StoreError::Corrupt`] (undecodable
    /// counters or bank records, rows without a schema version), [`StoreError::Backend`].
    pub fn with_backend(backend: Box<dyn Backend>) -> Result<Store, StoreError> {
        schema::check_and_migrate(backend.as_ref())?;
        let counters = Counters {
            next_entry_id: read_counter(backend.as_ref(), keys::META_NEXT_ENTRY_ID)?.max(1),
            next_bank_id: u32::try_from(
                read_counter(backend.as_ref(), keys::META_NEXT_BANK_ID)?.max(1),
            )
            .map_err(|_| StoreError::Corrupt("bank counter out of range".into()))?,
            next_audit_seq: read_counter(backend.as_ref(), keys::META_NEXT_AUDIT_SEQ)?.max(1),
        };
        let mut banks = BTreeMap::new();
        backend.scan(Cf::Banks, &[], None, &mut |k, v| {
            let mut bank: Bank = serde_json::from_slice(v)
                .map_err(|e| StoreError::Corrupt(format!("bank record: {e}")))?;
            bank.id = keys::decode_u32(k)?;
            banks.insert(bank.name.clone(), bank);
            Ok(true)
        })?;
        Ok(Store {
            backend,
            writer: Mutex::new(counters),
            banks: RwLock::new(banks),
        })
    }

    /// The stream sequence of the last change applied to this store, as recorded by
    /// [`Store::record_sequence`] or with a change (`None`: never part of a cluster).
    pub fn applied_sequence(&self) -> Result<Option<u64>, StoreError> {
        self.backend
            .get(Cf::Meta, keys::META_APPLIED_SEQUENCE)?
            .map(|v| keys::decode_u64(&v))
            .transpose()
    }

    /// Record that the change at stream sequence `seq` was applied without writing anything else:
    /// for a change the store refused (a bank that already exists...), refused alike on every
    /// replica, so that the replica does not meet it again after a restart.
    pub fn record_sequence(&self, seq: u64) -> Result<(), StoreError> {
        let _writer = self.lock_writer()?;
        self.backend.write(vec![sequence_op(seq)])
    }

    /// [`Store::apply`], recording `seq` (the change's sequence in a cluster's change stream) as
    /// the last applied sequence in the same atomic batch, so that the store and the position a
    /// replica resumes from never disagree. A change that commits nothing (an empty upsert) records
    /// the sequence alone. Errors: as [`Store::apply`]; on error nothing is written, the sequence
    /// neither (see [`Store::record_sequence`]).
    pub fn apply_at_sequence(
        &self,
        change: Change,
        origin: &Origin,
        seq: u64,
    ) -> Result<Applied, StoreError> {
        // The one commit the change makes happens on this thread: it takes the sequence from
        // here into its batch (`commit`). A thread-local rather than a parameter through every
        // mutation; concurrent writers on other threads never see it.
        SEQUENCE_FOR_COMMIT.with(|s| s.set(Some(seq)));
        let result = self.apply(change, origin);
        let unused = SEQUENCE_FOR_COMMIT.with(Cell::take);
        if result.is_ok() && unused.is_some() {
            self.record_sequence(seq)?;
        }
        result
    }

    /// Makes every write made so far survive power loss (one fsync of the write-ahead log), for a
    /// store opened without synced writes that commits a group of them at once (a cluster
    /// replica replaying its stream). Errors: [`StoreError::StorageFull`] on a full disk (a later call
    /// reopens the store, as a write does), [`StoreError::Backend`].
    pub fn sync_wal(&self) -> Result<(), StoreError> {
        self.backend.sync_wal()
    }

    /// Compact the underlying storage (after a bulk load).
    pub fn compact(&self) -> Result<(), StoreError> {
        self.backend.compact()
    }

    /// Write `ops` as one atomic batch together with every counter that advanced, then publish the
    /// new counters. On failure nothing is written and the counters stay as they were.
    fn commit(
        &self,
        mut ops: Vec<WriteOp>,
        counters: &mut Counters,
        next: Counters,
    ) -> Result<(), StoreError> {
        if next.next_entry_id != counters.next_entry_id {
            ops.push(counter_op(keys::META_NEXT_ENTRY_ID, next.next_entry_id));
        }
        if next.next_bank_id != counters.next_bank_id {
            ops.push(counter_op(
                keys::META_NEXT_BANK_ID,
                u64::from(next.next_bank_id),
            ));
        }
        if next.next_audit_seq != counters.next_audit_seq {
            ops.push(counter_op(keys::META_NEXT_AUDIT_SEQ, next.next_audit_seq));
        }
        if let Some(seq) = SEQUENCE_FOR_COMMIT.with(Cell::take) {
            ops.push(sequence_op(seq));
        }
        self.backend.write(ops)?;
        *counters = next;
        Ok(())
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Counters>, StoreError> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Backend("writer lock poisoned".into()))
    }

    fn bank_cache(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, Bank>>, StoreError> {
        self.banks
            .read()
            .map_err(|_| StoreError::Backend("bank cache lock poisoned".into()))
    }

    fn set_cached_bank(&self, bank: Option<Bank>, name: &str) -> Result<(), StoreError> {
        let mut cache = self
            .banks
            .write()
            .map_err(|_| StoreError::Backend("bank cache lock poisoned".into()))?;
        match bank {
            Some(b) => cache.insert(name.to_string(), b),
            None => cache.remove(name),
        };
        Ok(())
    }

    // ---- banks ----

    /// Creates a bank (audited as `bank_create` by `actor`). Errors: an invalid name, description
    /// or limits ([`StoreError::Invalid`]), [`StoreError::BankExists`], a storage failure.
    pub fn create_bank(&self, new: NewBank, actor: &str) -> Result<Bank, StoreError> {
        self.create_bank_at(new, actor, Timestamp::now())
    }

    /// [`Store::create_bank`] as of `now` (the change's time when it is replayed from a log).
    pub fn create_bank_at(
        &self,
        new: NewBank,
        actor: &str,
        now: Timestamp,
    ) -> Result<Bank, StoreError> {
        validate_bank_name(&new.name)?;
        validate_actor(actor)?;
        validate_text("description", &new.description)?;
        let max_distance = new.max_distance.unwrap_or_default();
        max_distance.validate()?;
        let mut counters = self.lock_writer()?;
        if self.bank_cache()?.contains_key(&new.name) {
            return Err(StoreError::BankExists(new.name));
        }
        let bank = Bank {
            id: counters.next_bank_id,
            name: new.name,
            description: new.description,
            enabled: new.enabled.unwrap_or(true),
            kind: new.kind,
            max_distance,
            created_at: now,
            updated_at: now,
        };
        let mut next = *counters;
        next.next_bank_id = next
            .next_bank_id
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid("bank id space exhausted".into()))?;
        let detail = serde_json::json!({ "kind": bank.kind, "enabled": bank.enabled });
        let mut ops = vec![WriteOp::Put(
            Cf::Banks,
            keys::bank_key(bank.id).to_vec(),
            bank_json(&bank)?,
        )];
        ops.push(audit_op(
            &mut next,
            now,
            actor,
            AuditAction::BankCreate,
            &bank.name,
            &[],
            detail,
        )?);
        self.commit(ops, &mut counters, next)?;
        self.set_cached_bank(Some(bank.clone()), &bank.name)?;
        Ok(bank)
    }

    /// The bank named `name`, or `None`; read from the in-memory cache (errors only on a poisoned
    /// lock).
    pub fn get_bank(&self, name: &str) -> Result<Option<Bank>, StoreError> {
        Ok(self.bank_cache()?.get(name).cloned())
    }

    fn require_bank(&self, name: &str) -> Result<Bank, StoreError> {
        self.get_bank(name)?
            .ok_or_else(|| StoreError::BankNotFound(name.to_string()))
    }

    /// Every bank, in name order, from the in-memory cache (errors only on a poisoned lock).
    pub fn list_banks(&self) -> Result<Vec<Bank>, StoreError> {
        Ok(self.bank_cache()?.values().cloned().collect())
    }

    fn bank_name(&self, id: BankId) -> Result<String, StoreError> {
        self.bank_cache()?
            .values()
            .find(|b| b.id == id)
            .map(|b| b.name.clone())
            .ok_or_else(|| StoreError::Corrupt(format!("entry refers to missing bank {id}")))
    }

    /// Changes a bank's description, enabled flag, kind or limits (those set in `update`), audited
    /// as `bank_update`. Errors: [`StoreError::BankNotFound`], invalid text or limits, storage.
    pub fn update_bank(
        &self,
        name: &str,
        update: BankUpdate,
        actor: &str,
    ) -> Result<Bank, StoreError> {
        self.update_bank_at(name, update, actor, Timestamp::now())
    }

    /// [`Store::update_bank`] as of `now`.
    pub fn update_bank_at(
        &self,
        name: &str,
        update: BankUpdate,
        actor: &str,
        now: Timestamp,
    ) -> Result<Bank, StoreError> {
        validate_actor(actor)?;
        let mut counters = self.lock_writer()?;
        let mut bank = self.require_bank(name)?;
        let mut changed = serde_json::Map::new();
        if let Some(description) = update.description {
            validate_text("description", &description)?;
            changed.insert("description".into(), description.clone().into());
            bank.description = description;
        }
        if let Some(enabled) = update.enabled {
            changed.insert("enabled".into(), enabled.into());
            bank.enabled = enabled;
        }
        if let Some(kind) = update.kind {
            changed.insert("kind".into(), kind.to_string().into());
            bank.kind = kind;
        }
        if let Some(max_distance) = update.max_distance {
            max_distance.validate()?;
            changed.insert(
                "max_distance".into(),
                serde_json::to_value(max_distance).unwrap_or_default(),
            );
            bank.max_distance = max_distance;
        }
        bank.updated_at = now;
        let mut next = *counters;
        let ops = vec![
            WriteOp::Put(
                Cf::Banks,
                keys::bank_key(bank.id).to_vec(),
                bank_json(&bank)?,
            ),
            audit_op(
                &mut next,
                now,
                actor,
                AuditAction::BankUpdate,
                name,
                &[],
                changed.into(),
            )?,
        ];
        self.commit(ops, &mut counters, next)?;
        self.set_cached_bank(Some(bank.clone()), name)?;
        Ok(bank)
    }

    /// Delete a bank and all its entries in one batch. Returns the removed entries' ids and hashes
    /// (for an in-memory index to drop).
    pub fn delete_bank(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<Vec<(EntryId, EntryHashes)>, StoreError> {
        self.delete_bank_at(name, actor, Timestamp::now())
    }

    /// [`Store::delete_bank`] as of `now`.
    pub fn delete_bank_at(
        &self,
        name: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<(EntryId, EntryHashes)>, StoreError> {
        validate_actor(actor)?;
        let mut counters = self.lock_writer()?;
        let bank = self.require_bank(name)?;
        let mut ops = Vec::new();
        let mut removed = Vec::new();
        let prefix = keys::external_prefix(bank.id);
        let end = prefix_end(&prefix);
        self.backend
            .scan(Cf::External, &prefix, end.as_deref(), &mut |k, v| {
                let id = keys::decode_u64(v)?;
                ops.push(WriteOp::Delete(Cf::External, k.to_vec()));
                ops.push(WriteOp::Delete(Cf::Entries, keys::entry_key(id).to_vec()));
                removed.push(id);
                Ok(true)
            })?;
        let mut removed_hashes = Vec::with_capacity(removed.len());
        for &id in &removed {
            let head = self
                .read_head(id)?
                .ok_or_else(|| StoreError::Corrupt(format!("lookup names missing entry {id}")))?;
            removed_hashes.push((id, head.hashes));
        }
        ops.push(WriteOp::Delete(Cf::Banks, keys::bank_key(bank.id).to_vec()));
        let mut next = *counters;
        let detail = serde_json::json!({ "entries_removed": removed.len() });
        ops.push(audit_op(
            &mut next,
            now,
            actor,
            AuditAction::BankDelete,
            name,
            &removed,
            detail,
        )?);
        self.commit(ops, &mut counters, next)?;
        self.set_cached_bank(None, name)?;
        Ok(removed_hashes)
    }

    // ---- entries ----

    fn read_head(&self, id: EntryId) -> Result<Option<EntryHead>, StoreError> {
        match self.backend.get(Cf::Entries, &keys::entry_key(id))? {
            Some(bytes) => Ok(Some(keys::decode_entry_head(&bytes)?)),
            None => Ok(None),
        }
    }

    fn read_record(&self, id: EntryId) -> Result<Option<EntryRecord>, StoreError> {
        match self.backend.get(Cf::Entries, &keys::entry_key(id))? {
            Some(bytes) => Ok(Some(keys::decode_entry(&bytes)?)),
            None => Ok(None),
        }
    }

    fn to_entry(
        &self,
        id: EntryId,
        record: EntryRecord,
        bank_name: Option<&str>,
    ) -> Result<Entry, StoreError> {
        let bank = match bank_name {
            Some(n) => n.to_string(),
            None => self.bank_name(record.bank)?,
        };
        Ok(Entry {
            id,
            bank,
            external_id: record.external_id,
            hashes: record.hashes,
            label: record.label,
            source: record.source,
            note: record.note,
            added_by: record.added_by,
            added_at: record.added_at,
            disabled_until: record.disabled_until,
        })
    }

    /// Add entries to `bank`, or replace those whose external id is already there. One atomic
    /// batch with its audit events; the result is in input order. A repeated external id inside
    /// the batch updates the entry added earlier in the same batch.
    pub fn upsert_entries(
        &self,
        bank: &str,
        entries: Vec<NewEntry>,
        actor: &str,
    ) -> Result<Vec<Upserted>, StoreError> {
        self.upsert_entries_at(bank, entries, actor, Timestamp::now())
    }

    /// [`Store::upsert_entries`] as of `now`: new entries are stamped `added_at = now` (unless
    /// they carry their own), and `Upserted::active` is judged at `now`.
    pub fn upsert_entries_at(
        &self,
        bank: &str,
        entries: Vec<NewEntry>,
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<Upserted>, StoreError> {
        validate_actor(actor)?;
        for e in &entries {
            e.validate()?;
        }
        let mut counters = self.lock_writer()?;
        let bank = self.require_bank(bank)?;
        let mut next = *counters;
        let mut ops = Vec::with_capacity(entries.len() * 2 + 3);
        let mut results = Vec::with_capacity(entries.len());
        // What this batch has written so far, by external id: (id, record).
        let mut pending: HashMap<String, (EntryId, EntryRecord)> = HashMap::new();
        let (mut added_ids, mut updated_ids) = (Vec::new(), Vec::new());
        let mut touched = std::collections::HashSet::new();
        for new in entries {
            let lookup_key = keys::external_key(bank.id, &new.external_id);
            let existing = match pending.get(&new.external_id) {
                Some((id, record)) => Some((*id, record.clone())),
                None => match self.backend.get(Cf::External, &lookup_key)? {
                    Some(v) => {
                        let id = keys::decode_u64(&v)?;
                        let record = self.read_record(id)?.ok_or_else(|| {
                            StoreError::Corrupt(format!("lookup names missing entry {id}"))
                        })?;
                        Some((id, record))
                    }
                    None => None,
                },
            };
            let (id, added, previous, added_by, added_at) = match existing {
                Some((id, old)) => (id, false, Some(old.hashes), old.added_by, old.added_at),
                None => {
                    let id = next.next_entry_id;
                    next.next_entry_id = id
                        .checked_add(1)
                        .ok_or_else(|| StoreError::Invalid("entry id space exhausted".into()))?;
                    ops.push(WriteOp::Put(
                        Cf::External,
                        lookup_key,
                        keys::entry_key(id).to_vec(),
                    ));
                    (id, true, None, actor.to_string(), now)
                }
            };
            let record = EntryRecord {
                bank: bank.id,
                hashes: new.hashes,
                disabled_until: new.disabled_until,
                external_id: new.external_id.clone(),
                label: new.label,
                source: new.source,
                note: new.note,
                added_by: new.added_by.unwrap_or(added_by),
                added_at: new.added_at.unwrap_or(added_at),
            };
            ops.push(WriteOp::Put(
                Cf::Entries,
                keys::entry_key(id).to_vec(),
                keys::encode_entry(&record),
            ));
            // An id first added in this batch is audited as added only; others once as updated.
            if touched.insert(id) {
                if added {
                    added_ids.push(id)
                } else {
                    updated_ids.push(id)
                }
            }
            results.push(Upserted {
                id,
                external_id: new.external_id.clone(),
                added,
                previous,
                hashes: record.hashes.clone(),
                active: record.disabled_until.is_none_or(|t| t <= now),
            });
            pending.insert(new.external_id, (id, record));
        }
        if results.is_empty() {
            return Ok(results);
        }
        if !added_ids.is_empty() {
            let detail = serde_json::json!({ "count": added_ids.len() });
            ops.push(audit_op(
                &mut next,
                now,
                actor,
                AuditAction::EntryAdd,
                &bank.name,
                &added_ids,
                detail,
            )?);
        }
        if !updated_ids.is_empty() {
            let detail = serde_json::json!({ "count": updated_ids.len() });
            ops.push(audit_op(
                &mut next,
                now,
                actor,
                AuditAction::EntryUpdate,
                &bank.name,
                &updated_ids,
                detail,
            )?);
        }
        self.commit(ops, &mut counters, next)?;
        Ok(results)
    }

    /// Remove entries by id from `bank`. Refuses the whole call when an id is not in the bank.
    /// Returns the removed entries (their hashes tell an index what to drop).
    pub fn remove_entries(
        &self,
        bank: &str,
        ids: &[EntryId],
        actor: &str,
    ) -> Result<Vec<Entry>, StoreError> {
        self.remove_entries_at(bank, ids, actor, Timestamp::now())
    }

    /// [`Store::remove_entries`] as of `now` (the audit event's time).
    pub fn remove_entries_at(
        &self,
        bank: &str,
        ids: &[EntryId],
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<Entry>, StoreError> {
        validate_actor(actor)?;
        let mut counters = self.lock_writer()?;
        let bank = self.require_bank(bank)?;
        let mut ops = Vec::with_capacity(ids.len() * 2 + 1);
        let mut removed = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::new();
        for &id in ids {
            if !seen.insert(id) {
                continue;
            }
            let record = self.read_record(id)?.filter(|r| r.bank == bank.id);
            let record = record.ok_or_else(|| {
                StoreError::EntryNotFound(format!("{id} in bank {:?}", bank.name))
            })?;
            ops.push(WriteOp::Delete(Cf::Entries, keys::entry_key(id).to_vec()));
            ops.push(WriteOp::Delete(
                Cf::External,
                keys::external_key(bank.id, &record.external_id),
            ));
            removed.push(self.to_entry(id, record, Some(&bank.name))?);
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut next = *counters;
        let removed_ids: Vec<EntryId> = removed.iter().map(|e| e.id).collect();
        let detail = serde_json::json!({ "count": removed_ids.len() });
        ops.push(audit_op(
            &mut next,
            now,
            actor,
            AuditAction::EntryRemove,
            &bank.name,
            &removed_ids,
            detail,
        )?);
        self.commit(ops, &mut counters, next)?;
        Ok(removed)
    }

    /// Disable entries until `until` (`None`: enable them again). Returns the changed entries.
    pub fn set_entries_disabled(
        &self,
        bank: &str,
        ids: &[EntryId],
        until: Option<Timestamp>,
        actor: &str,
    ) -> Result<Vec<Entry>, StoreError> {
        self.set_entries_disabled_at(bank, ids, until, actor, Timestamp::now())
    }

    /// [`Store::set_entries_disabled`] as of `now` (the audit event's time).
    pub fn set_entries_disabled_at(
        &self,
        bank: &str,
        ids: &[EntryId],
        until: Option<Timestamp>,
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<Entry>, StoreError> {
        validate_actor(actor)?;
        let mut counters = self.lock_writer()?;
        let bank = self.require_bank(bank)?;
        let mut ops = Vec::with_capacity(ids.len() + 1);
        let mut changed = Vec::with_capacity(ids.len());
        for &id in ids {
            let record = self.read_record(id)?.filter(|r| r.bank == bank.id);
            let mut record = record.ok_or_else(|| {
                StoreError::EntryNotFound(format!("{id} in bank {:?}", bank.name))
            })?;
            record.disabled_until = until;
            ops.push(WriteOp::Put(
                Cf::Entries,
                keys::entry_key(id).to_vec(),
                keys::encode_entry(&record),
            ));
            changed.push(self.to_entry(id, record, Some(&bank.name))?);
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        let mut next = *counters;
        let action = if until.is_some() {
            AuditAction::EntryDisable
        } else {
            AuditAction::EntryEnable
        };
        let detail = match until {
            Some(t) => serde_json::json!({ "disabled_until": t }),
            None => serde_json::Value::Null,
        };
        ops.push(audit_op(
            &mut next, now, actor, action, &bank.name, ids, detail,
        )?);
        self.commit(ops, &mut counters, next)?;
        Ok(changed)
    }

    /// The entry with id `id` (in any bank), or `None`. Errors: [`StoreError::Corrupt`] for an
    /// undecodable record or one naming a missing bank, [`StoreError::Backend`].
    pub fn get_entry(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        match self.read_record(id)? {
            Some(record) => Ok(Some(self.to_entry(id, record, None)?)),
            None => Ok(None),
        }
    }

    /// The entry of `bank` with `external_id`, or `None`. Errors: [`StoreError::BankNotFound`],
    /// [`StoreError::Corrupt`] when the lookup names a missing or undecodable record, storage.
    pub fn find_entry(&self, bank: &str, external_id: &str) -> Result<Option<Entry>, StoreError> {
        let bank = self.require_bank(bank)?;
        let Some(v) = self
            .backend
            .get(Cf::External, &keys::external_key(bank.id, external_id))?
        else {
            return Ok(None);
        };
        let id = keys::decode_u64(&v)?;
        match self.read_record(id)? {
            Some(record) => Ok(Some(self.to_entry(id, record, Some(&bank.name))?)),
            None => Err(StoreError::Corrupt(format!(
                "lookup names missing entry {id}"
            ))),
        }
    }

    /// Stream a bank's entries in external-id order, starting after `after` (exclusive), keeping
    /// those with `label` when given. The visitor returns `Ok(false)` to stop.
    pub fn for_each_entry(
        &self,
        bank: &str,
        label: Option<&str>,
        after: Option<&str>,
        visit: &mut dyn FnMut(Entry) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let bank = self.require_bank(bank)?;
        let prefix = keys::external_prefix(bank.id);
        let end = prefix_end(&prefix);
        let start = match after {
            // The smallest key greater than (bank, after): append a zero byte.
            Some(a) => {
                let mut k = keys::external_key(bank.id, a);
                k.push(0);
                k
            }
            None => prefix.to_vec(),
        };
        self.backend
            .scan(Cf::External, &start, end.as_deref(), &mut |_, v| {
                let id = keys::decode_u64(v)?;
                let record = self.read_record(id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("lookup names missing entry {id}"))
                })?;
                if label.is_some_and(|l| l != record.label) {
                    return Ok(true);
                }
                visit(self.to_entry(id, record, Some(&bank.name))?)
            })
    }

    /// One page of a bank's entries (external-id order), for listings.
    pub fn list_entries(
        &self,
        bank: &str,
        label: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.for_each_entry(bank, label, after, &mut |e| {
            out.push(e);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Number of entries in a bank (a key scan of the lookup, no record reads).
    pub fn count_entries(&self, bank: &str) -> Result<u64, StoreError> {
        let bank = self.require_bank(bank)?;
        let prefix = keys::external_prefix(bank.id);
        let end = prefix_end(&prefix);
        let mut n = 0u64;
        self.backend
            .scan(Cf::External, &prefix, end.as_deref(), &mut |_, _| {
                n += 1;
                Ok(true)
            })?;
        Ok(n)
    }

    /// The start-up load: every entry that takes part in matching at `now` (its bank enabled, the
    /// entry not disabled), in id order, decoding only the fixed head of each record. Returns the
    /// number of entries visited.
    pub fn for_each_active_entry(
        &self,
        now: Timestamp,
        visit: &mut dyn FnMut(EntryId, BankId, &EntryHashes) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let enabled: Vec<BankId> = self
            .bank_cache()?
            .values()
            .filter(|b| b.enabled)
            .map(|b| b.id)
            .collect();
        let mut n = 0u64;
        self.backend.scan(Cf::Entries, &[], None, &mut |k, v| {
            let head = keys::decode_entry_head(v)?;
            if !enabled.contains(&head.bank) || head.disabled_until.is_some_and(|t| t > now) {
                return Ok(true);
            }
            visit(keys::decode_u64(k)?, head.bank, &head.hashes)?;
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }

    /// Record the outcome of an import (the entries themselves were audited batch by batch).
    pub fn record_import(
        &self,
        bank: &str,
        detail: serde_json::Value,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.record_import_at(bank, detail, actor, Timestamp::now())
    }

    /// [`Store::record_import`] as of `now`.
    pub fn record_import_at(
        &self,
        bank: &str,
        detail: serde_json::Value,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        validate_actor(actor)?;
        let mut counters = self.lock_writer()?;
        let bank = self.require_bank(bank)?;
        let mut next = *counters;
        let op = audit_op(
            &mut next,
            now,
            actor,
            AuditAction::Import,
            &bank.name,
            &[],
            detail,
        )?;
        self.commit(vec![op], &mut counters, next)?;
        Ok(())
    }

    /// Audit events in time order, filtered. Errors: [`StoreError::Invalid`] when `since` is
    /// after `until` (a window that ends before it starts: the caller's mistake, said as such).
    pub fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since > until
        {
            return Err(StoreError::Invalid(format!(
                "since ({since}) is after until ({until})"
            )));
        }
        let start = keys::audit_key(filter.since.unwrap_or_default(), 0);
        let end = filter
            .until
            .map(|u| keys::audit_key(Timestamp(u.0.saturating_add(1)), 0));
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.backend.scan(
            Cf::Audit,
            &start,
            end.as_ref().map(|e| &e[..]),
            &mut |_, v| {
                let event: AuditEvent = serde_json::from_slice(v)
                    .map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))?;
                if filter.bank.as_ref().is_none_or(|b| *b == event.bank) {
                    out.push(event);
                }
                Ok(out.len() < limit)
            },
        )?;
        Ok(out)
    }
}

fn validate_actor(actor: &str) -> Result<(), StoreError> {
    if actor.is_empty() || actor.len() > 256 || actor.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "actor must be 1 to 256 printable bytes".into(),
        ));
    }
    Ok(())
}

fn validate_text(field: &str, text: &str) -> Result<(), StoreError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(StoreError::Invalid(format!(
            "{field} is longer than {MAX_TEXT_LEN} bytes"
        )));
    }
    Ok(())
}

fn bank_json(bank: &Bank) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(bank).map_err(|e| StoreError::Backend(format!("encoding bank: {e}")))
}

thread_local! {
    /// The stream sequence the next commit on this thread records ([`Store::apply_at_sequence`]).
    static SEQUENCE_FOR_COMMIT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The op recording `seq` as the last applied stream sequence, to go into a change's batch.
fn sequence_op(seq: u64) -> WriteOp {
    WriteOp::Put(
        Cf::Meta,
        keys::META_APPLIED_SEQUENCE.to_vec(),
        seq.to_be_bytes().to_vec(),
    )
}

fn counter_op(name: &[u8], value: u64) -> WriteOp {
    WriteOp::Put(Cf::Meta, name.to_vec(), value.to_be_bytes().to_vec())
}

fn read_counter(backend: &dyn Backend, name: &[u8]) -> Result<u64, StoreError> {
    match backend.get(Cf::Meta, name)? {
        Some(v) => keys::decode_u64(&v),
        None => Ok(0),
    }
}

/// The audit event and the advanced sequence counter, to go into the caller's batch.
fn audit_op(
    counters: &mut Counters,
    time: Timestamp,
    actor: &str,
    action: AuditAction,
    bank: &str,
    ids: &[EntryId],
    mut detail: serde_json::Value,
) -> Result<WriteOp, StoreError> {
    let seq = counters.next_audit_seq;
    counters.next_audit_seq += 1;
    if ids.len() > AUDIT_MAX_IDS
        && let serde_json::Value::Object(map) = &mut detail
    {
        map.insert("entry_ids_truncated".into(), true.into());
    }
    let event = AuditEvent {
        seq,
        time,
        actor: actor.to_string(),
        action,
        bank: bank.to_string(),
        entry_ids: ids.iter().copied().take(AUDIT_MAX_IDS).collect(),
        detail,
    };
    let value = serde_json::to_vec(&event)
        .map_err(|e| StoreError::Backend(format!("encoding audit event: {e}")))?;
    Ok(WriteOp::Put(
        Cf::Audit,
        keys::audit_key(time, seq).to_vec(),
        value,
    ))
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

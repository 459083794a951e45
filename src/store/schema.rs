//! Schema version, checked on every open: a newer store is refused, an older one migrated step by
//! step, each step one atomic batch that also records the version it reaches.
//!
//! History:
//! - 1: the column families and keys of `keys.rs`; no counters in `meta` (ids came from the last key).
//! - 2: `next_entry_id`, `next_bank_id`, `next_audit_seq` persisted in `meta`, written in the same
//!   batch as the rows that use them, so deleting the newest entry never frees its id for reuse
//!   (audit events keep naming ids).
//! - 3: an entry record may carry crop-window PDQs (mask bit 5, see `keys.rs`). Records of
//!   version 2 read as they are; the bump makes a build that cannot read the new bit refuse the
//!   store as too new instead of reporting its entries corrupt.
//! - 4: an entry record may carry keypoints (mask bit 6, see `keys.rs`); version 3 records read as
//!   they are, and the bump makes an older build refuse the store rather than the records.
//! - 5 (issue 15): two changes.
//!   - An entry may hold several hashes of one algorithm (an ad with several photos): such a
//!     record is of record version 2 (`keys::ENTRY_RECORD_V2`); all others keep version 1's bytes.
//!   - 64-bit pHash and dHash are held in the bit order Python `imagehash` writes (the hash grid
//!     row-major, its first bit the most significant bit of the hex text), where `image_hasher`'s
//!     default packed each byte least significant bit first. The migration reverses the bits of
//!     each byte of every stored pHash and dHash, so an entry matches the same pictures as before.
//!     It reads every stored 64-bit hash as vigie's own old order: right for entries added as
//!     images and for lists exported by vigie and imported again; a list from `imagehash` that
//!     was imported before this version never matched and stays wrong: import it again.

use super::StoreError;
use super::backend::{Backend, WriteOp};
use super::keys::{self, Cf};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 5;

/// A migration from version `from` to `from + 1`: the ops to write with the version bump.
type Migration = fn(&dyn Backend) -> Result<Vec<WriteOp>, StoreError>;

const MIGRATIONS: &[(u32, Migration)] = &[
    (1, migrate_1_to_2),
    (2, migrate_2_to_3),
    (3, migrate_3_to_4),
    (4, migrate_4_to_5),
];

fn version_op(version: u32) -> WriteOp {
    WriteOp::Put(
        Cf::Meta,
        keys::META_SCHEMA_VERSION.to_vec(),
        version.to_be_bytes().to_vec(),
    )
}

/// Whether the store records a schema version (every vigie store does from its creation on).
#[cfg_attr(not(feature = "store"), allow(dead_code))]
pub fn has_version(backend: &dyn Backend) -> Result<bool, StoreError> {
    Ok(backend.get(Cf::Meta, keys::META_SCHEMA_VERSION)?.is_some())
}

/// Brings the store's schema to [`SCHEMA_VERSION`]: writes it on a fresh store, migrates an older
/// one a step per atomic batch. Errors: [`StoreError::SchemaTooNew`], [`StoreError::Corrupt`]
/// (version 0, no migration path, rows without a version), storage errors.
pub fn check_and_migrate(backend: &dyn Backend) -> Result<(), StoreError> {
    let stored = match backend.get(Cf::Meta, keys::META_SCHEMA_VERSION)? {
        Some(v) => keys::decode_u32(&v)?,
        None => {
            // A fresh store has no rows at all; rows without a version are not ours.
            for cf in [Cf::Banks, Cf::Entries, Cf::External, Cf::Audit] {
                if backend.last_key(cf)?.is_some() {
                    return Err(StoreError::Corrupt(format!(
                        "column family {} has data but the store has no schema version",
                        cf.name()
                    )));
                }
            }
            backend.write(vec![version_op(SCHEMA_VERSION)])?;
            return Ok(());
        }
    };
    if stored > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: stored,
            supported: SCHEMA_VERSION,
        });
    }
    if stored == 0 {
        return Err(StoreError::Corrupt("schema version 0".into()));
    }
    let mut version = stored;
    while version < SCHEMA_VERSION {
        let (_, migrate) = MIGRATIONS
            .iter()
            .find(|(from, _)| *from == version)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("no migration from schema version {version}"))
            })?;
        let mut ops = migrate(backend)?;
        version += 1;
        ops.push(version_op(version));
        backend.write(ops)?;
    }
    Ok(())
}

/// Derive the counters from the data: one past the greatest entry and bank key, one past the
/// greatest audit sequence number (audit keys are time-ordered, so every key is read).
fn migrate_1_to_2(backend: &dyn Backend) -> Result<Vec<WriteOp>, StoreError> {
    let next_entry = match backend.last_key(Cf::Entries)? {
        Some(k) => keys::decode_u64(&k)? + 1,
        None => 1,
    };
    let next_bank = match backend.last_key(Cf::Banks)? {
        Some(k) => u64::from(keys::decode_u32(&k)?) + 1,
        None => 1,
    };
    let mut max_seq = 0u64;
    backend.scan(Cf::Audit, &[], None, &mut |k, _| {
        if k.len() != 16 {
            return Err(StoreError::Corrupt("audit key is not 16 bytes".into()));
        }
        max_seq = max_seq.max(keys::decode_u64(&k[8..])?);
        Ok(true)
    })?;
    let counter =
        |name: &[u8], v: u64| WriteOp::Put(Cf::Meta, name.to_vec(), v.to_be_bytes().to_vec());
    Ok(vec![
        counter(keys::META_NEXT_ENTRY_ID, next_entry),
        counter(keys::META_NEXT_BANK_ID, next_bank),
        counter(keys::META_NEXT_AUDIT_SEQ, max_seq + 1),
    ])
}

/// Nothing to rewrite: version 2 records are valid version 3 records.
fn migrate_2_to_3(_backend: &dyn Backend) -> Result<Vec<WriteOp>, StoreError> {
    Ok(Vec::new())
}

/// Nothing to rewrite: version 3 records are valid version 4 records.
fn migrate_3_to_4(_backend: &dyn Backend) -> Result<Vec<WriteOp>, StoreError> {
    Ok(Vec::new())
}

/// A 64-bit hash of schema 4 (each byte's bits least significant first, `image_hasher`'s default)
/// in schema 5's order (most significant first, as Python `imagehash` writes): the bits of each
/// byte reversed, the bytes in place.
pub fn schema_5_order(h: crate::bits::Hash64) -> crate::bits::Hash64 {
    crate::bits::Bits([h.0[0].reverse_bits().swap_bytes()])
}

/// Rewrite every entry record that holds a pHash or dHash in schema 5's bit order (see the
/// history above). Records without one are left as they are (version 4 records are valid
/// version 5 records). One batch: a crash before it commits leaves the store at version 4, to be
/// migrated again from the same bytes.
fn migrate_4_to_5(backend: &dyn Backend) -> Result<Vec<WriteOp>, StoreError> {
    let mut ops = Vec::new();
    backend.scan(Cf::Entries, &[], None, &mut |k, v| {
        // Version 4 records are of record version 1: one hash per algorithm, nothing in `more`.
        let mut record = keys::decode_entry(v)?;
        let h = &mut record.hashes;
        if h.phash.is_none() && h.dhash.is_none() {
            return Ok(true);
        }
        h.phash = h.phash.map(schema_5_order);
        h.dhash = h.dhash.map(schema_5_order);
        ops.push(WriteOp::Put(
            Cf::Entries,
            k.to_vec(),
            keys::encode_entry(&record),
        ));
        Ok(true)
    })?;
    Ok(ops)
}

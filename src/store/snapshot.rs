//! A whole store as one byte stream, for replicas that join a cluster (or whose position in the
//! change stream was cut away by its retention) to start from instead of replaying from the first
//! change.
//!
//! The snapshot is logical: every key and value of every column family, read from one
//! point-in-time view of the store ([`Backend::scan_all_at_once`]), so it covers exactly the
//! changes applied before that instant — and the stream sequence recorded in `meta`
//! ([`keys::META_APPLIED_SEQUENCE`]) travels with it, naming the last change it covers. Logical
//! rather than a copy of RocksDB's files: it restores into any backend (the in-memory one in
//! tests), needs no archive format, and a restore into a fresh directory is one sequential write.
//!
//! Format (all integers big-endian):
//!
//! ```text
//! magic      "VIGSNAP1" (8 bytes)
//! schema     u32: the schema version of the records (`SCHEMA_VERSION` of the writer)
//! records    repeated: cf u8 (0..=4, `Cf as u8`), key length u32, key, value length u32, value
//! end        0xFF, record count u64, SHA-256 of every byte before the 0xFF (32 bytes)
//! ```
//!
//! A stream cut short, extended, or altered fails the restore with [`StoreError::Corrupt`].

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::backend::{Backend, WriteOp};
use super::keys::{self, Cf};
use super::{SCHEMA_VERSION, Store, StoreError};

const MAGIC: &[u8; 8] = b"VIGSNAP1";
const END: u8 = 0xFF;
/// Restores write batches of about this many bytes (fewer, larger batches load faster).
const RESTORE_BATCH_BYTES: usize = 4 << 20;
/// No key or value of a store comes near this: a larger length means a corrupt stream.
const MAX_FIELD_BYTES: u32 = 64 << 20;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Schema version of its records.
    pub schema: u32,
    /// Key-value records, all column families together.
    pub records: u64,
    /// Bytes of the whole snapshot stream.
    pub bytes: u64,
    /// The last change-stream sequence applied to the store it was taken from (`None`: a store
    /// that never applied a change from a stream).
    pub applied_sequence: Option<u64>,
}

/// A `Write` that hashes and counts what passes through.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    sha: Sha256,
    bytes: u64,
}

impl Hashing<'_> {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.sha.update(data);
        self.bytes += data.len() as u64;
        self.inner
            .write_all(data)
            .map_err(|e| StoreError::Backend(format!("writing the snapshot: {e}")))
    }
}

impl Store {
    /// Write a snapshot of the whole store to `out` (format in the module doc), read from one
    /// point-in-time view: writes that land while it runs are not in it, and the applied sequence
    /// it reports is the one of that view. Returns what it wrote. Errors: the backend's, or
    /// `Backend` when `out` fails.
    pub fn write_snapshot(&self, out: &mut dyn Write) -> Result<SnapshotInfo, StoreError> {
        write_snapshot(self.backend.as_ref(), out)
    }
}

/// [`Store::write_snapshot`] over a bare backend.
pub fn write_snapshot(
    backend: &dyn Backend,
    out: &mut dyn Write,
) -> Result<SnapshotInfo, StoreError> {
    let mut w = Hashing {
        inner: out,
        sha: Sha256::new(),
        bytes: 0,
    };
    w.put(MAGIC)?;
    let mut schema = SCHEMA_VERSION;
    let mut records = 0u64;
    let mut applied_sequence = None;
    // The header's schema is the one this build writes; a store is migrated on open, so its
    // records are of this version (checked below from the view's own `schema_version`).
    w.put(&schema.to_be_bytes())?;
    backend.scan_all_at_once(&mut |cf, key, value| {
        if cf == Cf::Meta && key == keys::META_SCHEMA_VERSION {
            schema = keys::decode_u32(value)?;
        }
        if cf == Cf::Meta && key == keys::META_APPLIED_SEQUENCE {
            applied_sequence = Some(keys::decode_u64(value)?);
        }
        w.put(&[cf as u8])?;
        w.put(&field_len(key)?.to_be_bytes())?;
        w.put(key)?;
        w.put(&field_len(value)?.to_be_bytes())?;
        w.put(value)?;
        records += 1;
        Ok(())
    })?;
    if schema != SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {schema} but was opened as {SCHEMA_VERSION}"
        )));
    }
    let digest = w.sha.clone().finalize();
    w.put(&[END])?;
    w.put(&records.to_be_bytes())?;
    w.put(&digest)?;
    w.inner
        .flush()
        .map_err(|e| StoreError::Backend(format!("writing the snapshot: {e}")))?;
    Ok(SnapshotInfo {
        schema,
        records,
        bytes: w.bytes,
        applied_sequence,
    })
}

fn field_len(field: &[u8]) -> Result<u32, StoreError> {
    u32::try_from(field.len())
        .ok()
        .filter(|n| *n <= MAX_FIELD_BYTES)
        .ok_or_else(|| StoreError::Corrupt(format!("a {}-byte key or value", field.len())))
}

/// A `Read` that hashes and counts what it hands out.
struct Reading<'a> {
    inner: &'a mut dyn Read,
    sha: Sha256,
    bytes: u64,
}

impl Reading<'_> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt("the snapshot ends early".into())
            } else {
                StoreError::Backend(format!("reading the snapshot: {e}"))
            }
        })?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn hashed(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        self.exact(buf)?;
        self.sha.update(&buf[..]);
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let mut b = [0u8; 4];
        self.hashed(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn field(&mut self) -> Result<Vec<u8>, StoreError> {
        let len = self.u32()?;
        if len > MAX_FIELD_BYTES {
            return Err(StoreError::Corrupt(format!(
                "the snapshot names a {len}-byte field"
            )));
        }
        let mut v = vec![0u8; len as usize];
        self.hashed(&mut v)?;
        Ok(v)
    }
}

/// Load a snapshot into `backend`, which must be empty (a fresh directory): every record, in
/// batches, then [`Backend::flush`]. The snapshot's schema may be older than this build's (the
/// store is migrated when it is next opened) but not newer ([`StoreError::SchemaTooNew`]). On any
/// error the backend holds part of the snapshot and must be thrown away: restore into a scratch
/// directory and move it into place only on success. Errors: `Invalid` when the backend is not
/// empty; `Corrupt` for a malformed, truncated or altered stream; the backend's own.
pub fn restore_snapshot(
    backend: &dyn Backend,
    input: &mut dyn Read,
) -> Result<SnapshotInfo, StoreError> {
    for cf in Cf::ALL {
        if backend.last_key(cf)?.is_some() {
            return Err(StoreError::Invalid(format!(
                "a snapshot restores into an empty store only (column family {} has data)",
                cf.name()
            )));
        }
    }
    let mut r = Reading {
        inner: input,
        sha: Sha256::new(),
        bytes: 0,
    };
    let mut magic = [0u8; 8];
    r.hashed(&mut magic)?;
    if &magic != MAGIC {
        return Err(StoreError::Corrupt("not a vigie snapshot".into()));
    }
    let schema = r.u32()?;
    if schema > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    let mut records = 0u64;
    let mut applied_sequence = None;
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    loop {
        let digest_so_far = r.sha.clone().finalize();
        let mut tag = [0u8; 1];
        r.hashed(&mut tag)?;
        if tag[0] == END {
            let mut count = [0u8; 8];
            r.exact(&mut count)?;
            let mut digest = [0u8; 32];
            r.exact(&mut digest)?;
            if u64::from_be_bytes(count) != records || digest[..] != digest_so_far[..] {
                return Err(StoreError::Corrupt(
                    "the snapshot's trailer does not match its records".into(),
                ));
            }
            let mut extra = [0u8; 1];
            if r.inner
                .read(&mut extra)
                .map_err(|e| StoreError::Backend(format!("reading the snapshot: {e}")))?
                != 0
            {
                return Err(StoreError::Corrupt("bytes after the snapshot's end".into()));
            }
            break;
        }
        let cf = *Cf::ALL.get(usize::from(tag[0])).ok_or_else(|| {
            StoreError::Corrupt(format!("unknown column family {} in the snapshot", tag[0]))
        })?;
        let key = r.field()?;
        let value = r.field()?;
        if cf == Cf::Meta && key == keys::META_APPLIED_SEQUENCE {
            applied_sequence = Some(keys::decode_u64(&value)?);
        }
        records += 1;
        batch_bytes += key.len() + value.len() + 16;
        batch.push(WriteOp::Put(cf, key, value));
        if batch_bytes >= RESTORE_BATCH_BYTES {
            backend.write(std::mem::take(&mut batch))?;
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        backend.write(batch)?;
    }
    backend.flush()?;
    Ok(SnapshotInfo {
        schema,
        records,
        bytes: r.bytes,
        applied_sequence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;

    fn sample_store() -> Store {
        let store = Store::in_memory();
        store
            .create_bank(
                crate::store::NewBank {
                    name: "b".into(),
                    ..Default::default()
                },
                "t",
            )
            .unwrap();
        store
    }

    fn dump(backend: &dyn Backend) -> Vec<(Cf, Vec<u8>, Vec<u8>)> {
        let mut all = Vec::new();
        backend
            .scan_all_at_once(&mut |cf, k, v| {
                all.push((cf, k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        all
    }

    #[test]
    fn a_snapshot_restores_every_record_and_its_sequence() {
        let store = sample_store();
        store.record_sequence(41).unwrap();
        let mut bytes = Vec::new();
        let written = store.write_snapshot(&mut bytes).unwrap();
        assert_eq!(written.applied_sequence, Some(41));
        assert_eq!(written.bytes, bytes.len() as u64);
        let fresh = MemoryBackend::default();
        let read = restore_snapshot(&fresh, &mut &bytes[..]).unwrap();
        assert_eq!(read, written);
        assert_eq!(dump(&fresh), dump(store.backend.as_ref()));
        let restored = Store::with_backend(Box::new(fresh)).unwrap();
        assert_eq!(restored.applied_sequence().unwrap(), Some(41));
        assert_eq!(restored.list_banks().unwrap(), store.list_banks().unwrap());
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let store = sample_store();
        let mut bytes = Vec::new();
        store.write_snapshot(&mut bytes).unwrap();
        // Cut short anywhere, one byte flipped anywhere, or a byte added: refused.
        for cut in [0, 5, 12, bytes.len() / 2, bytes.len() - 1] {
            let e = restore_snapshot(&MemoryBackend::default(), &mut &bytes[..cut]).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "cut at {cut}: {e}");
        }
        for at in [0, 9, 14, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let e = restore_snapshot(&MemoryBackend::default(), &mut &bad[..]).unwrap_err();
            assert!(
                matches!(e, StoreError::Corrupt(_) | StoreError::SchemaTooNew { .. }),
                "flip at {at}: {e}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let e = restore_snapshot(&MemoryBackend::default(), &mut &longer[..]).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
    }

    #[test]
    fn a_restore_needs_an_empty_store() {
        let store = sample_store();
        let mut bytes = Vec::new();
        store.write_snapshot(&mut bytes).unwrap();
        let occupied = MemoryBackend::default();
        occupied
            .write(vec![WriteOp::Put(
                Cf::Banks,
                vec![0, 0, 0, 9],
                b"{}".to_vec(),
            )])
            .unwrap();
        let e = restore_snapshot(&occupied, &mut &bytes[..]).unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    }
}

//! On-disk layout: column families, keys and the binary entry record.
//!
//! All integers in keys are big-endian so that RocksDB's bytewise order is numeric order: a
//! prefix scan of a bank's rows, a range scan of audit times and the id-ordered load all fall out
//! of key order.
//!
//! | column family | key                                        | value                          |
//! |---------------|--------------------------------------------|--------------------------------|
//! | `banks`       | bank id `u32` (4 bytes)                    | bank record, JSON              |
//! | `entries`     | entry id `u64` (8 bytes)                   | entry record, binary (below)   |
//! | `external`    | bank id `u32` ++ external id UTF-8 bytes   | entry id `u64`                 |
//! | `meta`        | ASCII name (`schema_version`, counters, `applied_sequence`) | `u32`/`u64` big-endian |
//! | `audit`       | time µs `u64` ++ sequence `u64` (16 bytes) | audit event, JSON              |
//!
//! `meta`'s `applied_sequence` exists only in a replica of a cluster (`vigie serve --nats`): the
//! sequence number, in the cluster's change stream, of the last change applied to this store. It is
//! written in the same atomic batch as the change it names, so after any crash the store and the
//! position it resumes from agree. Older builds ignore the key, so it needed no schema bump.
//!
//! The external id is the last key component, so it needs no length prefix: the 4-byte bank
//! prefix alone selects a bank's rows, ordered by external id. Entries are keyed by id alone so a
//! match (which knows only the id) is one point read, and the start-up load is one sequential scan.

use super::StoreError;
use super::model::{Algorithm, BankId, EntryHashes, EntryId, HashValue, Timestamp};
use crate::bits::Bits;

/// RocksDB name of the column family of bank records (see the table above).
pub const CF_BANKS: &str = "banks";
/// RocksDB name of the column family of entry records.
pub const CF_ENTRIES: &str = "entries";
/// RocksDB name of the column family mapping (bank, external id) to entry id.
pub const CF_EXTERNAL: &str = "external";
/// RocksDB name of the column family of the schema version, counters and API keys.
pub const CF_META: &str = "meta";
/// RocksDB name of the column family of audit events.
pub const CF_AUDIT: &str = "audit";

/// Column families, as the backends index them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Bank records by bank id.
    Banks = 0,
    /// Entry records by entry id.
    Entries = 1,
    /// Entry ids by bank id and external id.
    External = 2,
    /// Schema version, id counters, API keys.
    Meta = 3,
    /// Audit events by time and sequence.
    Audit = 4,
}

impl Cf {
    /// Every column family, in discriminant order (the backends' index order).
    pub const ALL: [Cf; 5] = [Cf::Banks, Cf::Entries, Cf::External, Cf::Meta, Cf::Audit];

    /// The column family's RocksDB name (one of the `CF_*` constants).
    pub fn name(self) -> &'static str {
        match self {
            Cf::Banks => CF_BANKS,
            Cf::Entries => CF_ENTRIES,
            Cf::External => CF_EXTERNAL,
            Cf::Meta => CF_META,
            Cf::Audit => CF_AUDIT,
        }
    }
}

/// `meta` key of the store's schema version, a `u32` big-endian.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// `meta` key of the next entry id to hand out, a `u64` big-endian (ids start at 1).
pub const META_NEXT_ENTRY_ID: &[u8] = b"next_entry_id";
/// `meta` key of the next bank id to hand out, a `u64` big-endian (ids start at 1).
pub const META_NEXT_BANK_ID: &[u8] = b"next_bank_id";
/// `meta` key of the next audit sequence number, a `u64` big-endian (starts at 1).
pub const META_NEXT_AUDIT_SEQ: &[u8] = b"next_audit_seq";
/// Sequence in the cluster's change stream of the last change applied here (`u64` BE); absent
/// outside a cluster.
pub const META_APPLIED_SEQUENCE: &[u8] = b"applied_sequence";

/// `banks` key of a bank: its id, 4 bytes big-endian.
pub fn bank_key(id: BankId) -> [u8; 4] {
    id.to_be_bytes()
}

/// `entries` key of an entry: its id, 8 bytes big-endian.
pub fn entry_key(id: EntryId) -> [u8; 8] {
    id.to_be_bytes()
}

/// Prefix of every `external` key of a bank: its id, 4 bytes big-endian (a prefix scan lists
/// the bank's entries by external id).
pub fn external_prefix(bank: BankId) -> [u8; 4] {
    bank.to_be_bytes()
}

/// `external` key of an entry: the bank id (4 bytes big-endian) followed by the external id's
/// UTF-8 bytes, no length prefix or terminator (it is the last component).
pub fn external_key(bank: BankId, external_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + external_id.len());
    key.extend_from_slice(&bank.to_be_bytes());
    key.extend_from_slice(external_id.as_bytes());
    key
}

/// Audit key: time first so a time window is a key range; the sequence makes keys unique and
/// keeps events of the same microsecond in the order they were written.
pub fn audit_key(time: Timestamp, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&(time.0.max(0) as u64).to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// A big-endian `u64` from exactly 8 bytes. Errors: [`StoreError::Corrupt`] for any other
/// length.
pub fn decode_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 8 bytes, got {}", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

/// A big-endian `u32` from exactly 4 bytes. Errors: [`StoreError::Corrupt`] for any other
/// length.
pub fn decode_u32(bytes: &[u8]) -> Result<u32, StoreError> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 4 bytes, got {}", bytes.len())))?;
    Ok(u32::from_be_bytes(array))
}

/// Format version of the binary entry record (byte 0), so a later layout can be read beside it.
pub const ENTRY_RECORD_V1: u8 = 1;
/// Version 2 (schema 5): version 1 plus the entry's further hashes ([`EntryHashes::more`])
/// after the keypoints. Written only for an entry that has some, so every other record keeps
/// version 1's bytes.
pub const ENTRY_RECORD_V2: u8 = 2;
/// Bit 7 of the mask byte: a `disabled_until` time follows the mask.
const MASK_DISABLED: u8 = 0x80;
/// Bit 5 of the mask byte: crop-window PDQs follow the hashes (schema 3).
const MASK_WINDOWS: u8 = 0x20;
/// Bit 6 of the mask byte: keypoints follow the windows (schema 4).
const MASK_KEYPOINTS: u8 = 0x40;

/// The fields of an entry that live in its record (the id is the key; the bank name is resolved
/// from `bank`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Id of the bank the entry belongs to.
    pub bank: BankId,
    /// Its hashes, crop-window PDQs and keypoints.
    pub hashes: EntryHashes,
    /// The entry takes no part in matching before this time (microseconds since the Unix
    /// epoch); `None`: active.
    pub disabled_until: Option<Timestamp>,
    /// The caller's id for the entry, unique within the bank.
    pub external_id: String,
    /// Free text returned with a match.
    pub label: String,
    /// Free text: where the entry came from.
    pub source: String,
    /// Free text for curators.
    pub note: String,
    /// The audit actor that added it (an API key's name, `cli`, ...).
    pub added_by: String,
    /// When it was added (microseconds since the Unix epoch).
    pub added_at: Timestamp,
}

// Entry record, version 1. Everything the start-up load needs sits in a fixed-layout head so the
// load decodes no strings:
//
//   [0]      record version (1)
//   [1..5]   bank id u32 BE
//   [5]      mask: bit a (0..=4) set when algorithm a's hash is present (Algorithm discriminant);
//            bit 7 set when disabled_until follows
//   [..+8]   disabled_until, i64 µs BE (only when bit 7)
//   hashes   present algorithms in discriminant order; each hash's u64 words most significant
//            first, BE (i.e. the bytes of its hex text)
//   windows  only when mask bit 5 (schema 3): u8 count (1..=MAX_WINDOWS), then that many PDQs
//            as above
//   keypoints only when mask bit 6 (schema 4): u8 count (1..=MAX_BANK_KEYPOINTS), then per
//            point x u8, y u8, scale u8 (an index of BANK_SCALES), descriptor u64 BE
//   more     only in version 2 (schema 5): u8 count (1..=255), then per hash its algorithm's
//            discriminant u8 and its words as above (the mask's bits say which algorithms have
//            a first hash; each of these is of one of them)
//   strings  external_id, label, source, note, added_by: each u32 BE length ++ UTF-8
//   [..+8]   added_at, i64 µs BE

/// The binary record of an entry, in the version-1 layout above. Cannot fail: counts fit their
/// `u8` because `EntryHashes` bounds windows and keypoints, and the store validates text
/// lengths (a few kilobytes at most) before it makes a record.
pub fn encode_entry(record: &EntryRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + record.note.len());
    // At most MAX_ENTRY_HASHES (256) hashes, at least one of them first of its algorithm, so at
    // most 255 more (EntryHashes::add).
    let more = &record.hashes.more[..record.hashes.more.len().min(255)];
    out.push(if more.is_empty() {
        ENTRY_RECORD_V1
    } else {
        ENTRY_RECORD_V2
    });
    out.extend_from_slice(&record.bank.to_be_bytes());
    let firsts: Vec<HashValue> = Algorithm::ALL
        .into_iter()
        .filter_map(|a| record.hashes.get(a))
        .collect();
    let mut mask = 0u8;
    for h in &firsts {
        mask |= 1 << (h.algorithm() as u8);
    }
    if record.disabled_until.is_some() {
        mask |= MASK_DISABLED;
    }
    let windows: Vec<_> = record.hashes.windows().collect();
    if !windows.is_empty() {
        mask |= MASK_WINDOWS;
    }
    let keypoints = record.hashes.keypoints.as_slice();
    if !keypoints.is_empty() {
        mask |= MASK_KEYPOINTS;
    }
    out.push(mask);
    if let Some(t) = record.disabled_until {
        out.extend_from_slice(&t.0.to_be_bytes());
    }
    for h in &firsts {
        put_hash(&mut out, h);
    }
    if !windows.is_empty() {
        out.push(windows.len() as u8);
        for w in &windows {
            put_words(&mut out, &w.0);
        }
    }
    if !keypoints.is_empty() {
        // At most MAX_BANK_KEYPOINTS (192) by construction of EntryKeypoints.
        out.push(keypoints.len() as u8);
        for p in keypoints {
            out.extend_from_slice(&[p.x, p.y, p.scale]);
            put_words(&mut out, &p.descriptor.0);
        }
    }
    if !more.is_empty() {
        out.push(more.len() as u8);
        for h in more {
            out.push(h.algorithm() as u8);
            put_hash(&mut out, h);
        }
    }
    for s in [
        &record.external_id,
        &record.label,
        &record.source,
        &record.note,
        &record.added_by,
    ] {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&record.added_at.0.to_be_bytes());
    out
}

fn put_hash(out: &mut Vec<u8>, h: &HashValue) {
    match h {
        HashValue::Pdq(b) | HashValue::Sha256(b) => put_words(out, &b.0),
        HashValue::Phash(b) | HashValue::Dhash(b) => put_words(out, &b.0),
        HashValue::Md5(b) => put_words(out, &b.0),
    }
}

fn put_words<const W: usize>(out: &mut Vec<u8>, words: &[u64; W]) {
    for w in words.iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

/// A cursor over a record that fails with `Corrupt` instead of panicking on short input.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| StoreError::Corrupt("entry record is truncated".into()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        decode_u32(self.take(4)?)
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(decode_u64(self.take(8)?)? as i64)
    }

    fn words<const W: usize>(&mut self) -> Result<Bits<W>, StoreError> {
        let mut words = [0u64; W];
        for i in (0..W).rev() {
            words[i] = decode_u64(self.take(8)?)?;
        }
        Ok(Bits(words))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| StoreError::Corrupt("entry text is not UTF-8".into()))
    }
}

/// The head of an entry record: what the start-up load reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHead {
    /// Id of the bank the entry belongs to.
    pub bank: BankId,
    /// Disabled until then (microseconds since the Unix epoch); `None`: active.
    pub disabled_until: Option<Timestamp>,
    /// Its hashes, crop-window PDQs and keypoints.
    pub hashes: EntryHashes,
}

fn decode_head(reader: &mut Reader<'_>) -> Result<EntryHead, StoreError> {
    let version = reader.u8()?;
    if version != ENTRY_RECORD_V1 && version != ENTRY_RECORD_V2 {
        return Err(StoreError::Corrupt(format!(
            "unknown entry record version {version}"
        )));
    }
    let bank = reader.u32()?;
    let mask = reader.u8()?;
    let disabled_until = if mask & MASK_DISABLED != 0 {
        Some(Timestamp(reader.i64()?))
    } else {
        None
    };
    let mut hashes = EntryHashes::default();
    for algorithm in Algorithm::ALL {
        if mask & (1 << algorithm as u8) == 0 {
            continue;
        }
        match algorithm {
            Algorithm::Pdq => hashes.pdq = Some(reader.words()?),
            Algorithm::Phash => hashes.phash = Some(reader.words()?),
            Algorithm::Dhash => hashes.dhash = Some(reader.words()?),
            Algorithm::Md5 => hashes.md5 = Some(reader.words()?),
            Algorithm::Sha256 => hashes.sha256 = Some(reader.words()?),
        }
    }
    if mask & MASK_WINDOWS != 0 {
        let count = usize::from(reader.u8()?);
        if count == 0 || count > super::model::MAX_WINDOWS {
            return Err(StoreError::Corrupt(format!(
                "{count} crop windows in an entry"
            )));
        }
        for slot in hashes.pdq_windows.iter_mut().take(count) {
            *slot = Some(reader.words()?);
        }
    }
    if mask & MASK_KEYPOINTS != 0 {
        let count = usize::from(reader.u8()?);
        if count == 0 || count > super::model::MAX_BANK_KEYPOINTS {
            return Err(StoreError::Corrupt(format!(
                "{count} keypoints in an entry"
            )));
        }
        let mut points = Vec::with_capacity(count);
        for _ in 0..count {
            let at = reader.take(3)?;
            if usize::from(at[2]) >= super::model::BANK_SCALES.len() {
                return Err(StoreError::Corrupt(format!("keypoint scale {}", at[2])));
            }
            points.push(super::model::Keypoint {
                x: at[0],
                y: at[1],
                scale: at[2],
                descriptor: reader.words()?,
            });
        }
        hashes.keypoints = super::model::EntryKeypoints::new(points);
    }
    if version == ENTRY_RECORD_V2 {
        let count = usize::from(reader.u8()?);
        if count == 0 {
            return Err(StoreError::Corrupt(
                "a version 2 entry record without further hashes".into(),
            ));
        }
        hashes.more.reserve_exact(count);
        for _ in 0..count {
            let discriminant = reader.u8()?;
            let value = match Algorithm::ALL.get(usize::from(discriminant)) {
                Some(Algorithm::Pdq) => HashValue::Pdq(reader.words()?),
                Some(Algorithm::Phash) => HashValue::Phash(reader.words()?),
                Some(Algorithm::Dhash) => HashValue::Dhash(reader.words()?),
                Some(Algorithm::Md5) => HashValue::Md5(reader.words()?),
                Some(Algorithm::Sha256) => HashValue::Sha256(reader.words()?),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "algorithm {discriminant} in an entry record"
                    )));
                }
            };
            if hashes.get(value.algorithm()).is_none() {
                return Err(StoreError::Corrupt(format!(
                    "a further {} hash in an entry without a first one",
                    value.algorithm()
                )));
            }
            hashes.more.push(value);
        }
    }
    Ok(EntryHead {
        bank,
        disabled_until,
        hashes,
    })
}

/// Decode only the head (bank, disabled_until, hashes): no allocation.
pub fn decode_entry_head(bytes: &[u8]) -> Result<EntryHead, StoreError> {
    decode_head(&mut Reader { bytes, pos: 0 })
}

/// The whole entry record from its bytes. Errors: [`StoreError::Corrupt`] for an unknown
/// version, a truncated record, out-of-range window or keypoint counts, a keypoint scale outside
/// `BANK_SCALES`, text that is not UTF-8, or trailing bytes.
pub fn decode_entry(bytes: &[u8]) -> Result<EntryRecord, StoreError> {
    let mut reader = Reader { bytes, pos: 0 };
    let head = decode_head(&mut reader)?;
    let external_id = reader.string()?;
    let label = reader.string()?;
    let source = reader.string()?;
    let note = reader.string()?;
    let added_by = reader.string()?;
    let added_at = Timestamp(reader.i64()?);
    if reader.pos != bytes.len() {
        return Err(StoreError::Corrupt(
            "entry record has trailing bytes".into(),
        ));
    }
    Ok(EntryRecord {
        bank: head.bank,
        hashes: head.hashes,
        disabled_until: head.disabled_until,
        external_id,
        label,
        source,
        note,
        added_by,
        added_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EntryRecord {
        let mut hashes = EntryHashes::default();
        hashes.set(
            HashValue::parse(
                Algorithm::Pdq,
                &format!("{}{}", "f0".repeat(16), "0e".repeat(16)),
            )
            .unwrap(),
        );
        hashes.set(HashValue::parse(Algorithm::Md5, "0123456789abcdef0123456789abcdef").unwrap());
        hashes.set(HashValue::parse(Algorithm::Dhash, "8000000000000001").unwrap());
        EntryRecord {
            bank: 0x0102_0304,
            hashes,
            disabled_until: Some(Timestamp(1_700_000_000_000_000)),
            external_id: "ext-é".into(),
            label: "trafficking".into(),
            source: "ncmec".into(),
            note: String::new(),
            added_by: "cli:alice".into(),
            added_at: Timestamp(42),
        }
    }

    #[test]
    fn entry_record_round_trips_and_head_matches() {
        let r = record();
        let bytes = encode_entry(&r);
        assert_eq!(decode_entry(&bytes).unwrap(), r);
        let head = decode_entry_head(&bytes).unwrap();
        assert_eq!(head.bank, r.bank);
        assert_eq!(head.hashes, r.hashes);
        assert_eq!(head.disabled_until, r.disabled_until);
        // Bank id big-endian right after the version byte.
        assert_eq!(&bytes[..6], &[1, 1, 2, 3, 4, 0x80 | 0b01101]);
    }

    #[test]
    fn further_hashes_round_trip_in_record_version_2() {
        let mut r = record();
        let pdq = |b: u8| HashValue::Pdq(crate::bits::Bits([u64::from(b); 4]));
        r.hashes.add(pdq(7)).unwrap();
        r.hashes
            .add(HashValue::parse(Algorithm::Dhash, "0123456789abcdef").unwrap())
            .unwrap();
        r.hashes.add(pdq(9)).unwrap();
        assert_eq!(r.hashes.more.len(), 3);
        r.hashes.set_windows([crate::bits::Bits([1, 2, 3, 4])]);
        let bytes = encode_entry(&r);
        assert_eq!(bytes[0], ENTRY_RECORD_V2);
        let back = decode_entry(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(decode_entry_head(&bytes).unwrap().hashes, r.hashes);
        assert_eq!(back.hashes.iter().count(), 6);
        // Without them the record is version 1, byte for byte what schema 4 wrote.
        let plain = encode_entry(&record());
        assert_eq!(plain[0], ENTRY_RECORD_V1);
        // A cut anywhere, or a further hash of an algorithm the entry has no first one of, is
        // corrupt, never a panic.
        for len in 0..bytes.len() {
            assert!(
                matches!(decode_entry(&bytes[..len]), Err(StoreError::Corrupt(_))),
                "len {len}"
            );
        }
        let mut no_md5_first = r.clone();
        no_md5_first.hashes.md5 = None;
        no_md5_first.hashes.more = vec![HashValue::Md5(crate::bits::Bits([1, 2]))];
        assert!(matches!(
            decode_entry(&encode_entry(&no_md5_first)),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn truncated_or_foreign_records_are_corrupt_not_panics() {
        let bytes = encode_entry(&record());
        for len in 0..bytes.len() {
            assert!(
                matches!(decode_entry(&bytes[..len]), Err(StoreError::Corrupt(_))),
                "len {len}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(matches!(decode_entry(&other), Err(StoreError::Corrupt(_))));
    }

    /// Bytes after the hashes, windows and keypoints: the length-prefixed strings and added_at.
    fn record_tail_len(r: &EntryRecord) -> usize {
        [&r.external_id, &r.label, &r.source, &r.note, &r.added_by]
            .iter()
            .map(|s| 4 + s.len())
            .sum::<usize>()
            + 8
    }

    #[test]
    fn keypoints_round_trip_behind_mask_bit_6() {
        use crate::store::model::{EntryKeypoints, Keypoint, MAX_BANK_KEYPOINTS};
        let mut r = record();
        let point = |i: u64| Keypoint {
            x: i as u8,
            y: (i * 3) as u8,
            scale: (i % 3) as u8,
            descriptor: crate::bits::Bits([i.wrapping_mul(0x9E37_79B9_7F4A_7C15)]),
        };
        r.hashes.keypoints = EntryKeypoints::new((0..MAX_BANK_KEYPOINTS as u64).map(point));
        r.hashes.set_windows([crate::bits::Bits([1, 2, 3, 4])]);
        let bytes = encode_entry(&r);
        assert_eq!(bytes[5] & MASK_KEYPOINTS, MASK_KEYPOINTS);
        let back = decode_entry(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.hashes.keypoints.as_slice().len(), MAX_BANK_KEYPOINTS);
        assert_eq!(decode_entry_head(&bytes).unwrap().hashes, r.hashes);
        // Without keypoints the bit stays clear (records of schema 3 and before read unchanged).
        let plain = encode_entry(&record());
        assert_eq!(plain[5] & MASK_KEYPOINTS, 0);
        assert!(decode_entry(&plain).unwrap().hashes.keypoints.is_empty());
        // A count of 0 or over the maximum is corruption, and so is every truncation.
        let count_at = bytes.len() - record_tail_len(&r) - MAX_BANK_KEYPOINTS * 11 - 1;
        assert_eq!(usize::from(bytes[count_at]), MAX_BANK_KEYPOINTS);
        for bad in [0u8, MAX_BANK_KEYPOINTS as u8 + 1] {
            let mut b = bytes.clone();
            b[count_at] = bad;
            assert!(matches!(decode_entry(&b), Err(StoreError::Corrupt(_))));
        }
        // A scale past BANK_SCALES is corruption.
        let mut b = bytes.clone();
        b[count_at + 3] = 3;
        assert!(matches!(decode_entry(&b), Err(StoreError::Corrupt(_))));
        for cut in 0..bytes.len() {
            assert!(decode_entry(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn crop_windows_round_trip_behind_mask_bit_5() {
        let mut r = record();
        let w = |b: u64| crate::bits::Bits([b, !b, b << 3, b ^ 0x5555]);
        r.hashes.set_windows([w(1), w(2), w(3)]);
        let bytes = encode_entry(&r);
        assert_eq!(bytes[5] & MASK_WINDOWS, MASK_WINDOWS);
        let back = decode_entry(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.hashes.windows().count(), 3);
        assert_eq!(decode_entry_head(&bytes).unwrap().hashes, r.hashes);
        // A record without windows (every record before schema 3) has no bit 5 and none come back.
        let plain = encode_entry(&record());
        assert_eq!(plain[5] & MASK_WINDOWS, 0);
        assert_eq!(decode_entry(&plain).unwrap().hashes.windows().count(), 0);
        // A window count of 0 or over the maximum is corruption, and so is every truncation.
        let count_at = bytes.len() - record_tail_len(&r) - 3 * 32 - 1;
        assert_eq!(bytes[count_at], 3);
        for bad in [0u8, super::super::model::MAX_WINDOWS as u8 + 1] {
            let mut other = bytes.clone();
            other[count_at] = bad;
            assert!(matches!(decode_entry(&other), Err(StoreError::Corrupt(_))));
        }
        for len in 0..bytes.len() {
            assert!(decode_entry(&bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(entry_key(255) < entry_key(256));
        assert!(audit_key(Timestamp(1), 9) < audit_key(Timestamp(2), 0));
        assert!(external_key(1, "zzz") < external_key(2, ""));
        assert!(external_key(1, "a").starts_with(&external_prefix(1)));
    }
}

//! Reading RocksDB's write-ahead log files from outside RocksDB, for one job: telling an operator
//! exactly what a point-in-time recovery ([`super::WalRecovery::PointInTime`]) dropped.
//!
//! Before such an open the log files are copied aside; afterwards the copy is walked and every
//! write batch in it is compared with the sequence number the store recovered to. The format is
//! RocksDB's (`db/log_format.h`, `db/write_batch.cc`): the file is a run of 32 KiB blocks; a
//! record is a 7-byte header (masked CRC32C `u32`, payload length `u16`, type `u8`; 11 bytes with
//! a `u32` log number for the recyclable types) and its payload, split into FIRST/MIDDLE/LAST
//! fragments across blocks; a block tail too short for a header is zero padding. A logical
//! record is a write batch: sequence number `u64` LE, operation count `u32` LE, the operations.
//! Each fragment's checksum is verified: a damaged record would otherwise be read with whatever
//! its damaged bytes say (an operation count in the billions). RocksDB has already decided where
//! the damage is; the sequence numbers say which side of it each readable batch lies.

use std::path::{Path, PathBuf};

use super::StoreError;
use super::backend::RecoveryReport;

const BLOCK_SIZE: usize = 32 * 1024;
const HEADER: usize = 7;
const RECYCLABLE_HEADER: usize = 11;

/// The write-ahead log files in `dir` (`NNNNNN.log`), with their sizes in bytes, in file order.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") && name[..name.len() - 4].bytes().all(|b| b.is_ascii_digit()) {
            files.push((name, entry.metadata()?.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// Copies the log files of `dir` into a new `dir/wal-before-recovery-<unix seconds>` and returns
/// it. Errors: the copy failed ([`StoreError::Backend`]); nothing is opened then.
pub fn copy_aside(dir: &Path) -> Result<PathBuf, StoreError> {
    let io = |e: std::io::Error| {
        StoreError::Backend(format!(
            "cannot keep a copy of the write-ahead log of {} before recovery: {e}",
            dir.display()
        ))
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let copy = dir.join(format!("wal-before-recovery-{stamp}"));
    std::fs::create_dir_all(&copy).map_err(io)?;
    for (name, _) in log_files(dir).map_err(io)? {
        std::fs::copy(dir.join(&name), copy.join(&name)).map_err(io)?;
    }
    Ok(copy)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; RFC 3720 section 12.1), the checksum of
/// RocksDB's log records, as a 256-entry table. A dozen lines here rather than a dependency for
/// this one check of a recovery report.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// `crc` extended over `data` (RocksDB's `crc32c::Extend`; `crc32c_extend(0, d)` is the CRC of d).
fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The checksum a record header stores (RocksDB's `log_writer.cc`, `crc32c::Mask`): the CRC of
/// the type byte, the log number for recyclable records, then the payload; rotated right by 15
/// bits plus a constant.
fn record_checksum(kind: u8, log_number: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c_extend(
        crc32c_extend(crc32c_extend(0, &[kind]), log_number),
        payload,
    );
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One write batch found in a log: where it starts and its sequence range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    /// Byte offset of its first fragment in the file.
    offset: u64,
    sequence: u64,
    count: u32,
}

/// The write batches of one log file, in order. Fragments that do not assemble into a record
/// (a damaged header, a FIRST without its LAST) are skipped up to the next block.
fn batches(bytes: &[u8]) -> (Vec<Batch>, u64) {
    let mut out = Vec::new();
    let mut unreadable = 0u64;
    let mut pending: Option<(u64, Vec<u8>)> = None;
    let mut block_start = 0usize;
    while block_start < bytes.len() {
        let block = &bytes[block_start..bytes.len().min(block_start + BLOCK_SIZE)];
        let mut at = 0usize;
        while at + HEADER <= block.len() {
            let length = usize::from(u16::from_le_bytes([block[at + 4], block[at + 5]]));
            let kind = block[at + 6];
            if kind == 0 && length == 0 {
                // Zero padding or preallocated space: the rest of the block holds nothing.
                break;
            }
            // Recyclable records carry the log number too: types 5 to 8, and from 10 on the odd
            // ones (`db/log_format.h`).
            let header = if (5..=8).contains(&kind) || (kind >= 10 && kind & 1 == 1) {
                RECYCLABLE_HEADER
            } else {
                HEADER
            };
            if at + header + length > block.len() {
                // A length running past the block: a damaged header. Skip to the next block.
                unreadable += 1;
                pending = None;
                break;
            }
            let payload = &block[at + header..at + header + length];
            let offset = (block_start + at) as u64;
            let stored =
                u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
            if stored != record_checksum(kind, &block[at + HEADER..at + header], payload) {
                // A damaged record: counted, never read. Its length was in range, so the next
                // record is looked for after it (each is checked in turn).
                unreadable += 1;
                pending = None;
                at += header + length;
                continue;
            }
            match kind {
                1 | 5 => push_batch(&mut out, &mut unreadable, offset, payload),
                2 | 6 => pending = Some((offset, payload.to_vec())),
                3 | 7 => match &mut pending {
                    Some((_, data)) => data.extend_from_slice(payload),
                    None => unreadable += 1,
                },
                4 | 8 => match pending.take() {
                    Some((first, mut data)) => {
                        data.extend_from_slice(payload);
                        push_batch(&mut out, &mut unreadable, first, &data);
                    }
                    None => unreadable += 1,
                },
                // Metadata records (compression, timestamp sizes, predecessor log info): no batch.
                _ => {}
            }
            at += header + length;
        }
        block_start += BLOCK_SIZE;
    }
    if pending.is_some() {
        unreadable += 1;
    }
    (out, unreadable)
}

fn push_batch(out: &mut Vec<Batch>, unreadable: &mut u64, offset: u64, payload: &[u8]) {
    if payload.len() < 12 {
        *unreadable += 1;
        return;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&payload[..8]);
    let mut count = [0u8; 4];
    count.copy_from_slice(&payload[8..12]);
    out.push(Batch {
        offset,
        sequence: u64::from_le_bytes(seq),
        count: u32::from_le_bytes(count),
    });
}

/// Compares the log files copied into `copy` with `recovered`, the last sequence number the store
/// holds after a point-in-time open: a batch whose last sequence number is past it was dropped.
/// Errors: a copied file cannot be read.
pub fn report(copy: &Path, recovered: u64) -> Result<RecoveryReport, StoreError> {
    let mut report = RecoveryReport {
        wal_copy: copy.to_path_buf(),
        batches_in_log: 0,
        batches_kept: 0,
        batches_dropped: 0,
        operations_dropped: 0,
        bytes_after_damage: 0,
        recovered_sequence: recovered,
    };
    let files = log_files(copy).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut past_damage = false;
    for (name, len) in files {
        let bytes =
            std::fs::read(copy.join(&name)).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (found, unreadable) = batches(&bytes);
        if past_damage {
            report.bytes_after_damage += len;
        }
        report.batches_in_log += found.len() as u64 + unreadable;
        report.batches_dropped += unreadable;
        for batch in found {
            let last = batch
                .sequence
                .saturating_add(u64::from(batch.count).saturating_sub(1));
            if !past_damage && last <= recovered {
                report.batches_kept += 1;
            } else {
                if !past_damage {
                    past_damage = true;
                    report.bytes_after_damage += len.saturating_sub(batch.offset);
                }
                report.batches_dropped += 1;
                report.operations_dropped += u64::from(batch.count);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720 section B.4: 32 bytes of zeros, and the common "123456789" check value.
        assert_eq!(crc32c_extend(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c_extend(0, b"123456789"), 0xE306_9283);
        assert_eq!(
            crc32c_extend(crc32c_extend(0, b"1234"), b"56789"),
            0xE306_9283
        );
    }

    /// A log record as RocksDB writes it, with its checksum.
    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = record_checksum(kind, &[], payload).to_le_bytes().to_vec();
        r.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        r.push(kind);
        r.extend_from_slice(payload);
        r
    }

    fn batch(seq: u64, count: u32, body: usize) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&count.to_le_bytes());
        b.extend(std::iter::repeat_n(7u8, body));
        b
    }

    #[test]
    fn full_and_fragmented_batches_are_read_in_order() {
        let mut log = record(1, &batch(1, 3, 10));
        // A batch fragmented over a block boundary: FIRST fills the first block, LAST follows.
        let big = batch(4, 2, BLOCK_SIZE);
        let room = BLOCK_SIZE - log.len() - HEADER;
        log.extend(record(2, &big[..room]));
        assert_eq!(log.len(), BLOCK_SIZE);
        log.extend(record(4, &big[room..]));
        log.extend(record(1, &batch(6, 1, 0)));
        let (found, unreadable) = batches(&log);
        assert_eq!(unreadable, 0);
        let seqs: Vec<(u64, u32)> = found.iter().map(|b| (b.sequence, b.count)).collect();
        assert_eq!(seqs, vec![(1, 3), (4, 2), (6, 1)]);
        assert_eq!(found[1].offset, (HEADER + 22) as u64);
    }

    #[test]
    fn a_damaged_length_skips_to_the_next_block() {
        let mut log = record(1, &batch(1, 1, 10));
        let mut bad = record(1, &batch(2, 1, 10));
        bad[4] = 0xff;
        bad[5] = 0xff;
        log.extend(bad);
        log.resize(BLOCK_SIZE, 0);
        log.extend(record(1, &batch(3, 1, 10)));
        let (found, unreadable) = batches(&log);
        assert_eq!(unreadable, 1);
        let seqs: Vec<u64> = found.iter().map(|b| b.sequence).collect();
        assert_eq!(seqs, vec![1, 3]);
    }

    #[test]
    fn a_damaged_record_is_unreadable_not_read() {
        let mut log = record(1, &batch(1, 1, 10));
        let mut bad = record(1, &batch(2, 3, 10));
        // Damage the operation count: the checksum no longer matches.
        bad[HEADER + 8] ^= 0x5a;
        bad[HEADER + 11] ^= 0x5a;
        log.extend(bad);
        log.extend(record(1, &batch(5, 1, 10)));
        let (found, unreadable) = batches(&log);
        assert_eq!(unreadable, 1);
        let seqs: Vec<(u64, u32)> = found.iter().map(|b| (b.sequence, b.count)).collect();
        assert_eq!(seqs, vec![(1, 1), (5, 1)]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("000009.log"), &log).unwrap();
        let r = report(dir.path(), 1).unwrap();
        assert_eq!(r.batches_in_log, 3);
        assert_eq!((r.batches_kept, r.batches_dropped), (1, 2));
        // Only the readable dropped batch's operation: not the damaged count.
        assert_eq!(r.operations_dropped, 1);
    }

    #[test]
    fn the_report_counts_what_lies_past_the_recovered_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = record(1, &batch(1, 2, 5));
        log.extend(record(1, &batch(3, 4, 5)));
        log.extend(record(1, &batch(7, 5, 5)));
        std::fs::write(dir.path().join("000009.log"), &log).unwrap();
        let r = report(dir.path(), 2).unwrap();
        assert_eq!(r.batches_in_log, 3);
        assert_eq!(r.batches_kept, 1);
        assert_eq!(r.batches_dropped, 2);
        assert_eq!(r.operations_dropped, 9);
        assert_eq!(r.bytes_after_damage, (log.len() - (HEADER + 17)) as u64);
    }
}

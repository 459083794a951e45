//! Hash text as callers and hash lists write it: the hex of each algorithm (`HashValue::parse`,
//! `Bits::from_hex`), the hash field of a hash-list line (`formats::hash_field`: Meta's PDQ tool
//! lines, `hash=` fields, `sha256sum` lines), algorithm and signal-type names, algorithm lists,
//! bank kinds, timestamps, and an entry's hashes as JSON (what `jsonl` lines and the HTTP API
//! carry).
//!
//! Every parse must answer a value or a typed error, and a parsed hash must print back to hex
//! that parses to the same hash.
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/hash_text.rs`) and the regression tests
//! (`tests/fuzz/main.rs`), so that a crash found here is replayed by the same code.
use vigie::bits::Bits;
use vigie::hashing::{Algorithm, AlgorithmSet};
use vigie::store::formats::{self, Format};
use vigie::store::{BankKind, EntryHashes, HashValue, NewEntry, Timestamp};

const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Pdq,
    Algorithm::Phash,
    Algorithm::Dhash,
    Algorithm::Md5,
    Algorithm::Sha256,
];

/// Runs one input; panics on a bug (see the module doc).
pub fn check(data: &[u8]) {
    let field = formats::hash_field(data);
    assert!(field.len() <= data.len());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let in_line = formats::hash_in_line(text);
    assert_eq!(
        in_line.as_bytes(),
        field,
        "hash_in_line and hash_field disagree"
    );

    for algorithm in ALGORITHMS {
        for candidate in [text, in_line] {
            if let Ok(value) = HashValue::parse(algorithm, candidate) {
                assert_eq!(value.algorithm(), algorithm);
                let hex = value.to_hex();
                assert_eq!(hex.len(), algorithm.bits() as usize / 4, "{hex}");
                assert_eq!(
                    HashValue::parse(algorithm, &hex).ok(),
                    Some(value),
                    "{candidate:?} parsed to {value:?}, which prints as {hex:?}"
                );
            }
        }
    }
    for candidate in [text, in_line] {
        let _ = Bits::<1>::from_hex(candidate);
        let _ = Bits::<2>::from_hex(candidate);
        let _ = Bits::<4>::from_hex(candidate);
    }

    let _ = Algorithm::from_name(text);
    let _ = Algorithm::from_signal_type(text);
    let _ = text.parse::<Algorithm>();
    let _ = text.parse::<Format>();
    let _ = text.parse::<BankKind>();
    let _ = AlgorithmSet::parse(text);
    if let Ok(t) = Timestamp::parse(text) {
        let printed = t.to_string();
        assert_eq!(
            Timestamp::parse(&printed).ok(),
            Some(t),
            "{text:?} parsed to {t:?}, which prints as {printed:?}"
        );
    }
    if let Ok(hashes) = serde_json::from_str::<EntryHashes>(text) {
        let _ = hashes.iter().count();
    }
    if let Ok(entry) = serde_json::from_str::<NewEntry>(text) {
        let _ = entry.validate();
    }
}

//! Hash stability: banks hold hashes computed months ago, so the same file must keep hashing the
//! same way across upgrades of `image`, `image_hasher` or vigie itself. Each failure reports the
//! Hamming drift, which says how many banked matches an upgrade would cost.

mod common;

use common::*;
use vigie::bits::{Hash64, Hash256};
use vigie::hashing::HasherBuilder;

/// (fixture, pHash, dHash) pinned when the configurations in `src/hashing/perceptual64.rs` were chosen.
const PINNED_64: [(&str, &str, &str); 4] = [
    ("bridge.jpg", "f764daa518a3159a", "f4f0f0e0e0e24218"),
    ("wine.jpg", "a1c24f393e86dc53", "3733536b8c5cc1de"),
    ("tux_747.png", "5f63a19c504b0ff4", "8046208696780964"),
    (
        "formats/exif-orientation-6.jpg",
        "7764daa51aa3159a",
        "f4f0f0e0e0e24218",
    ),
];

/// (fixture, PDQ): Meta's own hashes of these files (from `pdq-reference.tsv`), which vigie's PDQ
/// reproduces exactly, and the displayed-picture hash of the transparent one.
const PINNED_PDQ: [(&str, &str); 3] = [
    (
        "bridge.jpg",
        "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2",
    ),
    (
        "wine.jpg",
        "188f8d99b54f326353b043910e76ef7499e19429feee62c3629f5c1c35272561",
    ),
    (
        "tux_747.png",
        "9d78f284e6c7097b6b94dea4941b2543ade4bb7ae20744a515b8e54eb9503ab1",
    ),
];

#[test]
fn phash_and_dhash_are_stable() {
    let hasher = HasherBuilder::new().build();
    let mut drift = Vec::new();
    for (name, phash, dhash) in PINNED_64 {
        let h = hasher.hash_bytes(&read_fixture(name)).expect("hash");
        let dp = h
            .phash
            .expect("phash")
            .distance(&Hash64::from_hex(phash).expect("hex"));
        let dd = h
            .dhash
            .expect("dhash")
            .distance(&Hash64::from_hex(dhash).expect("hex"));
        if dp + dd > 0 {
            drift.push(format!("{name}: pHash drifted {dp} bits, dHash {dd} bits"));
        }
    }
    assert!(
        drift.is_empty(),
        "64-bit hashes changed:\n{}",
        drift.join("\n")
    );
}

#[test]
fn pdq_is_stable() {
    let hasher = HasherBuilder::new().build();
    let mut drift = Vec::new();
    for (name, pdq) in PINNED_PDQ {
        let h = hasher.hash_bytes(&read_fixture(name)).expect("hash");
        let d = h
            .pdq
            .expect("pdq")
            .hash
            .distance(&Hash256::from_hex(pdq).expect("hex"));
        if d > 0 {
            drift.push(format!("{name}: PDQ drifted {d} bits"));
        }
    }
    assert!(drift.is_empty(), "PDQ changed:\n{}", drift.join("\n"));
}

#[test]
fn phash_sets_about_half_its_bits() {
    // Guards the choice of a median threshold: a mean threshold leaves nearly all bits 0.
    let hasher = HasherBuilder::new().build();
    for (name, _, _) in PINNED_64 {
        let ones = hasher
            .hash_bytes(&read_fixture(name))
            .expect("hash")
            .phash
            .expect("phash")
            .count_ones();
        assert!((24..=40).contains(&ones), "{name}: {ones} bits set");
    }
}

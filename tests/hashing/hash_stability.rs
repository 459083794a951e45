//! Hash stability: banks hold hashes computed months ago, so the same file must keep hashing the
//! same way across upgrades of `image`, `image_hasher` or vigie itself. Each failure reports the
//! Hamming drift, which says how many banked matches an upgrade would cost.

use crate::common;

use common::*;
use vigie::bits::{Hash64, Hash256};
use vigie::hashing::HasherBuilder;

/// (fixture, pHash, dHash) pinned when the configurations in `src/hashing/perceptual64.rs` were chosen.
/// Pins moved twice, deliberately, both in issue 7:
/// - the EXIF-rotated JPEG's pHash, by 2 bits, when JPEG decoding moved from `image`'s decoder to
///   libjpeg-turbo (the decoder Meta's tool chain uses; `7764daa51aa3159a` before);
/// - the dHash of the two JPEGs decoded at reduced scale, by 1 and 2 bits, when a reduced decode
///   started returning the coded luma (Y, BT.601) instead of RGB turned into Rec. 709 luma
///   (`f4f0f0e0e0e24218` and `3733536b8c5cc1de` before): the hashes' shared luminance pass, which
///   spares the chroma work (a 2 MP JPEG decodes in 3.2 ms instead of 3.9).
///
/// Since issue 15 (schema 5) the same bits are written in Python `imagehash`'s order: every byte
/// of the hex text has its bits reversed against the order above (the pins were
/// `f764daa518a3159a f4f0f0e0e0e24219`, `a1c24f393e86dc53 3d33536b8c5cc1de`,
/// `5f63a19c504b0ff4 8046208696780964`, `f764daa51aa1159a f4f0f0e0e0e24218`);
/// [`the_pins_are_the_old_pins_in_imagehash_order`] checks that this moved no bit.
///
/// The drift from `image_hasher` on the full picture over the whole corpus is measured below.
const PINNED_64: [(&str, &str, &str); 4] = [
    ("bridge.jpg", "ef265ba518c5a859", "2f0f0f0707474298"),
    ("wine.jpg", "8543f29c7c613bca", "bccccad6313a837b"),
    ("tux_747.png", "fac685390ad2f02f", "01620461691e9026"),
    (
        "formats/exif-orientation-6.jpg",
        "ef265ba55885a859",
        "2f0f0f0707474218",
    ),
];

/// The pins of schema 4 (each byte least significant bit first), in [`PINNED_64`]'s order.
const PINNED_64_BEFORE_ISSUE_15: [(&str, &str); 4] = [
    ("f764daa518a3159a", "f4f0f0e0e0e24219"),
    ("a1c24f393e86dc53", "3d33536b8c5cc1de"),
    ("5f63a19c504b0ff4", "8046208696780964"),
    ("f764daa51aa1159a", "f4f0f0e0e0e24218"),
];

#[test]
fn the_pins_are_the_old_pins_in_imagehash_order() {
    let turn =
        |hex: &str| vigie::store::schema_5_order(Hash64::from_hex(hex).expect("hex")).to_hex();
    for ((name, phash, dhash), (old_p, old_d)) in PINNED_64.iter().zip(PINNED_64_BEFORE_ISSUE_15) {
        assert_eq!(turn(old_p), *phash, "{name}");
        assert_eq!(turn(old_d), *dhash, "{name}");
    }
}

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

/// The fixtures whose PDQ moved from its pin, with the drift in bits.
fn pdq_drift(hasher: &vigie::hashing::ImageHasher, pins: &[(&str, &str)]) -> Vec<String> {
    let mut drift = Vec::new();
    for (name, pdq) in pins {
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
    drift
}

#[test]
fn pdq_is_stable() {
    // Meta's hashes are reproduced at full-size decoding (the default reduces bridge.jpg and
    // wine.jpg to half scale; that path is pinned in `reduced_decoding_pdq_is_stable`).
    let hasher = HasherBuilder::new().decode_min_side(None).build();
    let drift = pdq_drift(&hasher, &PINNED_PDQ);
    assert!(drift.is_empty(), "PDQ changed:\n{}", drift.join("\n"));
}

/// PDQ on the default path (JPEGs decoded at a reduced scale, see `DEFAULT_DECODE_MIN_SIDE`):
/// `bridge.jpg` (1024x576) and `wine.jpg` (683x1024) are decoded at half scale (luma only) and
/// both land on Meta's hash exactly. (Before the luma-only decode, bridge's landed 2 bits away:
/// `3779ec1e1989726e8d9531cb8c54998993a658cd8f8a985d4d8d36d2d36d29b2`.)
#[test]
fn reduced_decoding_pdq_is_stable() {
    let pinned = [
        (
            "bridge.jpg",
            "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2",
        ),
        (
            "wine.jpg",
            "188f8d99b54f326353b043910e76ef7499e19429feee62c3629f5c1c35272561",
        ),
    ];
    let drift = pdq_drift(&HasherBuilder::new().build(), &pinned);
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

/// What the speed work of issue 7 (JPEGs decoded at a reduced scale, the picture box-averaged
/// before `image_hasher`) costs the 64-bit hashes: over the corpus, the distance between each
/// hash as vigie computes it and `image_hasher` run on the full-size decoded picture.
#[test]
fn reduced_inputs_move_the_64_bit_hashes_by_a_few_bits() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIPPED: ../shared/corpus not found");
        return;
    };
    let hasher = HasherBuilder::new().build();
    let reference = vigie::hashing::perceptual64::Perceptual64::default();
    let mut drifts: Vec<(u32, u32, String)> = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(shared.join("corpus"))
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e != "tsv" && e != "md"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = std::fs::read(&path).expect("read");
        let Ok(h) = hasher.hash_bytes(&bytes) else {
            continue;
        };
        let full = vigie::hashing::decode::decode(&bytes, hasher.limits()).expect("decode");
        let displayed = vigie::hashing::displayed_picture(&full);
        let dp = h
            .phash
            .expect("phash")
            .distance(&reference.phash(&displayed));
        let dd = h
            .dhash
            .expect("dhash")
            .distance(&reference.dhash(&displayed));
        drifts.push((
            dp,
            dd,
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into(),
        ));
    }
    assert!(drifts.len() > 100, "corpus read: {}", drifts.len());
    let n = drifts.len();
    let stats = |pick: fn(&(u32, u32, String)) -> u32| {
        let mut v: Vec<u32> = drifts.iter().map(pick).collect();
        v.sort_unstable();
        let mean = v.iter().map(|&d| f64::from(d)).sum::<f64>() / n as f64;
        (mean, v[(n * 95).div_ceil(100) - 1], v[n - 1])
    };
    let (p_mean, p_p95, p_max) = stats(|d| d.0);
    let (d_mean, d_p95, d_max) = stats(|d| d.1);
    eprintln!(
        "over {n} corpus files, drift from image_hasher on the full picture: pHash mean {p_mean:.2} p95 {p_p95} max {p_max}; dHash mean {d_mean:.2} p95 {d_p95} max {d_max}"
    );
    // The default 64-bit thresholds are 8 bits (`MaxDistances`): the drift must stay well inside.
    assert!(p_mean <= 2.0 && d_mean <= 2.0, "{drifts:?}");
    assert!(p_p95 <= 5 && d_p95 <= 5, "{drifts:?}");
}

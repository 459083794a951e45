//! Agreement of vigie's PDQ with Meta's tool chain (hasher-matcher-actioner: Pillow decode, C++ PDQ).
//!
//! The fixture test always runs; the full test reads `../shared/reference/pdq-reference.tsv` and
//! skips with a message when `../shared` is absent.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use common::*;
use vigie::bits::Hash256;
use vigie::hashing::{AlgorithmSet, Dihedral, HasherBuilder, ImageHashes};

fn hex256(s: &str) -> Hash256 {
    Hash256::from_hex(s).unwrap_or_else(|e| panic!("bad reference hash {s}: {e}"))
}

/// The hash to compare with Meta's, under Meta's rule: Meta applies no EXIF orientation and hashes
/// the RGB under the alpha channel, which is what `pdq_meta` is. Where the two rules see the same
/// pixels, `pdq_meta` is absent and `pdq` is the one.
fn meta_rule_hash(h: &ImageHashes) -> Hash256 {
    h.pdq_meta.or(h.pdq).expect("pdq computed").hash
}

#[test]
fn fixtures_agree_with_meta() {
    let hasher = hasher_with_dihedral();
    let rows = read_reference(&fixture("pdq-meta.tsv"));
    assert_eq!(rows.len(), 3);
    for row in rows {
        let h = hash_file(&hasher, &fixture(&row.file));
        let d = meta_rule_hash(&h).distance(&hex256(&row.pdq));
        assert!(d <= 2, "{}: {d} bits from Meta's PDQ", row.file);
        let quality = h.pdq.expect("pdq").quality;
        assert_eq!(
            quality >= 50,
            row.quality >= 50,
            "{}: quality {quality} vs Meta's {}",
            row.file,
            row.quality
        );
        assert_eq!(h.md5.expect("md5").to_hex(), row.md5, "{}", row.file);
        assert_eq!(
            h.sha256.expect("sha256").to_hex(),
            row.sha256,
            "{}",
            row.file
        );
    }
}

#[test]
fn transparent_picture_is_hashed_as_displayed_on_white() {
    // tux_747.png has an alpha channel. `pdq` must be the hash of the picture flattened on white,
    // which we rebuild here independently and save as an opaque PNG.
    let hasher = hasher_with_dihedral();
    let bytes = read_fixture("tux_747.png");
    let h = hasher.hash_bytes(&bytes).expect("hash");
    assert!(h.has_alpha);
    let meta = h
        .pdq_meta
        .expect("a transparent file carries the hash under Meta's rule");
    let rgba = image::load_from_memory(&bytes).expect("decode").to_rgba8();
    let flat = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y);
        let a = f32::from(p[3]) / 255.0;
        image::Rgb([0, 1, 2].map(|c| (f32::from(p[c]) * a + 255.0 * (1.0 - a)).round() as u8))
    });
    let mut png = Vec::new();
    flat.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode");
    let flat_hash = hasher.hash_bytes(&png).expect("hash");
    assert!(
        flat_hash.pdq_meta.is_none(),
        "an opaque PNG needs no second hash"
    );
    let pdq = h.pdq.expect("pdq").hash;
    assert!(pdq.distance(&flat_hash.pdq.expect("pdq").hash) <= 2);
    // And the two rules really see different pictures here (Meta's is the RGB under the alpha).
    assert!(
        pdq.distance(&meta.hash) > 31,
        "displayed and Meta-rule hashes should differ on this file"
    );
}

#[test]
fn every_reference_row_agrees_with_meta() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIPPED: ../shared/reference/pdq-reference.tsv not found");
        return;
    };
    let hasher = hasher_with_dihedral();
    let rows = read_reference(&shared.join("reference/pdq-reference.tsv"));
    let divergent: Vec<String> =
        std::fs::read_to_string(shared.join("reference/meta-divergences.tsv"))
            .expect("meta-divergences.tsv")
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next().map(str::to_string))
            .collect();
    assert_eq!(divergent.len(), 3);

    let mut hashes: HashMap<String, ImageHashes> = HashMap::new();
    let mut distances = Vec::new();
    let mut failures = Vec::new();
    for row in &rows {
        let h = hash_file(&hasher, &shared.join(&row.file));
        if h.md5.expect("md5").to_hex() != row.md5
            || h.sha256.expect("sha256").to_hex() != row.sha256
        {
            failures.push(format!("{}: exact hashes differ", row.file));
        }
        if divergent.contains(&row.file) {
            hashes.insert(row.file.clone(), h);
            continue;
        }
        let d = meta_rule_hash(&h).distance(&hex256(&row.pdq));
        // For EXIF-rotated files, Meta's hash must also be the dihedral hash that undoes the orientation.
        if h.orientation != Dihedral::Original {
            let undo = h.orientation.inverse();
            let idx = Dihedral::ALL
                .iter()
                .position(|t| *t == undo)
                .expect("transform");
            let dd = h.pdq_dihedral.expect("dihedral")[idx]
                .hash
                .distance(&hex256(&row.pdq));
            if dd > 10 {
                failures.push(format!(
                    "{}: dihedral {} is {dd} bits from Meta's",
                    row.file,
                    undo.name()
                ));
            }
        }
        if row.file.ends_with(".png") && d > 2 {
            failures.push(format!(
                "{}: PNG {d} bits from Meta's (lossless: at most 2)",
                row.file
            ));
        }
        let q = h.pdq.expect("pdq").quality;
        if (q >= 50) != (row.quality >= 50) {
            failures.push(format!(
                "{}: quality {q} vs Meta's {}",
                row.file, row.quality
            ));
        }
        distances.push((d, row.file.clone()));
        hashes.insert(row.file.clone(), h);
    }

    distances.sort();
    let n = distances.len();
    let mean = distances.iter().map(|(d, _)| f64::from(*d)).sum::<f64>() / n as f64;
    let p95 = distances[(n * 95).div_ceil(100) - 1].0;
    let mut histogram: std::collections::BTreeMap<u32, usize> = Default::default();
    for (d, _) in &distances {
        *histogram.entry(*d).or_default() += 1;
    }
    eprintln!(
        "PDQ distance to Meta's over {n} files: mean {mean:.3}, p95 {p95}, max {}",
        distances[n - 1].0
    );
    eprintln!("distance -> files: {histogram:?}");
    for (d, f) in distances.iter().rev().take(5) {
        eprintln!("  {d:3} {f}");
    }
    assert!(mean <= 2.0, "mean distance {mean}");
    assert!(p95 <= 6, "95th percentile {p95}");

    // Where Meta's tool chain is wrong about the picture, vigie hashes the picture: every pixel
    // mode of the same photo lands within a few bits of the original JPEG, with its quality.
    let original = &hashes["reference/pdq-data/misc-images/modes/original.jpg"];
    let original_pdq = original.pdq.expect("pdq");
    for (file, h) in hashes
        .iter()
        .filter(|(f, _)| f.contains("/misc-images/modes/"))
    {
        let p = h.pdq.expect("pdq");
        let d = p.hash.distance(&original_pdq.hash);
        if d > 6 {
            failures.push(format!("{file}: {d} bits from modes/original.jpg"));
        }
        if (p.quality >= 50) != (original_pdq.quality >= 50) {
            failures.push(format!(
                "{file}: quality {} vs the original's {}",
                p.quality, original_pdq.quality
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rotated_and_mirrored_bridges_match_the_originals_dihedral_hashes() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIPPED: ../shared not found");
        return;
    };
    let dir = shared.join("reference/pdq-data/reg-test-input/dih");
    let hasher = hasher_with_dihedral();
    let original = hash_file(&hasher, &dir.join("bridge-1-original.jpg"));
    let dihedral = original.pdq_dihedral.expect("dihedral");
    // Meta's file names use its own convention: "rotate-90" is counter-clockwise, "flipx" flips
    // about the x axis (top-bottom), "flip-plus-1" mirrors about the main diagonal.
    let cases = [
        ("bridge-1-original.jpg", Dihedral::Original),
        ("bridge-2-rotate-90.jpg", Dihedral::Rotate270),
        ("bridge-3-rotate-180.jpg", Dihedral::Rotate180),
        ("bridge-4-rotate-270.jpg", Dihedral::Rotate90),
        ("bridge-5-flipx.jpg", Dihedral::FlipVertical),
        ("bridge-6-flipy.jpg", Dihedral::FlipHorizontal),
        ("bridge-7-flip-plus-1.jpg", Dihedral::Transpose),
        ("bridge-8-flip-minus-1.jpg", Dihedral::Transverse),
    ];
    for (file, t) in cases {
        let h = hash_file(&hasher, &dir.join(file)).pdq.expect("pdq").hash;
        let idx = Dihedral::ALL
            .iter()
            .position(|x| *x == t)
            .expect("transform");
        let d = h.distance(&dihedral[idx].hash);
        eprintln!("{file}: {d} bits from the original's {} hash", t.name());
        assert!(
            d <= 10,
            "{file}: {d} bits from the original's {} hash",
            t.name()
        );
        // And it is not near any other transform.
        for (j, other) in dihedral.iter().enumerate() {
            if j != idx {
                assert!(
                    h.distance(&other.hash) > 31,
                    "{file} also near {}",
                    Dihedral::ALL[j].name()
                );
            }
        }
    }
}

#[test]
fn reference_paths_resolve() {
    // Guards the skip logic above: when ../shared exists, the files it names must be readable.
    if let Some(shared) = shared_dir() {
        for row in read_reference(&shared.join("reference/pdq-reference.tsv")) {
            assert!(Path::new(&shared.join(&row.file)).exists(), "{}", row.file);
        }
    }
}

/// Decoding JPEGs at a reduced DCT scale (issue 7) against Meta's full-size hashes: for each
/// setting of `decode_min_side`, the distance over the JPEGs it actually reduces. The default's
/// distances must stay within the bounds of the full-size pipeline above.
#[test]
fn reduced_scale_jpeg_decoding_keeps_agreement_with_meta() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIPPED: ../shared/reference/pdq-reference.tsv not found");
        return;
    };
    let rows = read_reference(&shared.join("reference/pdq-reference.tsv"));
    let jpegs: Vec<_> = rows
        .iter()
        .filter(|r| {
            let f = r.file.to_ascii_lowercase();
            (f.ends_with(".jpg") || f.ends_with(".jpeg")) && !f.contains("cmyk")
        })
        .map(|r| {
            let bytes = std::fs::read(shared.join(&r.file)).expect("read");
            (r, bytes)
        })
        .collect();
    let mut default_distances = Vec::new();
    for min_side in [None, Some(1024), Some(512), Some(256), Some(128)] {
        let hasher = HasherBuilder::new()
            .algorithms(AlgorithmSet::parse("pdq").expect("algos"))
            .decode_min_side(min_side)
            .build();
        let mut reduced = Vec::new();
        for (row, bytes) in &jpegs {
            let header = vigie::hashing::decode::read_header(bytes, hasher.limits()).expect("hdr");
            if vigie::hashing::decode::scale_denominator_for(header.width, header.height, min_side)
                == 1
                && min_side.is_some()
            {
                continue;
            }
            let h = hasher.hash_bytes(bytes).expect("hash");
            let d = meta_rule_hash(&h).distance(&hex256(&row.pdq));
            reduced.push((d, row.file.clone()));
        }
        reduced.sort();
        let n = reduced.len().max(1);
        let mean = reduced.iter().map(|(d, _)| f64::from(*d)).sum::<f64>() / n as f64;
        let p95 = reduced.get((n * 95).div_ceil(100) - 1).map_or(0, |r| r.0);
        let max = reduced.last().map_or(0, |r| r.0);
        eprintln!(
            "decode_min_side {min_side:?}: {} JPEGs decoded at a reduced scale; distance to Meta's mean {mean:.2}, p95 {p95}, max {max}",
            reduced.len()
        );
        if min_side == Some(vigie::hashing::DEFAULT_DECODE_MIN_SIDE) {
            default_distances = reduced;
        }
    }
    assert!(
        default_distances.len() >= 3,
        "the corpus's large photos are decoded reduced"
    );
    let n = default_distances.len();
    let mean = default_distances
        .iter()
        .map(|(d, _)| f64::from(*d))
        .sum::<f64>()
        / n as f64;
    assert!(mean <= 2.0, "mean distance {mean}: {default_distances:?}");
    assert!(
        default_distances[(n * 95).div_ceil(100) - 1].0 <= 6,
        "{default_distances:?}"
    );
}

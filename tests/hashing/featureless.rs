//! Degenerate and featureless pictures (issue 15, kind 3): a picture with a side under 5 pixels
//! has no PDQ (as Meta: all zeros, quality 0) and no usable 64-bit hash; a flat or near-flat
//! picture matches nothing by any perceptual hash, and banking one says so. The field cases are in
//! `tests/fixtures/field-cases/`, copied from `../shared/field-cases/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use crate::common::*;
use vigie::bits::Hash256;
use vigie::hashing::{HashingSetup, ImageHasher, ImageHashes};
use vigie::matcher::{
    HashIndexes, LiveBanks, MIN_64_QUALITY, MIN_PDQ_QUALITY, QueryHashes, ScreenOptions,
    entry_hashes,
};
use vigie::store::{Change, NewBank, NewEntry, Origin, Store};

fn case(name: &str) -> PathBuf {
    fixture(&format!("field-cases/{name}"))
}

fn expected(name: &str) -> serde_json::Value {
    let path = case(name).join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json")
}

/// What the service computes for a screen (`HashingSetup::screening`).
fn upload_hasher() -> ImageHasher {
    HashingSetup::default().screening()
}

/// What the service computes for a banked picture (`HashingSetup::banking`).
fn bank_hasher() -> ImageHasher {
    HashingSetup::default().banking()
}

/// The field case `tiny-and-thin`, through `vigie hash --dihedral` as its `run.sh` runs it: every
/// PDQ is Meta's (expected.json, from Meta's own pipeline), the pictures with a side under 5
/// pixels have the all-zero PDQ of quality 0 under every rotation, and their 64-bit hashes
/// quality 0.
#[test]
fn tiny_and_thin_pictures_hash_as_meta_does() {
    let dir = case("tiny-and-thin");
    let want = expected("tiny-and-thin");
    let want = want.as_object().expect("object");
    let mut names: Vec<&String> = want.keys().collect();
    names.sort();
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["hash", "--dihedral"])
        .args(names.iter().map(|n| dir.join(n)))
        .output()
        .expect("run vigie");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), names.len());
    let zero = "0".repeat(64);
    for (name, line) in names.iter().zip(&lines) {
        let pdq = &line["hashes"]["pdq"];
        assert_eq!(pdq["hex"], want[*name]["pdq"], "{name}");
        assert_eq!(pdq["quality"], want[*name]["quality"], "{name}");
        let (w, h) = (
            line["width"].as_u64().expect("width"),
            line["height"].as_u64().expect("height"),
        );
        let tiny = w.min(h) < 5;
        assert_eq!(tiny, want[*name]["pdq"] == zero.as_str(), "{name}");
        for turned in line["pdq_dihedral"].as_array().expect("dihedral") {
            assert_eq!(turned["hex"] == zero.as_str(), tiny, "{name}: {turned}");
        }
        for algorithm in ["phash", "dhash"] {
            let q = line["hashes"][algorithm]["quality"]
                .as_u64()
                .expect("quality");
            if tiny {
                assert_eq!(q, 0, "{name} {algorithm}");
            }
        }
    }
}

/// The same pictures as uploads and as banked pictures: nothing of a tiny picture is looked up
/// or kept but its exact hashes.
#[test]
fn tiny_pictures_are_never_matched_by_a_perceptual_hash() {
    let dir = case("tiny-and-thin");
    for name in [
        "pic-1x1.png",
        "pic-2x3.png",
        "pic-3x500.png",
        "pic-20000x3.png",
        "pic-240x1.png",
    ] {
        let upload = hash_file(&upload_hasher(), &dir.join(name));
        let mut notes = Vec::new();
        let q = QueryHashes::from_image(&upload, &mut notes);
        assert!(
            q.pdq.is_empty() && q.pdq_regions.is_empty() && q.pdq_trial_turns.is_empty(),
            "{name}"
        );
        assert!(q.phash.is_none() && q.dhash.is_none(), "{name}");
        assert!(
            q.phash_turned.is_empty() && q.dhash_turned.is_empty(),
            "{name}"
        );
        assert!(
            q.phash_regions.is_empty() && q.dhash_regions.is_empty(),
            "{name}"
        );
        assert!(q.md5.is_some(), "{name}: exact hashes still match");
        assert!(notes.iter().any(|n| n.contains("PDQ")), "{name}: {notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("pHash")),
            "{name}: {notes:?}"
        );
        let banked = entry_hashes(&hash_file(&bank_hasher(), &dir.join(name)));
        assert_eq!(banked.pdq, Some(Hash256::zero()), "{name}");
        assert!(banked.phash.is_none() && banked.dhash.is_none(), "{name}");
        assert_eq!(banked.windows().count(), 0, "{name}");
    }
}

/// An in-memory bank of `pictures` (external id, hashes), as the service holds it.
struct Bank(LiveBanks);

impl Bank {
    fn new(pictures: &[(&str, &ImageHashes)]) -> Bank {
        let banks =
            LiveBanks::open(Arc::new(Store::in_memory()), HashingSetup::default()).expect("open");
        let origin = Origin::now("t");
        let bank = NewBank {
            name: "ads".into(),
            ..NewBank::default()
        };
        banks
            .apply(Change::CreateBank { bank }, &origin)
            .expect("bank");
        let entries = pictures
            .iter()
            .map(|(id, h)| NewEntry {
                external_id: id.to_string(),
                hashes: entry_hashes(h),
                ..NewEntry::default()
            })
            .collect();
        let change = Change::UpsertEntries {
            bank: "ads".into(),
            entries,
        };
        banks.apply(change, &origin).expect("upsert");
        Bank(banks)
    }

    /// The external ids an upload matches, and the screen's notes.
    fn screen(&self, upload: &ImageHashes) -> (Vec<String>, Vec<String>) {
        let outcome = self
            .0
            .screen_image_hashes(upload, &ScreenOptions::default())
            .expect("screen");
        (
            outcome
                .matches
                .iter()
                .map(|m| format!("{} {} {}", m.external_id, m.algorithm, m.distance))
                .collect(),
            outcome.notes,
        )
    }
}

/// The field case `featureless-64bit`: a flat pink card with a little text is banked; a beige
/// card, plain white and plain navy are screened. Before issue 15 all three matched it by dHash
/// at distance 1-3 with confidence 0.999. Now each of the four is below both quality floors, the
/// card's 64-bit hashes are not kept, and no upload matches anything.
#[test]
fn featureless_pictures_match_nothing_by_any_perceptual_hash() {
    let dir = case("featureless-64bit");
    let card = hash_file(&bank_hasher(), &dir.join("banked-pink-card.png"));
    assert!(card.pdq.expect("pdq").quality < MIN_PDQ_QUALITY);
    let card_quality = card.quality64.expect("quality64");
    assert!(card_quality < MIN_64_QUALITY, "card {card_quality}");
    // Meta's PDQ of the card, and vigie's, agree on its quality being far below 50.
    let meta = expected("featureless-64bit");
    let meta_quality = meta["banked-pink-card.png"]["meta_pdq"]["quality"]
        .as_u64()
        .expect("quality");
    assert!(meta_quality < 50, "{meta_quality}");
    let bank = Bank::new(&[("card-1", &card)]);
    for name in [
        "upload-beige-card.png",
        "upload-white.png",
        "upload-navy.png",
    ] {
        let upload = hash_file(&upload_hasher(), &dir.join(name));
        let q = upload.quality64.expect("quality64");
        assert!(q < MIN_64_QUALITY, "{name}: {q}");
        let (matches, notes) = bank.screen(&upload);
        assert!(matches.is_empty(), "{name}: {matches:?}");
        assert!(
            notes.iter().any(|n| n.contains("pHash")),
            "{name}: {notes:?}"
        );
    }
    // Even with the card's 64-bit hashes banked from a list (no quality known for them), the
    // flat uploads look nothing up by them.
    let mut listed = vigie::store::EntryHashes::default();
    listed.set(vigie::store::HashValue::Dhash(card.dhash.expect("dhash")));
    listed.set(vigie::store::HashValue::Phash(card.phash.expect("phash")));
    let change = Change::UpsertEntries {
        bank: "ads".into(),
        entries: vec![NewEntry {
            external_id: "card-from-a-list".into(),
            hashes: listed,
            ..NewEntry::default()
        }],
    };
    bank.0.apply(change, &Origin::now("t")).expect("upsert");
    for name in [
        "upload-beige-card.png",
        "upload-white.png",
        "upload-navy.png",
    ] {
        let upload = hash_file(&upload_hasher(), &dir.join(name));
        let q = QueryHashes::from_image(&upload, &mut Vec::new());
        let found = bank.0.indexes().candidates(&q, |_| Some(8));
        assert!(found.is_empty(), "{name}: {found:?}");
        let (matches, _) = bank.screen(&upload);
        assert!(matches.is_empty(), "{name}: {matches:?}");
    }
}

/// The floor costs no real match: a photo and an edited copy of it still meet by pHash and dHash
/// alone, and its quality is far above the floor.
#[test]
fn photos_keep_their_64_bit_matches() {
    let bytes = read_fixture("bridge.jpg");
    let banked = bank_hasher().hash_bytes(&bytes).expect("hash");
    assert!(banked.quality64.expect("quality64") >= MIN_64_QUALITY);
    let hashes = entry_hashes(&banked);
    assert!(hashes.phash.is_some() && hashes.dhash.is_some());
    // A darker, smaller, recompressed copy.
    let picture = image::load_from_memory(&bytes).expect("decode");
    let copy = image::DynamicImage::ImageRgb8(picture.brighten(-40).thumbnail(400, 400).to_rgb8());
    let mut jpeg = Vec::new();
    copy.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut jpeg, 50,
    ))
    .expect("encode");
    let upload = upload_hasher().hash_bytes(&jpeg).expect("hash");
    let mut notes = Vec::new();
    let q = QueryHashes::from_image(&upload, &mut notes);
    assert!(q.phash.is_some() && q.dhash.is_some(), "{notes:?}");
    let indexes = HashIndexes::new();
    indexes.insert(1, &hashes);
    let found = indexes.candidates(&q, |a| {
        matches!(
            a,
            vigie::store::Algorithm::Phash | vigie::store::Algorithm::Dhash
        )
        .then_some(8)
    });
    let by = |a| {
        found
            .iter()
            .any(|c| c.id == 1 && c.algorithm == a && c.distance <= 8)
    };
    assert!(by(vigie::store::Algorithm::Phash), "{found:?}");
    assert!(by(vigie::store::Algorithm::Dhash), "{found:?}");
}

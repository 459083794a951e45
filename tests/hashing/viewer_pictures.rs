//! Hashing what a viewer sees (issue 15, kinds 1, 2, 6 and 7): the field cases of
//! `../shared/field-cases/` (copied into `tests/fixtures/field-cases/`) with their right values,
//! and the rest of each kind from small generated fixtures (`scripts/gen_jpeg_family.py`,
//! `scripts/gen_viewer_fixtures.py`).

use std::sync::Arc;

use crate::common::*;
use vigie::bits::{Hash64, Hash256};
use vigie::hashing::HashingSetup;
use vigie::hashing::{DecodeErrorKind, Dihedral, HasherBuilder, ImageHasher, ImageHashes, decode};
use vigie::matcher::{LiveBanks, MIN_PDQ_QUALITY, MatchInfo, ScreenOptions, entry_hashes};
use vigie::store::{Change, EntryHashes, NewBank, NewEntry, Origin, Store};

fn hex256(s: &str) -> Hash256 {
    Hash256::from_hex(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `expected.json` of a field case.
fn expected(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(&format!("field-cases/{case}/expected.json")))
        .expect("expected.json");
    serde_json::from_str(&text).expect("json")
}

fn hash(hasher: &ImageHasher, name: &str) -> ImageHashes {
    hasher
        .hash_bytes(&read_fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn full_size() -> ImageHasher {
    HasherBuilder::new().decode_min_side(None).build()
}

/// One block bank holding `entries` (external id, hashes), as the service holds it.
fn bank(entries: Vec<(&str, EntryHashes)>) -> LiveBanks {
    let banks =
        LiveBanks::open(Arc::new(Store::in_memory()), HashingSetup::default()).expect("open");
    let origin = Origin::now("test");
    let bank = NewBank {
        name: "ads".into(),
        ..NewBank::default()
    };
    banks
        .apply(Change::CreateBank { bank }, &origin)
        .expect("bank");
    let entries: Vec<NewEntry> = entries
        .into_iter()
        .map(|(id, hashes)| NewEntry {
            external_id: id.into(),
            hashes,
            ..NewEntry::default()
        })
        .collect();
    let change = Change::UpsertEntries {
        bank: "ads".into(),
        entries,
    };
    banks.apply(change, &origin).expect("entries");
    banks
}

/// Screen an upload's hashes as the service does: its matches and notes.
fn screen(bank: &LiveBanks, upload: &ImageHashes) -> (Vec<MatchInfo>, Vec<String>) {
    let outcome = bank
        .screen_image_hashes(upload, &ScreenOptions::default())
        .expect("screen");
    (outcome.matches, outcome.notes)
}

fn pdq_entry(hex: &str) -> EntryHashes {
    EntryHashes {
        pdq: Some(hex256(hex)),
        ..EntryHashes::default()
    }
}

// ---- kind 1: legal JPEGs -------------------------------------------------------------------------

#[test]
fn field_case_jpeg_unusual_sampling_hashes_as_meta_does() {
    let want = expected("jpeg-unusual-sampling");
    for hasher in [HasherBuilder::new().build(), full_size()] {
        for name in [
            "photo-420-control.jpg",
            "photo-410.jpg",
            "photo-441.jpg",
            "photo-3x1.jpg",
        ] {
            let h = hash(
                &hasher,
                &format!("field-cases/jpeg-unusual-sampling/{name}"),
            );
            let pdq = h.pdq.expect("pdq");
            let d = pdq
                .hash
                .distance(&hex256(want[name]["pdq"].as_str().expect("expected pdq")));
            assert!(d <= 2, "{name}: {d} bits from Meta's PDQ");
            assert_eq!(u64::from(pdq.quality), want[name]["quality"], "{name}");
            assert!(h.warnings.is_empty(), "{name}: {:?}", h.warnings);
        }
    }
}

/// What vigie must answer for one file of `tests/fixtures/jpeg-family/`.
enum Answer {
    /// Hashed, at most this many PDQ bits from the 4:4:4 control (the same 128x72 picture
    /// re-encoded at quality 90 in another layout).
    Hash(u32),
    /// `unsupported_format`, the message saying this.
    Unsupported(&'static str),
}

use Answer::{Hash, Unsupported};

/// Every layout of `tests/fixtures/jpeg-family/` and its answer. A file added there without an
/// answer here fails the test.
const JPEG_FAMILY: &[(&str, Answer)] = &[
    ("s444.jpg", Hash(0)),
    ("s2x1.jpg", Hash(6)),
    ("s2x2.jpg", Hash(6)),
    ("s1x2.jpg", Hash(6)),
    ("s4x1.jpg", Hash(6)),
    ("s4x2.jpg", Hash(6)),
    ("s1x4.jpg", Hash(6)),
    ("s3x1.jpg", Hash(6)),
    ("s3x2.jpg", Hash(6)),
    ("s2x4.jpg", Hash(6)),
    ("s2x3.jpg", Hash(6)),
    ("s3x3-scan-per-component.jpg", Hash(6)),
    ("s4x4-scan-per-component.jpg", Hash(6)),
    ("s4x3-scan-per-component.jpg", Hash(6)),
    ("s4x4-2x2-1x1.jpg", Hash(6)),
    // Luma coded at half the resolution (1x1 against the chroma's 2x2): the file itself holds
    // less of the picture than the others.
    ("chroma-finer-than-luma.jpg", Hash(24)),
    ("cb-full-cr-quarter.jpg", Hash(6)),
    ("arithmetic.jpg", Hash(6)),
    ("arithmetic-progressive.jpg", Hash(6)),
    ("arithmetic-s3x1.jpg", Hash(6)),
    ("restart-every-mcu.jpg", Hash(6)),
    ("restart-every-row-s4x2.jpg", Hash(6)),
    ("progressive.jpg", Hash(6)),
    ("progressive-s4x2.jpg", Hash(6)),
    ("progressive-100-scans.jpg", Hash(10)),
    ("progressive-190-scans.jpg", Hash(10)),
    ("rgb.jpg", Hash(10)),
    ("grey.jpg", Hash(6)),
    ("grey-s2x2.jpg", Hash(6)),
    ("cmyk-adobe.jpg", Hash(10)),
    ("ycck-adobe.jpg", Hash(10)),
    ("own-encoder-s2x2.jpg", Hash(10)),
    ("s3x1-exif-orientation-6.jpg", Hash(6)),
    ("lossless.jpg", Unsupported("lossless")),
    ("precision-12.jpg", Unsupported("12-bit")),
    ("two-components.jpg", Unsupported("2 colour components")),
    ("fractional-s3x1-2x1-1x1.jpg", Unsupported("fractional")),
    ("progressive-568-scans.jpg", Unsupported("568 scans")),
];

#[test]
fn every_legal_jpeg_layout_hashes_or_says_why_it_cannot() {
    let mut listed: Vec<&str> = JPEG_FAMILY.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(fixture("jpeg-family"))
        .expect("jpeg-family")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed, "every fixture has its answer here");

    let mut report = Vec::new();
    for hasher in [HasherBuilder::new().build(), full_size()] {
        let control = hash(&hasher, "jpeg-family/s444.jpg").pdq.expect("pdq");
        assert!(control.quality >= MIN_PDQ_QUALITY);
        for (name, answer) in JPEG_FAMILY {
            let bytes = read_fixture(&format!("jpeg-family/{name}"));
            match (hasher.hash_bytes(&bytes), answer) {
                (Ok(h), Hash(max)) => {
                    let mut pdq = h.pdq.expect("pdq");
                    if h.orientation != Dihedral::Original {
                        // The EXIF-rotated copy: compare the stored pixels.
                        pdq = h.pdq_meta.expect("pdq_meta");
                    }
                    let d = pdq.hash.distance(&control.hash);
                    report.push(format!("{name}: {d}"));
                    assert!(d <= *max, "{name}: {d} bits from the 4:4:4 control");
                    assert!(pdq.quality >= MIN_PDQ_QUALITY, "{name}: {pdq:?}");
                    assert!(h.warnings.is_empty(), "{name}: {:?}", h.warnings);
                }
                (Err(e), Unsupported(reason)) => {
                    assert_eq!(e.kind, DecodeErrorKind::UnsupportedFormat, "{name}: {e}");
                    assert!(e.message.contains(reason), "{name}: {e}");
                }
                (Ok(_), Unsupported(reason)) => {
                    panic!("{name}: hashed, expected refusal ({reason})")
                }
                (Err(e), Hash(_)) => panic!("{name}: {e}"),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_exif_orientation_of_an_unusual_layout_is_read() {
    let h = hash(
        &HasherBuilder::new().build(),
        "jpeg-family/s3x1-exif-orientation-6.jpg",
    );
    assert_eq!(h.orientation, Dihedral::Rotate90);
    assert_eq!((h.width, h.height), (72, 128));
    // Its stored pixels are those of the file without the EXIF segment.
    let plain = hash(&HasherBuilder::new().build(), "jpeg-family/s3x1.jpg");
    assert_eq!(h.pdq_meta, plain.pdq);
}

#[test]
fn exact_hashes_of_a_jpeg_no_decoder_here_reads_are_still_given() {
    // The exact hashes need no pixels: a lossless JPEG's SHA-256 can be banked and matched.
    let hasher = HasherBuilder::new()
        .algorithms(vigie::hashing::AlgorithmSet::parse("md5,sha256").expect("algorithms"))
        .build();
    let h = hash(&hasher, "jpeg-family/lossless.jpg");
    assert!(h.sha256.is_some() && h.md5.is_some());
    assert_eq!((h.width, h.height), (128, 72));
}

#[test]
fn a_refused_header_does_not_spoil_the_next_jpeg() {
    // TurboJPEG leaves a handle whose header call failed mid-header: the next file on the same
    // thread was then refused or given a 0x0 header.
    let good = read_fixture("jpeg-family/s444.jpg");
    for bad in [
        read_fixture("jpeg-family/lossless.jpg"),
        read_fixture("jpeg-family/precision-12.jpg"),
        good[..300].to_vec(),
    ] {
        let _ = vigie::hashing::turbo::read_header(&bad);
        let header = vigie::hashing::turbo::read_header(&good).expect("header");
        assert_eq!((header.width, header.height), (128, 72));
    }
}

// ---- kind 2: alpha no viewer honours -------------------------------------------------------------

#[test]
fn field_case_bmp_alpha_all_zero_is_hashed_as_shown_and_matches_the_photo() {
    let want = expected("bmp-alpha-all-zero");
    let photo = want["picture_pdq"]["pdq"].as_str().expect("pdq");
    let bank = bank(vec![("photo-23", pdq_entry(photo))]);
    for name in ["photo-v3-alpha0.bmp", "photo-v5-alpha0.bmp"] {
        let h = hash(
            &HasherBuilder::new().build(),
            &format!("field-cases/bmp-alpha-all-zero/{name}"),
        );
        let pdq = h.pdq.expect("pdq");
        assert_eq!(
            pdq.hash,
            hex256(want[name]["pdq"].as_str().expect("pdq")),
            "{name}"
        );
        assert_eq!(u64::from(pdq.quality), want[name]["quality"], "{name}");
        assert!(!h.has_alpha, "{name}: shown opaque");
        let (matches, _) = screen(&bank, &h);
        assert_eq!(matches.len(), 1, "{name}: {matches:?}");
        assert_eq!(
            (matches[0].external_id.as_str(), matches[0].distance),
            ("photo-23", 0)
        );
    }
}

#[test]
fn bmp_alpha_is_dropped_only_when_every_value_is_zero() {
    let hasher = HasherBuilder::new().build();
    let photo = hash(&hasher, "viewer/photo.png").pdq.expect("pdq");
    for name in [
        "viewer/bmp-v3-alpha-all-zero.bmp",
        "viewer/bmp-v5-alpha-all-zero.bmp",
    ] {
        let h = hash(&hasher, name);
        assert!(!h.has_alpha, "{name}");
        assert_eq!(h.pdq.expect("pdq").hash, photo.hash, "{name}");
    }
    // Half transparent: honoured, as viewers do (the right half is white on a page).
    let half = hash(&hasher, "viewer/bmp-v5-alpha-half.bmp");
    assert!(half.has_alpha);
    assert!(half.pdq.expect("pdq").hash.distance(&photo.hash) > 31);
}

#[test]
fn stored_pixels_under_an_alpha_that_hides_them_are_screened() {
    // A PNG whose alpha is all 0: every viewer shows an empty page (PDQ quality 0), but the
    // stored pixels are the photo, and a banked photo must still be found.
    let hasher = HasherBuilder::new().build();
    let photo = hash(&hasher, "viewer/photo.png").pdq.expect("pdq");
    let h = hash(&hasher, "viewer/png-alpha-all-zero.png");
    assert!(h.has_alpha);
    assert!(h.pdq.expect("pdq").quality < MIN_PDQ_QUALITY);
    assert_eq!(h.pdq_meta.expect("pdq_meta").hash, photo.hash);
    let bank = bank(vec![("photo", pdq_entry(&photo.hash.to_hex()))]);
    let (matches, notes) = screen(&bank, &h);
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0].external_id, "photo");
    assert!(
        notes.iter().any(|n| n.contains("stored pixels")),
        "{notes:?}"
    );
}

// ---- kind 6: frames ------------------------------------------------------------------------------

#[test]
fn field_case_apng_hidden_default_image_screens_the_shown_frame() {
    let want = expected("apng-hidden-default-image");
    let h = hash(
        &HasherBuilder::new().build(),
        "field-cases/apng-hidden-default-image/ad.png",
    );
    // The default image is hashed as Meta's pipeline does...
    let default = hex256(want["default_image_pdq"].as_str().expect("pdq"));
    assert!(h.pdq.expect("pdq").hash.distance(&default) <= 2);
    // ... and the frame browsers show as well.
    let shown = hex256(want["shown_frame_pdq"].as_str().expect("pdq"));
    let frame = h
        .frames
        .iter()
        .min_by_key(|f| f.pdq.expect("frame pdq").hash.distance(&shown))
        .expect("a frame");
    assert!(
        frame.pdq.expect("pdq").hash.distance(&shown) <= 2,
        "{:?}",
        h.frames
    );
    let bank = bank(vec![("shown-91", pdq_entry(&shown.to_hex()))]);
    let (matches, _) = screen(&bank, &h);
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0].external_id, "shown-91");
    assert_eq!(matches[0].frame(), Some(frame.index));
}

/// Each animation of `tests/fixtures/viewer/` hides the photo in a frame other than its default
/// image: the frame is screened and the match says which.
#[test]
fn a_picture_in_any_frame_of_an_animation_is_found() {
    let hasher = HasherBuilder::new().build();
    let photo = hash(&hasher, "viewer/photo.png");
    let other = hash(&hasher, "viewer/other.png");
    let bank = bank(vec![
        ("photo", entry_hashes(&photo)),
        ("other", entry_hashes(&other)),
    ]);
    for (name, photo_frame) in [
        ("viewer/apng-hidden-default.png", 1),
        ("viewer/gif-photo-in-frame-1.gif", 1),
        ("viewer/webp-photo-in-frame-1.webp", 1),
    ] {
        let h = hash(&hasher, name);
        assert!(h.warnings.is_empty(), "{name}: {:?}", h.warnings);
        let (matches, _) = screen(&bank, &h);
        let found = |id: &str| matches.iter().find(|m| m.external_id == id);
        let m = found("photo").unwrap_or_else(|| panic!("{name}: {matches:?}"));
        assert_eq!(m.frame(), Some(photo_frame), "{name}");
        assert!(m.distance <= 8, "{name}: {m:?}");
        // Frames that barely change are skipped: the blank first frame is the GIF's and WebP's
        // default image, so only the two others are kept.
        assert_eq!(h.frames.len(), 2, "{name}: {:?}", h.frames);
        // The APNG's default image is the other picture: a match with no frame.
        if name.ends_with(".png") {
            assert_eq!(found("other").map(|m| m.frame()), Some(None), "{name}");
        } else {
            assert_eq!(found("other").map(|m| m.frame()), Some(Some(2)), "{name}");
        }
    }
    // A still picture has no frames.
    assert!(photo.frames.is_empty());
}

#[test]
fn frames_past_the_limit_are_not_decoded_and_the_answer_says_so() {
    // An animated GIF of more frames than the limit, each a different picture.
    let n = decode::MAX_ANIMATION_FRAMES + 5;
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        let frames = (0..n).map(|i| {
            let img = image::RgbaImage::from_fn(32, 32, |x, y| {
                let v = ((x * 7 + y * 13 + i * 29) % 256) as u8;
                image::Rgba([v, 255 - v, v / 2, 255])
            });
            image::Frame::new(img)
        });
        encoder.encode_frames(frames).expect("gif");
    }
    let mut decoded = 0;
    let read = decode::for_each_frame(&gif, &decode::DecodeLimits::default(), |_| decoded += 1);
    assert_eq!(read.decoded, decode::MAX_ANIMATION_FRAMES);
    assert_eq!(decoded, decode::MAX_ANIMATION_FRAMES);
    assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
    let h = HasherBuilder::new().build().hash_bytes(&gif).expect("hash");
    assert!(
        h.warnings.iter().any(|w| w.contains("not every frame")),
        "{:?}",
        h.warnings
    );
    // No more frames kept than decoded.
    assert!(h.frames.len() <= decode::MAX_ANIMATION_FRAMES as usize);
}

// ---- kind 7: truncated files ---------------------------------------------------------------------

#[test]
fn a_jpeg_cut_to_its_first_third_is_hashed_with_a_warning_and_never_banked() {
    let bytes = read_fixture("field-cases/jpeg-unusual-sampling/photo-420-control.jpg");
    let cut = &bytes[..bytes.len() / 3];
    let h = HasherBuilder::new()
        .build()
        .hash_bytes(cut)
        .expect("hashed");
    assert!(h.pdq.is_some());
    assert!(
        h.warnings.iter().any(|w| w.starts_with("truncated")),
        "{:?}",
        h.warnings
    );
    // A screen says so in its notes.
    let bank = bank(vec![("x", pdq_entry(&"0".repeat(64)))]);
    let (_, notes) = screen(&bank, &h);
    assert!(
        notes.iter().any(|n| n.starts_with("truncated")),
        "{notes:?}"
    );
    // The banking hasher refuses it.
    let e = HasherBuilder::new()
        .windows(true)
        .build()
        .hash_bytes(cut)
        .expect_err("not banked");
    assert_eq!(e.kind, DecodeErrorKind::Corrupt);
    assert!(e.message.contains("truncated"), "{e}");
    // The whole file is neither.
    let whole = HasherBuilder::new()
        .windows(true)
        .build()
        .hash_bytes(&bytes)
        .expect("whole");
    assert!(whole.warnings.is_empty());
}

/// Every format cut short: a picture that lost pixel data is refused (`corrupt`) or hashed with
/// a warning, never hashed silently.
#[test]
fn no_format_hashes_a_truncated_file_silently() {
    let hasher = HasherBuilder::new().build();
    let mut report = Vec::new();
    for name in [
        "formats/baseline.jpg",
        "formats/progressive.jpg",
        "formats/cmyk.jpg",
        "jpeg-family/s4x2.jpg",
        "jpeg-family/arithmetic.jpg",
        "jpeg-family/restart-every-mcu.jpg",
        "formats/reference.png",
        "formats/palette.png",
        "formats/lossy.webp",
        "formats/lossless.webp",
        "formats/two-frames.gif",
        "formats/small.bmp",
        "formats/small-lzw.tiff",
        "viewer/apng-hidden-default.png",
        "viewer/gif-photo-in-frame-1.gif",
        "viewer/webp-photo-in-frame-1.webp",
    ] {
        let bytes = read_fixture(name);
        for k in 1..10 {
            let cut = &bytes[..bytes.len() * k / 10];
            let outcome = match hasher.hash_bytes(cut) {
                Ok(h) => {
                    assert!(
                        !h.warnings.is_empty(),
                        "{name} cut to {k}/10: hashed silently"
                    );
                    "warned"
                }
                Err(e) => {
                    assert_eq!(
                        e.kind,
                        DecodeErrorKind::Corrupt,
                        "{name} cut to {k}/10: {e}"
                    );
                    "corrupt"
                }
            };
            report.push(format!("{name} {k}/10: {outcome}"));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn damaged_jpeg_data_is_hashed_with_a_warning() {
    // Bytes overwritten in the middle of the entropy-coded data: libjpeg-turbo decodes on with
    // a warning (bad Huffman code, or a marker where data was expected).
    let mut bytes = read_fixture("field-cases/jpeg-unusual-sampling/photo-420-control.jpg");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b = 0xA5;
    }
    match HasherBuilder::new().build().hash_bytes(&bytes) {
        Ok(h) => assert!(
            h.warnings.iter().any(|w| w.starts_with("damaged")),
            "{:?}",
            h.warnings
        ),
        Err(e) => assert_eq!(e.kind, DecodeErrorKind::Corrupt, "{e}"),
    }
}

#[test]
fn sixty_four_bit_hashes_of_frames_are_kept_too() {
    let hasher = HasherBuilder::new().build();
    let h = hash(&hasher, "viewer/gif-photo-in-frame-1.gif");
    let photo = hash(&hasher, "viewer/photo.png");
    let near = |a: Option<Hash64>, b: Option<Hash64>| {
        a.expect("frame hash").distance(&b.expect("photo hash"))
    };
    let frame = h.frames.iter().find(|f| f.index == 1).expect("frame 1");
    assert!(near(frame.phash, photo.phash) <= 6);
    assert!(near(frame.dhash, photo.dhash) <= 6);
}

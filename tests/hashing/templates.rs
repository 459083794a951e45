//! Templated pictures banked as their photo (issue 17, step 3): a listing page, a chat
//! screenshot, a flyer or a story frame around a photo keeps the photo's perceptual hashes, not
//! the frame's, so that other photos in the same template meet nothing; a photo that is its own
//! picture is banked whole.

use image::{DynamicImage, RgbImage};

use crate::common::*;
use vigie::eval::templates;
use vigie::hashing::regions::Rect;
use vigie::hashing::{HashingSetup, ImageHashes};
use vigie::matcher::{banking_warnings, entry_hashes};

fn bank(bytes: &[u8]) -> ImageHashes {
    HashingSetup::default()
        .banking()
        .hash_bytes(bytes)
        .expect("bank hashing")
}

fn photo(name: &str) -> RgbImage {
    image::load_from_memory(&read_fixture(name))
        .expect("decode fixture")
        .to_rgb8()
}

fn jpeg(picture: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    DynamicImage::ImageRgb8(picture.clone())
        .write_with_encoder(encoder)
        .expect("jpeg");
    out
}

/// Intersection over union of two boxes.
fn overlap(a: Rect, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
    let b = Rect {
        x: x as usize,
        y: y as usize,
        width: w as usize,
        height: h as usize,
    };
    let shared = a.intersection_area(&b) as f64;
    shared / ((a.width * a.height + b.width * b.height) as f64 - shared)
}

type Template = (
    &'static str,
    fn(&RgbImage) -> RgbImage,
    fn(u32, u32) -> (u32, u32, u32, u32),
);

const TEMPLATES: [Template; 3] = [
    (
        "chat_dark",
        templates::chat_dark,
        templates::chat_photo_rect,
    ),
    ("flyer", templates::flyer, templates::flyer_photo_rect),
    (
        "story_frame",
        templates::story_frame,
        templates::story_photo_rect,
    ),
];

/// Each template around two photos is banked as the photo where the template put it, far from
/// the same template around the other photo (so a templated entry no longer matches every ad in
/// its template), and the curator is told. Where the cut-out is the photo itself, its PDQ is the
/// bare photo's within PDQ's match distance; two cut-outs are not, and say why:
/// - the chat bubble rounds the bridge's corners and writes a timestamp over it: even the
///   exact rectangle the template drew is 50 bits from the bare bridge (measured);
/// - the story sticker sits just under the wine photo and the box keeps it (a box about 8% taller
///   than the photo), enough to move a low-texture still life's PDQ.
#[test]
fn a_templated_picture_is_banked_as_its_photo() {
    let bridge = photo("bridge.jpg");
    let wine = photo("wine.jpg");
    let cases: [(&RgbImage, &str, &RgbImage, &[&str]); 2] = [
        (&bridge, "bridge.jpg", &wine, &["flyer", "story_frame"]),
        (&wine, "wine.jpg", &bridge, &["chat_dark", "flyer"]),
    ];
    for (picture, file, other_picture, near_bare) in cases {
        let bare = entry_hashes(&bank(&read_fixture(file)))
            .pdq
            .expect("bare PDQ");
        for (name, make, rect) in TEMPLATES {
            let templated = bank(&jpeg(&make(picture)));
            let found = templated
                .photo_box
                .unwrap_or_else(|| panic!("{file} {name}: no photo found"));
            let expected = rect(picture.width(), picture.height());
            assert!(
                overlap(found, expected) >= 0.85,
                "{file} {name}: photo at {found:?}, drawn at {expected:?}"
            );
            let pdq = entry_hashes(&templated).pdq.expect("templated PDQ");
            if near_bare.contains(&name) {
                assert!(
                    pdq.distance(&bare) <= 31,
                    "{file} {name}: {} bits from the bare photo",
                    pdq.distance(&bare)
                );
            }
            let other = entry_hashes(&bank(&jpeg(&make(other_picture))))
                .pdq
                .expect("other PDQ");
            assert!(
                pdq.distance(&other) > 70,
                "{file} {name}: {} bits from another photo in the template",
                pdq.distance(&other)
            );
            let warnings = banking_warnings(&templated);
            assert!(
                warnings.iter().any(|w| w.contains("template")),
                "{file} {name}: {warnings:?}"
            );
        }
    }
}

/// A story frame around a photo whose sharp part is not the whole photo (a cairn under a clear
/// sky: the sky inside the photo is as smooth as the blurred copy around it) is banked as the
/// whole photo, found between its straight edges: the photo's outline steps against the
/// darkened, blurred copy all the way round (`regions::story_photo`). On `vigie eval` this
/// story-frame entry was banked whole, and a low-texture picture in the same frame met it by
/// the stickers' points: the last false match of the run of 2026-12-02.
#[test]
fn a_story_photo_under_a_smooth_sky_is_banked_as_the_whole_photo() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIPPED: ../shared/corpus not found");
        return;
    };
    let bytes = std::fs::read(shared.join("corpus/tux_inukshuk-photo.jpg")).expect("read");
    let picture = image::load_from_memory(&bytes).expect("decode").to_rgb8();
    let templated = bank(&jpeg(&templates::story_frame(&picture)));
    let found = templated.photo_box.expect("no photo found");
    let expected = templates::story_photo_rect(picture.width(), picture.height());
    assert!(
        overlap(found, expected) >= 0.85,
        "photo at {found:?}, drawn at {expected:?}"
    );
}

/// Photos that are their own picture are banked whole: a landscape, a still life, a drawing on
/// white margins (whose trimmed box is all there is), and a tiled watermark over a photo (no
/// frame to cut off).
#[test]
fn a_photo_is_banked_whole() {
    for name in ["bridge.jpg", "wine.jpg", "tux_747.png"] {
        let h = bank(&read_fixture(name));
        assert_eq!(h.photo_box, None, "{name}");
        assert!(banking_warnings(&h).is_empty(), "{name}");
    }
    let watermarked = bank(&jpeg(&templates::tiled_watermark(&photo("bridge.jpg"))));
    assert_eq!(watermarked.photo_box, None);
}

/// No photo of the corpus is taken for a template: a bank entry made from a photo keeps its
/// whole picture (a false "template" would bank a part of it and lose the copies' matches).
#[test]
fn no_corpus_photo_is_taken_for_a_template() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIPPED: ../shared/corpus not found");
        return;
    };
    let mut paths: Vec<_> = std::fs::read_dir(shared.join("corpus"))
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e != "tsv" && e != "md"))
        .collect();
    paths.sort();
    let mut flagged = Vec::new();
    let mut hashed = 0;
    for path in paths {
        let Ok(h) = HashingSetup::default()
            .banking()
            .hash_bytes(&std::fs::read(&path).expect("read"))
        else {
            continue;
        };
        hashed += 1;
        if let Some(r) = h.photo_box {
            flagged.push(format!("{}: {r:?}", path.display()));
        }
    }
    assert!(hashed >= 150, "only {hashed} corpus photos hashed");
    assert!(
        flagged.is_empty(),
        "taken for templates:\n{}",
        flagged.join("\n")
    );
}

/// A featureless photo (a smooth dark gradient: no sharp detail to agree with its frame) in a
/// template is banked as its photo all the same, by the photo's straight edge against the
/// template's drawn background; the same gradient as a disc on a flat background (an object, not
/// a pasted rectangle) is banked whole. (A story frame is left out: its blurred copy of a smooth
/// gradient continues the gradient, with no edge to find.)
#[test]
fn a_featureless_photo_in_a_template_is_banked_as_its_photo() {
    let gradient = RgbImage::from_fn(400, 300, |x, y| {
        let v = (60.0 + 0.15 * x as f32 + 0.1 * y as f32) as u8;
        image::Rgb([v, v.saturating_sub(20), v / 2])
    });
    for (name, make, rect) in &TEMPLATES[..2] {
        let templated = bank(&jpeg(&make(&gradient)));
        let found = templated
            .photo_box
            .unwrap_or_else(|| panic!("{name}: no photo found"));
        let expected = rect(gradient.width(), gradient.height());
        assert!(
            overlap(found, expected) >= 0.85,
            "{name}: photo at {found:?}, drawn at {expected:?}"
        );
    }
    let disc = RgbImage::from_fn(400, 300, |x, y| {
        let (dx, dy) = (x as f32 - 200.0, y as f32 - 150.0);
        if dx * dx + dy * dy < 90.0 * 90.0 {
            let v = (90.0 + 0.3 * x as f32) as u8;
            image::Rgb([v, v, v])
        } else {
            image::Rgb([10, 10, 10])
        }
    });
    assert_eq!(bank(&jpeg(&disc)).photo_box, None);
}

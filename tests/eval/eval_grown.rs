//! The grown evaluation of issue 17 on the eight fixture photos: templated bank entries are made
//! of banked photos only, template negatives around unbanked photos only, low-texture pictures
//! are negatives outside recall, and every false match is counted in its class with the
//! algorithm, lookup variant and distance that made it.

use std::path::PathBuf;

use vigie::eval::harness::{BankedPicture, CopyClass, PictureClass, ScreenHit, Screener};
use vigie::eval::report::{false_match_groups, false_matches, summarise};
use vigie::eval::{EvalConfig, edits, run};
use vigie::hashing::ImageHashes;

fn config(edit_names: &[&str], low_texture: usize, template_every: usize) -> EvalConfig {
    let mut c =
        EvalConfig::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval"));
    c.edits = edits::catalogue()
        .into_iter()
        .filter(|e| edit_names.contains(&e.name))
        .collect();
    assert_eq!(c.edits.len(), edit_names.len(), "unknown edit name");
    c.progress = false;
    c.low_texture = low_texture;
    c.template_every = template_every;
    c
}

/// Reports every copy as matching the bank's first templated entry, by a content-box dHash at
/// distance 5: a template match for every picture but that entry's own.
struct TemplateLover {
    entry: usize,
}

impl Screener for TemplateLover {
    fn screen(&self, _: &ImageHashes) -> Result<Vec<ScreenHit>, String> {
        Ok(vec![ScreenHit {
            entry: self.entry,
            confidence: 0.99,
            distance: 5,
            how: "dhash content_box:original".into(),
        }])
    }
}

fn template_lover(bank: &[BankedPicture<'_>]) -> Result<Box<dyn Screener>, String> {
    let entry = bank
        .iter()
        .find(|b| b.name.starts_with("flyer:"))
        .ok_or("no templated entry")?
        .entry;
    Ok(Box::new(TemplateLover { entry }))
}

#[test]
fn template_negatives_surround_unbanked_photos_and_false_matches_are_counted_by_class() {
    let eval = run(&config(&["flyer", "jpeg_q15"], 4, 2), Some(&template_lover)).unwrap();
    // 8 photos, then 4 low-texture pictures; each class banked every other one.
    assert_eq!(eval.pictures.len(), 12);
    assert!(eval.classes[..8].iter().all(|c| *c == PictureClass::Photo));
    assert!(
        eval.classes[8..]
            .iter()
            .all(|c| *c == PictureClass::LowTexture)
    );
    assert_eq!(eval.banked, vec![0, 2, 4, 6, 8, 10]);
    // Templated copies: of the flyer only (jpeg_q15 is no template), of every 2nd banked photo.
    let flyer = eval.edits.iter().position(|e| e.name == "flyer").unwrap();
    let templated: Vec<_> = eval
        .entries
        .iter()
        .filter(|e| e.template.is_some())
        .collect();
    assert_eq!(templated.len(), 2);
    for e in &templated {
        assert_eq!(e.template, Some(flyer));
        assert!(
            eval.banked.contains(&e.picture),
            "templated copies of banked photos only"
        );
        assert_eq!(eval.classes[e.picture], PictureClass::Photo);
    }
    assert_eq!(
        templated.iter().map(|e| e.picture).collect::<Vec<_>>(),
        vec![0, 4]
    );
    assert_eq!(eval.entries.len(), 6 + 2);
    assert_eq!(eval.bank_qualities.len(), eval.entries.len());
    // Template negatives: the unbanked photos in the flyer, and nothing else.
    let negatives: Vec<_> = eval
        .results
        .iter()
        .filter(|r| r.class == CopyClass::Template)
        .map(|r| (r.picture, r.edit))
        .collect();
    assert_eq!(
        negatives,
        vec![(1, flyer), (3, flyer), (5, flyer), (7, flyer)]
    );
    assert_eq!(
        eval.results
            .iter()
            .filter(|r| r.class == CopyClass::LowTexture)
            .count(),
        4 * 2
    );
    assert!(eval.results.iter().all(|r| r.error.is_none()));

    // Every copy but those of picture 0 (the templated entry's own photo) is a false match,
    // counted once in its own class.
    let (_, overall) = summarise(&eval);
    let vigie = overall.last().unwrap();
    assert_eq!(vigie.banked, 4 * 2, "recall counts the banked photos only");
    assert_eq!(
        vigie.found, 2,
        "picture 0's copies find its templated entry"
    );
    assert_eq!(vigie.false_banked, 3 * 2);
    assert_eq!(
        (vigie.unbanked_edit_copies, vigie.false_unbanked_edit),
        (4, 4)
    );
    assert_eq!((vigie.template_copies, vigie.false_template), (4, 4));
    assert_eq!((vigie.low_texture_copies, vigie.false_low_texture), (8, 8));
    assert_eq!((vigie.low_texture_banked, vigie.low_texture_found), (4, 0));
    assert_eq!(vigie.false_matches(), 6 + 4 + 4 + 8);
    assert_eq!(false_matches(&eval).len(), 22);
    let groups = false_match_groups(&eval);
    assert_eq!(groups.len(), 4, "{groups:?}");
    for (class, algorithm, variant, n, lo, hi) in groups {
        assert_eq!(
            (algorithm.as_str(), variant.as_str()),
            ("dhash", "content_box:original")
        );
        assert_eq!((lo, hi), (5, 5));
        let want = match class {
            CopyClass::Banked => 6,
            CopyClass::LowTexture => 8,
            _ => 4,
        };
        assert_eq!(n, want, "{class:?}");
    }
}

/// With the service's matcher, a banked photo's copy in the template its bank entry was made in
/// finds that entry, and a low-texture picture's PDQ is too weak to be matched on.
#[test]
fn the_service_matcher_sees_the_templated_entries() {
    let eval = run(
        &config(&["flyer"], 2, 2),
        Some(&vigie::eval::screener::make_service_screener),
    )
    .unwrap();
    for r in eval.results.iter().filter(|r| [0, 4].contains(&r.picture)) {
        let v = r.screened.as_ref().unwrap();
        assert!(v.found, "picture {} in its banked template", r.picture);
    }
    let lowtex = eval
        .classes
        .iter()
        .position(|c| *c == PictureClass::LowTexture)
        .unwrap();
    assert!(eval.picture_qualities[lowtex].is_some_and(|q| q < 50));
}

/// Issue 17's matcher rules on shared templates, with the service's matcher: every banked photo
/// is also banked in a flyer and in a dark chat screen (template every banked photo), so every
/// copy in a template shares its frame, text and layout with several entries of other photos.
/// Keypoints on the shared text, and a 64-bit hash of the shared frame, no longer make a banked
/// photo's copy meet another photo's entry, and the smooth pictures meet nothing; the photos are
/// still all found. (Before the inlier-ratio rule of `keypoint_vote::is_match` and the
/// second-signal rule of `decision`, this run had two banked copies matching another photo's
/// flyer by keypoints and two low-texture copies matching chat entries by dHash and pHash.)
#[test]
fn shared_templates_and_smooth_pictures_do_not_match_other_photos_entries() {
    let eval = run(
        &config(
            &["flyer", "chat_dark", "jpeg_q15", "crop_25pc_offcentre"],
            4,
            1,
        ),
        Some(&vigie::eval::screener::make_service_screener),
    )
    .unwrap();
    let mut banked = 0;
    for r in &eval.results {
        assert!(r.error.is_none(), "{:?}", r.error);
        let v = r.screened.as_ref().unwrap();
        let edit = eval.edits[r.edit].name;
        match r.class {
            CopyClass::Banked => {
                banked += 1;
                assert!(v.found, "picture {} under {edit}", r.picture);
                assert!(
                    !v.false_match,
                    "picture {} under {edit}: {:?}",
                    r.picture, v.false_hits
                );
            }
            CopyClass::LowTexture => assert!(
                !v.false_match,
                "low-texture picture {} under {edit}: {:?}",
                r.picture, v.false_hits
            ),
            _ => {}
        }
        // No keypoint match of any copy lands on an entry not its own.
        assert!(
            v.false_hits.iter().all(|h| !h.how.ends_with("keypoints")),
            "picture {} under {edit}: {:?}",
            r.picture,
            v.false_hits
        );
    }
    assert_eq!(banked, 4 * 4, "4 banked photos under 4 edits");
}

//! The evaluation harness on eight fixture photos: edits are made, copies are counted right
//! (a planted wrong match counts as false), and easy edits are found.

use std::path::PathBuf;

use vigie::eval::harness::{BankedPicture, ScreenHit, Screener};
use vigie::eval::report::{Decision, count, summarise};
use vigie::eval::{EvalConfig, Method, edits, run};
use vigie::hashing::ImageHashes;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn config(edit_names: &[&str]) -> EvalConfig {
    let mut c = EvalConfig::new(fixtures());
    c.edits = edits::catalogue()
        .into_iter()
        .filter(|e| edit_names.contains(&e.name))
        .collect();
    assert_eq!(c.edits.len(), edit_names.len(), "unknown edit name");
    c.progress = false;
    c.timing_every = 1;
    // These tests count the corpus's own copies; the low-texture negatives have theirs
    // (`eval_grown`).
    c.low_texture = 0;
    c
}

/// Matches by PDQ with rotations at 31, and always also reports entry 0 for copies of the
/// picture banked as entry 1: a planted false match.
struct Planted {
    entries: Vec<ImageHashes>,
}

impl Screener for Planted {
    fn screen(&self, hashes: &ImageHashes) -> Result<Vec<ScreenHit>, String> {
        let mut hits = Vec::new();
        for (entry, e) in self.entries.iter().enumerate() {
            if let Some(d) = Method::PdqDihedral.distance(hashes, e)
                && d <= 31
            {
                hits.push(ScreenHit {
                    entry,
                    confidence: 0.9,
                    distance: d,
                    how: "pdq".into(),
                });
            }
        }
        let own = self.entries.iter().position(|e| {
            Method::PdqDihedral
                .distance(hashes, e)
                .is_some_and(|d| d <= 31)
        });
        if own == Some(1) {
            hits.push(ScreenHit {
                entry: 0,
                confidence: 0.5,
                distance: 99,
                how: "planted".into(),
            });
        }
        Ok(hits)
    }
}

fn planted(bank: &[BankedPicture<'_>]) -> Result<Box<dyn Screener>, String> {
    Ok(Box::new(Planted {
        entries: bank.iter().map(|b| b.hashes.clone()).collect(),
    }))
}

#[test]
fn edits_are_made_and_copies_counted() {
    let names = [
        "jpeg_q15",
        "mirror",
        "rotate_90",
        "border_white_8pc",
        "crop_5pc_sides",
    ];
    let eval = run(&config(&names), Some(&planted)).unwrap();
    assert_eq!(eval.pictures.len(), 8);
    assert_eq!(eval.banked, vec![0, 2, 4, 6]);
    assert_eq!(eval.results.len(), 8 * names.len());
    assert!(
        eval.results.iter().all(|r| r.error.is_none()),
        "every edit is produced and hashed"
    );
    assert!(eval.results.iter().all(|r| r.screened.is_some()));
    assert_eq!(eval.full_times.len(), eval.results.len());
    assert_eq!(eval.baseline_times.len(), eval.results.len());

    // Every copy of the picture banked as entry 1 that the screener found also carries the
    // planted match of entry 0: each must count as a false match of a banked copy.
    let (per_edit, overall) = summarise(&eval);
    let screener = per_edit[0].len() - 1;
    let planted_found = eval
        .results
        .iter()
        .filter(|r| r.entry == Some(1) && r.screened.as_ref().is_some_and(|v| v.found))
        .count() as u64;
    assert!(
        planted_found >= 2,
        "jpeg and mirror copies of entry 1 are found"
    );
    assert_eq!(overall[screener].false_banked, planted_found);
    assert_eq!(overall[screener].banked, 4 * names.len() as u64);
    assert_eq!(overall[screener].unbanked, 4 * names.len() as u64);
    // The same copy under a method decision: no planted match there.
    let r = eval
        .results
        .iter()
        .find(|r| r.entry == Some(1) && r.edit == 0)
        .unwrap();
    assert_eq!(
        count(r, Decision::Method(Method::PdqDihedral)).false_banked,
        0
    );
    assert_eq!(count(r, Decision::Screener).false_banked, 1);
}

#[test]
fn easy_edits_are_found_without_false_matches() {
    let names = [
        "jpeg_q15",
        "webp_q15",
        "mirror",
        "rotate_180",
        "greyscale",
        "upscale_2x",
    ];
    let eval = run(&config(&names), None).unwrap();
    let (per_edit, overall) = summarise(&eval);
    let dihedral = Method::ALL
        .iter()
        .position(|m| *m == Method::PdqDihedral)
        .unwrap();
    let plain = Method::ALL.iter().position(|m| *m == Method::Pdq).unwrap();
    for (e, counts) in per_edit.iter().enumerate() {
        assert_eq!(counts[dihedral].recall(), 1.0, "{}", eval.edits[e].name);
        assert_eq!(
            counts[dihedral].false_matches(),
            0,
            "{}",
            eval.edits[e].name
        );
    }
    // Plain PDQ misses the mirrored and rotated copies that the dihedral hashes catch.
    let mirror = eval.edits.iter().position(|e| e.name == "mirror").unwrap();
    assert_eq!(per_edit[mirror][plain].found, 0);
    assert!(overall[dihedral].recall() > overall[plain].recall());
    // Histograms hold one true pair per banked copy and one unrelated pair per other entry.
    let t: u64 = eval.histograms.true_pairs[dihedral].iter().sum();
    let u: u64 = eval.histograms.unrelated_pairs[dihedral].iter().sum();
    assert_eq!(t, 4 * names.len() as u64);
    assert_eq!(u, (4 * 3 + 4 * 4) * names.len() as u64);
}

#[test]
fn trimming_catches_borders_and_letterboxes() {
    let names = ["border_white_8pc", "letterbox_16_9", "pillarbox_9_16"];
    let eval = run(&config(&names), None).unwrap();
    let (per_edit, _) = summarise(&eval);
    let dihedral = Method::ALL
        .iter()
        .position(|m| *m == Method::PdqDihedral)
        .unwrap();
    let trim = Method::ALL
        .iter()
        .position(|m| *m == Method::PdqTrim)
        .unwrap();
    for (e, counts) in per_edit.iter().enumerate() {
        assert!(
            counts[trim].found > counts[dihedral].found,
            "{}: {:?}",
            eval.edits[e].name,
            counts
        );
        assert!(
            counts[trim].recall() >= 0.75,
            "{}: {:?}",
            eval.edits[e].name,
            counts[trim]
        );
        assert_eq!(counts[trim].false_matches(), 0, "{}", eval.edits[e].name);
    }
}

/// The row `vigie` is the service's own matcher (`Matcher::screen` over an in-memory store): it
/// finds every easy edit of a banked picture, reports nothing for unbanked ones, and its confidence
/// comes from the calibration table.
#[test]
fn the_service_matcher_screens_the_copies() {
    let names = ["jpeg_q15", "mirror", "border_white_8pc", "brightness_+45"];
    let eval = run(
        &config(&names),
        Some(&vigie::eval::screener::make_service_screener),
    )
    .unwrap();
    let (_, overall) = summarise(&eval);
    let vigie = overall.last().expect("the screener's row");
    assert_eq!(vigie.banked, 4 * names.len() as u64);
    assert_eq!(
        vigie.found, vigie.banked,
        "every easy copy found: {vigie:?}"
    );
    assert_eq!(vigie.false_matches(), 0, "{vigie:?}");
    for q in eval.results.iter().filter(|q| q.entry.is_some()) {
        let verdict = q.screened.as_ref().expect("screened");
        let confidence = verdict.confidence.expect("confidence of the own match");
        assert!(confidence > 0.5 && confidence <= 1.0, "{confidence}");
    }
}

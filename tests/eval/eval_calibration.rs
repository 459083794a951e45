//! The shipped calibration table loads, is monotone per algorithm, and its parser refuses
//! malformed tables (the module's own tests, compiled here so they run before the matcher does).

#[path = "../../src/matcher/calibration.rs"]
#[allow(dead_code)]
mod calibration;

use calibration::{Calibration, SHIPPED};

#[test]
fn shipped_table_covers_every_perceptual_algorithm() {
    let c = Calibration::parse(SHIPPED).unwrap();
    let mut names: Vec<&str> = c.names().collect();
    names.sort();
    // Per algorithm, and per lookup variant of the 64-bit hashes (turned or mirrored; content box).
    assert_eq!(
        names,
        vec![
            "dhash",
            "dhash_box",
            "dhash_turned",
            "keypoints",
            "pdq",
            "pdq_region",
            "phash",
            "phash_box",
            "phash_turned"
        ]
    );
    assert_eq!(c.prior, Some(0.01));
    // A trust team asking for 99% confidence gets a usable PDQ threshold, and a 64-bit hash
    // threshold well below chance (32 bits).
    let pdq = c.distance_for("pdq", 0.99).unwrap();
    assert!((10..=128).contains(&pdq), "{pdq}");
    // (dHash alone reaches 99% at 2 bits on the grown evaluation of 2026-12-01: shared templates
    // put unrelated pictures' dHash within a few bits of each other; it was 4-8 before them.)
    let dhash = c.distance_for("dhash", 0.99).unwrap();
    assert!((1..=16).contains(&dhash), "{dhash}");
    // Keypoint "distances" are the points of 64 that did not agree: the vote threshold (8
    // points, distance 56) must stay a mostly right match, 20 points (distance 44) a confident
    // one, and chance (no points) must not be.
    assert!(c.confidence("keypoints", 56).unwrap() > 0.8);
    assert!(c.confidence("keypoints", 44).unwrap() > 0.99);
    assert!(c.confidence("keypoints", 64).unwrap() < 0.5);
}

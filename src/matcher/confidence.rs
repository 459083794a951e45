//! Match confidence: 0..1, the observed fraction of true matches at a distance.
//!
//! The values come from the calibration table measured by `vigie eval` (see
//! [`super::calibration`]): per algorithm, the fraction of (upload, entry) pairs at that distance
//! that were an edited copy and its own picture, under the prior the table states. PDQ matches of
//! a region (a trimmed content box or a banked crop window) read the `pdq_region` table.
//!
//! Exact hashes (MD5, SHA-256) match only at distance 0, with confidence 1. An algorithm missing
//! from the table falls back to a fixed curve per hash width, `max(0, 1 - (d / (w / 4))^2)`:
//! unrelated pictures sit near `w / 2`, so it reaches 0 halfway to chance.

use super::calibration::SHIPPED_TABLE;
use crate::store::Algorithm;

/// Which calibration table a PDQ match reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PdqKind {
    /// The whole picture (any rotation or mirror).
    Whole,
    /// A content box of the upload or a crop window of the entry (pHash and dHash: the upload's
    /// content box, read from `phash_box` and `dhash_box`).
    Region,
    /// The upload turned or mirrored (PDQ reads `pdq`, which is measured under its rotations;
    /// pHash and dHash read `phash_turned` and `dhash_turned`).
    Turned,
    /// Keypoints (`hashing::keypoints`): the distance is
    /// [`crate::matcher::keypoint_vote::votes_distance`] of the points that agreed.
    Keypoints,
}

/// Confidence, 0..=1, of a whole-picture match by `algorithm` at `distance` bits: the
/// algorithm's shipped table (PDQ reads `pdq`), its fallback curve, or for MD5 and SHA-256 1 at
/// distance 0 and 0 otherwise. The same as [`confidence_of`] with [`PdqKind::Whole`].
pub fn confidence(algorithm: Algorithm, distance: u32) -> f64 {
    confidence_of(algorithm, PdqKind::Whole, distance)
}

/// Confidence, 0..=1, of a match by `algorithm` at `distance`, `kind` saying what a PDQ match
/// compared: exact hashes 1 at distance 0 and 0 otherwise; a PDQ region
/// reads the `pdq_region` table, PDQ keypoints the `keypoints` table (the distance is then
/// [`crate::matcher::keypoint_vote::votes_distance`]), a pHash or dHash match of a content box
/// `phash_box`/`dhash_box` and of the turned or mirrored upload `phash_turned`/`dhash_turned`
/// (each lookup variant is another chance for an unrelated picture, measured apart), anything
/// else its own algorithm's table.
/// A table missing from the shipped calibration falls back to the curve of the module
/// documentation (keypoints: 0.5 at the vote threshold rising to 1 at twice the votes).
pub fn confidence_of(algorithm: Algorithm, kind: PdqKind, distance: u32) -> f64 {
    if !algorithm.is_perceptual() {
        return if distance == 0 { 1.0 } else { 0.0 };
    }
    let table = match (algorithm, kind) {
        (Algorithm::Pdq, PdqKind::Region) => "pdq_region",
        (Algorithm::Pdq, PdqKind::Keypoints) => "keypoints",
        (Algorithm::Phash, PdqKind::Region) => "phash_box",
        (Algorithm::Dhash, PdqKind::Region) => "dhash_box",
        (Algorithm::Phash, PdqKind::Turned) => "phash_turned",
        (Algorithm::Dhash, PdqKind::Turned) => "dhash_turned",
        (a, _) => a.name(),
    };
    // A variant's table, else the algorithm's (a table shipped before the variants were
    // measured), else the fallback curve.
    SHIPPED_TABLE
        .confidence(table, distance)
        .or_else(|| SHIPPED_TABLE.confidence(algorithm.name(), distance))
        .unwrap_or_else(|| match kind {
            PdqKind::Keypoints => keypoints_fallback(distance),
            _ => fallback(algorithm, distance),
        })
}

/// Without a `keypoints` table: 0.5 at the vote threshold, rising to 1 at twice it.
fn keypoints_fallback(distance: u32) -> f64 {
    use crate::matcher::keypoint_vote::{MIN_VOTES, votes_distance};
    let floor = votes_distance(MIN_VOTES);
    let full = votes_distance(2 * MIN_VOTES);
    if distance > floor {
        0.0
    } else {
        (0.5 + 0.5 * f64::from(floor - distance) / f64::from(floor - full)).min(1.0)
    }
}

fn fallback(algorithm: Algorithm, distance: u32) -> f64 {
    let bits = (algorithm.byte_len() * 8) as f64;
    let x = f64::from(distance) / (bits / 4.0);
    (1.0 - x * x).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_one_near_zero_and_monotone_falling() {
        for a in Algorithm::ALL {
            assert!(confidence(a, 0) > 0.9, "{a}");
        }
        for a in [Algorithm::Pdq, Algorithm::Phash, Algorithm::Dhash] {
            let mut last = 1.0;
            for d in 0..=64 {
                let c = confidence(a, d);
                assert!(c <= last && (0.0..=1.0).contains(&c), "{a} {d}");
                last = c;
            }
        }
        // Unrelated pictures sit near half the bits: no confidence there.
        assert!(confidence(Algorithm::Pdq, 128) < 0.01);
        assert!(confidence(Algorithm::Phash, 32) < 0.01);
        assert!(confidence(Algorithm::Dhash, 32) < 0.01);
        assert_eq!(confidence(Algorithm::Md5, 1), 0.0);
        assert!(confidence_of(Algorithm::Pdq, PdqKind::Region, 0) > 0.9);
        // Keypoint matches read their own table: mostly right at the vote threshold (the grown
        // evaluation's shared templates put a few unrelated pairs there: 0.89 in the table of
        // 2026-12-01), confident at two and a half times it, none at chance.
        use crate::matcher::keypoint_vote::{MIN_VOTES, votes_distance};
        let at_threshold = confidence_of(
            Algorithm::Pdq,
            PdqKind::Keypoints,
            votes_distance(MIN_VOTES),
        );
        assert!(at_threshold > 0.8, "{at_threshold}");
        let clear = confidence_of(
            Algorithm::Pdq,
            PdqKind::Keypoints,
            votes_distance(5 * MIN_VOTES / 2),
        );
        assert!(clear > 0.99 && clear > at_threshold, "{clear}");
        assert!(confidence_of(Algorithm::Pdq, PdqKind::Keypoints, 64) < 0.5);
        assert_eq!(keypoints_fallback(votes_distance(MIN_VOTES)), 0.5);
        assert_eq!(keypoints_fallback(votes_distance(2 * MIN_VOTES)), 1.0);
        assert_eq!(keypoints_fallback(64), 0.0);
        assert_eq!(fallback(Algorithm::Pdq, 64), 0.0);
    }

    #[test]
    fn each_64_bit_lookup_variant_reads_its_own_table() {
        for (algorithm, kind, table) in [
            (Algorithm::Dhash, PdqKind::Turned, "dhash_turned"),
            (Algorithm::Dhash, PdqKind::Region, "dhash_box"),
            (Algorithm::Phash, PdqKind::Turned, "phash_turned"),
            (Algorithm::Phash, PdqKind::Region, "phash_box"),
            (Algorithm::Dhash, PdqKind::Whole, "dhash"),
        ] {
            for d in 0..=64 {
                assert_eq!(
                    Some(confidence_of(algorithm, kind, d)),
                    SHIPPED_TABLE.confidence(table, d),
                    "{table} at {d}"
                );
            }
        }
        // PDQ's table is measured under its rotations: a turned PDQ match reads it.
        assert_eq!(
            confidence_of(Algorithm::Pdq, PdqKind::Turned, 20),
            confidence_of(Algorithm::Pdq, PdqKind::Whole, 20)
        );
        // The shipped variant tables differ from the whole picture's somewhere (else they would
        // not be worth their lines).
        assert!((0..=64).any(|d| {
            confidence_of(Algorithm::Dhash, PdqKind::Turned, d)
                != confidence_of(Algorithm::Dhash, PdqKind::Whole, d)
        }));
    }
}

//! Match confidence: 0..1, 1 at distance 0, falling with distance.
//!
//! Until the evaluation harness produces a calibration table (observed fraction of true matches at
//! each distance), confidence is a fixed curve per hash width:
//!
//! `confidence = max(0, 1 - (d / (w / 4))^2)` for a perceptual hash of `w` bits at distance `d`;
//! exact hashes (MD5, SHA-256) match only at distance 0, with confidence 1.
//!
//! Why this shape: the distance between unrelated pictures clusters around `w / 2` (128 bits for
//! PDQ), and true matches of lightly edited copies sit far below it. The curve reaches 0 halfway
//! to chance (64 bits for PDQ, 16 for the 64-bit hashes), is flat near 0 (a few bits of
//! recompression noise cost almost nothing), and gives 0.77 at PDQ's usual threshold of 31 and 0.75
//! at the 64-bit hashes' 8.

use crate::store::Algorithm;

pub fn confidence(algorithm: Algorithm, distance: u32) -> f64 {
    if !algorithm.is_perceptual() {
        return if distance == 0 { 1.0 } else { 0.0 };
    }
    let bits = (algorithm.byte_len() * 8) as f64;
    let scale = bits / 4.0;
    let x = f64::from(distance) / scale;
    (1.0 - x * x).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_zero_and_monotone_falling() {
        for a in Algorithm::ALL {
            assert_eq!(confidence(a, 0), 1.0);
        }
        for a in [Algorithm::Pdq, Algorithm::Phash, Algorithm::Dhash] {
            let mut last = 1.0;
            for d in 1..=64 {
                let c = confidence(a, d);
                assert!(c <= last && (0.0..=1.0).contains(&c), "{a} {d}");
                last = c;
            }
        }
        assert!((confidence(Algorithm::Pdq, 31) - 0.7654).abs() < 1e-3);
        assert_eq!(confidence(Algorithm::Pdq, 64), 0.0);
        assert_eq!(confidence(Algorithm::Phash, 8), 0.75);
        assert_eq!(confidence(Algorithm::Md5, 1), 0.0);
    }
}

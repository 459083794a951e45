//! Calibration: distance -> confidence, from the distances of true and unrelated pairs that a
//! `vigie eval` run observed.
//!
//! For a distance `d`, with `t(d)` the fraction of true pairs (an edited copy and its own entry)
//! at `d` and `u(d)` the fraction of unrelated pairs (a copy and any other entry) at `d`, Bayes'
//! rule under a prior probability `p` that a compared pair is a true copy gives
//!
//! `confidence(d) = p t(d) / (p t(d) + (1 - p) u(d))`.
//!
//! Both fractions are read in a window of +-[`WINDOW`] distances (the counts are sparse), and `u`
//! gets one pseudo-pair per window so that a distance where no unrelated pair happened to fall is
//! not certainty. Last, the pool-adjacent-violators algorithm (isotonic regression, Barlow et al.
//! 1972) makes the curve non-increasing in `d`, weighted by the pairs seen in each window.

use std::fmt::Write as _;

use super::Method;
use super::harness::Histograms;

/// Prior probability that a compared (upload, entry) pair is a true copy. Stated in the table and
/// in docs/EVALUATION.md; 1% is pessimistic for a screen that already found the pair within
/// threshold.
pub const PRIOR: f64 = 0.01;
/// Half-width of the smoothing window, in bits.
pub const WINDOW: usize = 3;

/// The methods the matcher reads, and the names it reads them under.
pub const TABLES: [(Method, &str); 5] = [
    (Method::PdqDihedral, "pdq"),
    (Method::PdqRegions, "pdq_region"),
    (Method::Phash, "phash"),
    (Method::Dhash, "dhash"),
    (Method::Keypoints, "keypoints"),
];

/// Non-increasing confidence per distance `0..=bits` for one method.
pub fn curve(true_pairs: &[u64], unrelated_pairs: &[u64], prior: f64) -> Vec<f64> {
    let n = true_pairs.len();
    let nt = true_pairs.iter().sum::<u64>().max(1) as f64;
    let nu = unrelated_pairs.iter().sum::<u64>().max(1) as f64;
    let mut raw = Vec::with_capacity(n);
    let mut weight = Vec::with_capacity(n);
    for d in 0..n {
        let lo = d.saturating_sub(WINDOW);
        let hi = (d + WINDOW + 1).min(n);
        let t: u64 = true_pairs[lo..hi].iter().sum();
        let u: u64 = unrelated_pairs[lo..hi].iter().sum();
        let tf = t as f64 / nt;
        let uf = (u as f64 + 1.0) / nu;
        raw.push(prior * tf / (prior * tf + (1.0 - prior) * uf));
        weight.push((t + u + 1) as f64);
    }
    non_increasing(&raw, &weight)
}

/// Weighted isotonic regression onto non-increasing sequences (pool adjacent violators).
pub fn non_increasing(values: &[f64], weights: &[f64]) -> Vec<f64> {
    // Blocks of (mean, weight, length); merge while a block's mean exceeds its predecessor's.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for (&v, &w) in values.iter().zip(weights) {
        blocks.push((v, w, 1));
        while blocks.len() >= 2 {
            let (m2, w2, l2) = blocks[blocks.len() - 1];
            let (m1, w1, l1) = blocks[blocks.len() - 2];
            if m2 <= m1 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = ((m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, l1 + l2);
        }
    }
    blocks
        .into_iter()
        .flat_map(|(m, _, l)| std::iter::repeat_n(m, l))
        .collect()
}

/// The calibration table as the matcher reads it (`src/matcher/calibration.tsv`).
pub fn table(h: &Histograms, prior: f64, source: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# vigie match calibration: confidence = observed fraction of true matches at each distance"
    );
    let _ = writeln!(
        s,
        "# prior P(true pair) = {prior}; smoothing window +-{WINDOW}; isotonic (non-increasing)"
    );
    let _ = writeln!(
        s,
        "# regenerate: vigie eval --corpus ../shared/corpus --keypoints --calibrate  (source: {source})"
    );
    let _ = writeln!(
        s,
        "algorithm\tdistance\ttrue_pairs\tunrelated_pairs\tconfidence"
    );
    for (method, name) in TABLES {
        let i = Method::ALL.iter().position(|m| *m == method).unwrap_or(0);
        let c = curve(&h.true_pairs[i], &h.unrelated_pairs[i], prior);
        for (d, conf) in c.iter().enumerate() {
            let _ = writeln!(
                s,
                "{name}\t{d}\t{}\t{}\t{conf:.6}",
                h.true_pairs[i][d], h.unrelated_pairs[i][d]
            );
        }
    }
    for (i, variant) in super::Variant64::ALL.iter().enumerate() {
        let (t, u) = (&h.variant_true_pairs[i], &h.variant_unrelated_pairs[i]);
        let c = curve(t, u, prior);
        for (d, conf) in c.iter().enumerate() {
            let _ = writeln!(s, "{}\t{d}\t{}\t{}\t{conf:.6}", variant.name(), t[d], u[d]);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pav_makes_non_increasing_and_keeps_weighted_mean() {
        let v = [0.9, 0.95, 0.5, 0.6, 0.1];
        let w = [1.0, 1.0, 1.0, 3.0, 1.0];
        let out = non_increasing(&v, &w);
        assert!(out.windows(2).all(|p| p[0] >= p[1]), "{out:?}");
        assert!((out[0] - 0.925).abs() < 1e-12);
        assert!((out[2] - 0.575).abs() < 1e-12);
        let total: f64 = v.iter().zip(&w).map(|(a, b)| a * b).sum();
        let after: f64 = out.iter().zip(&w).map(|(a, b)| a * b).sum();
        assert!((total - after).abs() < 1e-9);
    }

    #[test]
    fn separated_distributions_give_high_then_low_confidence() {
        let mut t = vec![0u64; 65];
        let mut u = vec![0u64; 65];
        t[..10].fill(100);
        u[25..40].fill(10_000);
        let c = curve(&t, &u, 0.01);
        assert!(c[0] > 0.9, "{}", c[0]);
        assert!(c[30] < 0.01, "{}", c[30]);
        assert!(c.windows(2).all(|p| p[0] >= p[1]));
    }
}

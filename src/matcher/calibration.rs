//! The calibration table that turns a match distance into a confidence, measured by `vigie eval`
//! (see `crate::eval::calibrate` for how: observed fraction of true matches at each distance
//! under a stated prior, smoothed and made non-increasing). The table is compiled in from
//! `calibration.tsv` next to this file; `vigie eval --corpus DIR --keypoints --calibrate`
//! regenerates it (`--keypoints` so that the `keypoints` table is measured too).

use std::collections::HashMap;
use std::sync::LazyLock;

/// The table shipped with this build.
pub const SHIPPED: &str = include_str!("calibration.tsv");

/// Confidence per distance, per table name (`pdq`, `pdq_region`, `phash`, `dhash`, `keypoints`).
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    curves: HashMap<String, Vec<f64>>,
    /// The prior the table was computed under (from its header), if stated.
    pub prior: Option<f64>,
}

/// Why a calibration table was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalibrationError {
    /// A line is malformed: not 5 tab-separated fields, a distance or confidence that does not
    /// parse, a confidence outside 0..=1, a distance out of order, or a rising confidence.
    #[error("calibration line {line}: {message}")]
    Line {
        /// 1-based line number in the text.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A whole table is unusable. [`Calibration::parse`] reports every fault it finds by line,
    /// so nothing in this module raises it today.
    #[error("calibration table {name:?}: {message}")]
    Table {
        /// The table's name (`pdq`, `phash`, ...).
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Calibration {
    /// Parses a table: `algorithm distance true_pairs unrelated_pairs confidence`, tab-separated,
    /// `#` comments and one header line. Each table must list distances 0, 1, 2, ... in order with
    /// confidences in 0..=1 that never rise.
    pub fn parse(text: &str) -> Result<Calibration, CalibrationError> {
        let mut out = Calibration::default();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |message: String| CalibrationError::Line {
                line: line_no,
                message,
            };
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(rest) = comment.split("prior P(true pair) = ").nth(1) {
                    out.prior = rest.split(';').next().and_then(|v| v.trim().parse().ok());
                }
                continue;
            }
            if line.trim().is_empty() || line.starts_with("algorithm\t") {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != 5 {
                return Err(err(format!("expected 5 fields, found {}", fields.len())));
            }
            let distance: usize = fields[1]
                .parse()
                .map_err(|_| err(format!("bad distance {:?}", fields[1])))?;
            let confidence: f64 = fields[4]
                .parse()
                .map_err(|_| err(format!("bad confidence {:?}", fields[4])))?;
            if !(0.0..=1.0).contains(&confidence) {
                return Err(err(format!("confidence {confidence} outside 0..=1")));
            }
            let curve = out.curves.entry(fields[0].to_string()).or_default();
            if distance != curve.len() {
                return Err(err(format!(
                    "distance {distance} out of order (expected {})",
                    curve.len()
                )));
            }
            if curve.last().is_some_and(|&last| confidence > last) {
                return Err(err(format!("confidence rises at distance {distance}")));
            }
            curve.push(confidence);
        }
        Ok(out)
    }

    /// The confidence of a match at `distance` in table `name`; `None` for an unknown table.
    /// Past the table's end the confidence is its last value.
    pub fn confidence(&self, name: &str, distance: u32) -> Option<f64> {
        let curve = self.curves.get(name)?;
        curve.get(distance as usize).or(curve.last()).copied()
    }

    /// The names of the tables present, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.curves.keys().map(String::as_str)
    }

    /// The largest distance whose confidence is at least `min_confidence` (for choosing a
    /// threshold by confidence), `None` if even distance 0 falls short.
    pub fn distance_for(&self, name: &str, min_confidence: f64) -> Option<u32> {
        let curve = self.curves.get(name)?;
        curve
            .iter()
            .rposition(|&c| c >= min_confidence)
            .map(|d| d as u32)
    }
}

/// The shipped table, parsed once. A malformed shipped table is a build defect caught by the
/// tests; at run time it falls back to an empty table (every lookup then takes the fallback curve).
pub static SHIPPED_TABLE: LazyLock<Calibration> =
    LazyLock::new(|| match Calibration::parse(SHIPPED) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "shipped calibration table unreadable");
            Calibration::default()
        }
    });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_loads_and_is_monotone() {
        let c = Calibration::parse(SHIPPED).unwrap();
        for name in ["pdq", "pdq_region", "phash", "dhash"] {
            let first = c.confidence(name, 0).unwrap();
            assert!(first > 0.9, "{name}: {first}");
            let bits = if name.starts_with("pdq") { 256 } else { 64 };
            let mut last = first;
            for d in 0..=bits {
                let v = c.confidence(name, d).unwrap();
                assert!(v <= last && (0.0..=1.0).contains(&v), "{name} {d}");
                last = v;
            }
            assert!(last < 0.01, "{name}: far distances are not matches");
        }
        assert!(c.prior.is_some());
        assert_eq!(SHIPPED_TABLE.confidence("pdq", 0), c.confidence("pdq", 0));
    }

    #[test]
    fn malformed_tables_are_refused() {
        let ok = "algorithm\tdistance\ttrue_pairs\tunrelated_pairs\tconfidence\npdq\t0\t1\t0\t0.9\npdq\t1\t1\t0\t0.8\n";
        let c = Calibration::parse(ok).unwrap();
        assert_eq!(c.confidence("pdq", 1), Some(0.8));
        assert_eq!(c.confidence("pdq", 99), Some(0.8));
        assert_eq!(c.distance_for("pdq", 0.85), Some(0));
        assert_eq!(c.distance_for("pdq", 0.95), None);
        assert!(
            Calibration::parse("pdq\t0\t1\t0\t0.5\npdq\t1\t1\t0\t0.6\n").is_err(),
            "rising"
        );
        assert!(Calibration::parse("pdq\t1\t1\t0\t0.5\n").is_err(), "gap");
        assert!(Calibration::parse("pdq\t0\t1\t0\t1.5\n").is_err(), "range");
        assert!(Calibration::parse("pdq\t0\t1\n").is_err(), "fields");
    }
}

//! Counting a run: recall and false matches per edit and overall, TSV and PNG plots.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::Method;
use super::harness::{EvalRun, QueryResult};
use crate::plot::{BarChart, LineChart, PlotError, Series};

/// Counts for one decision over a set of edited copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Edited copies of banked pictures (recall's denominator).
    pub banked: u64,
    /// Of those, how many found their own entry.
    pub found: u64,
    /// Edited copies of unbanked pictures.
    pub unbanked: u64,
    /// Unbanked copies that matched anything.
    pub false_unbanked: u64,
    /// Banked copies that matched an entry other than their own.
    pub false_banked: u64,
    /// Copies whose edit or hashing failed (counted as missed when banked).
    pub errors: u64,
}

impl Counts {
    /// `found / banked`, 0..=1; 0 when no banked copy was counted.
    pub fn recall(&self) -> f64 {
        if self.banked == 0 {
            0.0
        } else {
            self.found as f64 / self.banked as f64
        }
    }

    /// Copies, banked or not, that matched an entry not their own.
    pub fn false_matches(&self) -> u64 {
        self.false_unbanked + self.false_banked
    }

    fn add(&mut self, o: &Counts) {
        self.banked += o.banked;
        self.found += o.found;
        self.unbanked += o.unbanked;
        self.false_unbanked += o.false_unbanked;
        self.false_banked += o.false_banked;
        self.errors += o.errors;
    }
}

/// A decision whose counts are reported: a method at its threshold, or the screener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// One method alone, matching at or under its [`Method::threshold`].
    Method(Method),
    /// What the matcher decides when every algorithm is screened: a match under any of PDQ with
    /// regions at 31, pHash at 8, dHash at 8.
    Combined,
    /// The screener's own verdict (the service's matcher, see [`super::screener`]).
    Screener,
}

/// The methods [`Decision::Combined`] joins.
pub const COMBINED: [Method; 3] = [Method::PdqRegions, Method::Phash, Method::Dhash];

impl Decision {
    /// The column name in reports: `method@threshold` (e.g. `pdq@31`), `combined`, or `vigie`
    /// for the screener.
    pub fn name(self) -> String {
        match self {
            Decision::Method(m) => format!("{}@{}", m.name(), m.threshold()),
            Decision::Combined => "combined".to_string(),
            Decision::Screener => "vigie".to_string(),
        }
    }
}

/// Counts one copy under one decision.
pub fn count(r: &QueryResult, decision: Decision) -> Counts {
    let mut c = Counts::default();
    let banked = r.entry.is_some();
    if banked {
        c.banked = 1;
    } else {
        c.unbanked = 1;
    }
    if r.error.is_some() {
        c.errors = 1;
        return c;
    }
    let under = |m: Method| {
        let i = Method::ALL.iter().position(|x| *x == m).unwrap_or(0);
        let t = m.threshold();
        (
            r.true_distance[i].is_some_and(|d| d <= t),
            r.wrong_distance[i].is_some_and(|d| d <= t),
        )
    };
    let (found, wrong) = match decision {
        Decision::Method(m) => under(m),
        Decision::Combined => COMBINED
            .iter()
            .map(|m| under(*m))
            .fold((false, false), |a, b| (a.0 || b.0, a.1 || b.1)),
        Decision::Screener => match &r.screened {
            Some(v) => (v.found, v.false_match),
            None => (false, false),
        },
    };
    if banked {
        c.found = u64::from(found);
        c.false_banked = u64::from(wrong);
    } else {
        c.false_unbanked = u64::from(wrong);
    }
    c
}

/// The decisions a run reports: every method, and the screener when there was one.
pub fn decisions(run: &EvalRun) -> Vec<Decision> {
    let mut d: Vec<Decision> = Method::ALL.iter().map(|m| Decision::Method(*m)).collect();
    d.push(Decision::Combined);
    if run.results.iter().any(|r| r.screened.is_some()) {
        d.push(Decision::Screener);
    }
    d
}

/// Counts per edit (in catalogue order) and overall, per decision.
pub fn summarise(run: &EvalRun) -> (Vec<Vec<Counts>>, Vec<Counts>) {
    let ds = decisions(run);
    let mut per_edit = vec![vec![Counts::default(); ds.len()]; run.edits.len()];
    let mut overall = vec![Counts::default(); ds.len()];
    for r in &run.results {
        for (j, d) in ds.iter().enumerate() {
            let c = count(r, *d);
            per_edit[r.edit][j].add(&c);
            overall[j].add(&c);
        }
    }
    (per_edit, overall)
}

/// The median of `times` (the upper one of the two middle values for an even count); `None`
/// when empty.
pub fn median(times: &[Duration]) -> Option<Duration> {
    let mut t = times.to_vec();
    t.sort();
    t.get(t.len() / 2).copied()
}

/// The summary printed at the end of `vigie eval` (also written as `summary.txt`).
pub fn text_summary(run: &EvalRun) -> String {
    let ds = decisions(run);
    let (per_edit, overall) = summarise(run);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} pictures ({} banked), {} edits, {} edited copies, {:.1} s",
        run.pictures.len(),
        run.banked.len(),
        run.edits.len(),
        run.results.len(),
        run.elapsed.as_secs_f64()
    );
    let _ = write!(s, "{:<28}", "edit (recall% / false)");
    for d in &ds {
        let _ = write!(s, " {:>18}", d.name());
    }
    s.push('\n');
    let mut row = |name: &str, counts: &[Counts]| {
        let _ = write!(s, "{name:<28}");
        for c in counts {
            let _ = write!(
                s,
                " {:>12.1} / {:<3}",
                100.0 * c.recall(),
                c.false_matches()
            );
        }
        s.push('\n');
    };
    for (e, counts) in per_edit.iter().enumerate() {
        row(run.edits[e].name, counts);
    }
    row("OVERALL", &overall);
    for (d, c) in ds.iter().zip(&overall) {
        let _ = writeln!(
            s,
            "{}: recall {:.1}% ({}/{}), false matches: {} unbanked of {}, {} banked wrong entry; {} errors",
            d.name(),
            100.0 * c.recall(),
            c.found,
            c.banked,
            c.false_unbanked,
            c.unbanked,
            c.false_banked,
            c.errors
        );
    }
    if let (Some(b), Some(f)) = (median(&run.baseline_times), median(&run.full_times)) {
        let _ = writeln!(
            s,
            "cost of one screen (median of {} timed copies): PDQ with rotations {:.2} ms, vigie {:.2} ms, ratio {:.2}",
            run.full_times.len(),
            b.as_secs_f64() * 1e3,
            f.as_secs_f64() * 1e3,
            f.as_secs_f64() / b.as_secs_f64().max(1e-12)
        );
    }
    s
}

/// `results.tsv` (per edit and decision) and `distances.tsv` (histograms).
pub fn write_tsv(run: &EvalRun, dir: &Path) -> std::io::Result<()> {
    let ds = decisions(run);
    let (per_edit, overall) = summarise(run);
    let mut out = String::from(
        "edit\tdecision\tbanked_copies\tfound\trecall\tunbanked_copies\tfalse_unbanked\tfalse_banked\terrors\n",
    );
    let mut rows = |name: &str, counts: &[Counts]| {
        for (d, c) in ds.iter().zip(counts) {
            let _ = writeln!(
                out,
                "{name}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{}\t{}",
                d.name(),
                c.banked,
                c.found,
                c.recall(),
                c.unbanked,
                c.false_unbanked,
                c.false_banked,
                c.errors
            );
        }
    };
    for (e, counts) in per_edit.iter().enumerate() {
        rows(run.edits[e].name, counts);
    }
    rows("OVERALL", &overall);
    std::fs::write(dir.join("results.tsv"), out)?;
    let mut hist = String::from("method\tdistance\ttrue_pairs\tunrelated_pairs\n");
    for (i, m) in Method::ALL.iter().enumerate() {
        for d in 0..=m.bits() as usize {
            let _ = writeln!(
                hist,
                "{}\t{d}\t{}\t{}",
                m.name(),
                run.histograms.true_pairs[i][d],
                run.histograms.unrelated_pairs[i][d]
            );
        }
    }
    std::fs::write(dir.join("distances.tsv"), hist)?;
    let mut per_query = String::from(
        "picture\tedit\tentry\tfound\tfalse_match\tconfidence\terror\thow\tpdq_quality\tquality64\n",
    );
    let opt = |q: Option<u8>| q.map(|q| q.to_string()).unwrap_or_default();
    for r in &run.results {
        let v = r.screened.as_ref();
        let _ = writeln!(
            per_query,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            run.pictures[r.picture],
            run.edits[r.edit].name,
            r.entry.map(|e| e.to_string()).unwrap_or_default(),
            v.map(|v| v.found.to_string()).unwrap_or_default(),
            v.map(|v| v.false_match.to_string()).unwrap_or_default(),
            v.and_then(|v| v.confidence)
                .map(|c| format!("{c:.4}"))
                .unwrap_or_default(),
            r.error.as_deref().unwrap_or(""),
            v.and_then(|v| v.how.as_deref()).unwrap_or(""),
            opt(r.pdq_quality),
            opt(r.quality64),
        );
    }
    std::fs::write(dir.join("queries.tsv"), per_query)?;
    // The banked pictures' qualities, what the 64-bit floor must keep (`bank.tsv`).
    let mut bank = String::from("entry\tpicture\tpdq_quality\tquality64\n");
    for (entry, (&p, (pdq, q64))) in run.banked.iter().zip(&run.bank_qualities).enumerate() {
        let _ = writeln!(
            bank,
            "{entry}\t{}\t{}\t{}",
            run.pictures[p],
            opt(*pdq),
            opt(*q64)
        );
    }
    std::fs::write(dir.join("bank.tsv"), bank)
}

/// `recall_per_edit.png` and `distances_<method>.png`.
pub fn write_plots(run: &EvalRun, dir: &Path) -> Result<(), PlotError> {
    let ds = decisions(run);
    let (per_edit, overall) = summarise(run);
    let mut categories: Vec<String> = run.edits.iter().map(|e| e.name.to_string()).collect();
    categories.push("OVERALL".into());
    let wanted: Vec<usize> = ds
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            matches!(
                d,
                Decision::Screener
                    | Decision::Combined
                    | Decision::Method(Method::Pdq | Method::PdqDihedral | Method::Phash)
            )
        })
        .map(|(j, _)| j)
        .collect();
    let series = wanted
        .iter()
        .map(|&j| {
            let mut v: Vec<f64> = per_edit.iter().map(|c| 100.0 * c[j].recall()).collect();
            v.push(100.0 * overall[j].recall());
            (ds[j].name(), v)
        })
        .collect();
    BarChart {
        title: "Recall per edit (edited copies of banked pictures found)".into(),
        value_label: "recall, %".into(),
        categories,
        series,
        max: 100.0,
    }
    .write_png(&dir.join("recall_per_edit.png"))?;
    for (i, m) in Method::ALL.iter().enumerate() {
        let as_fraction = |h: &[u64]| {
            let total: u64 = h.iter().sum();
            h.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(d, n)| (d as f64, *n as f64 / total.max(1) as f64))
                .collect::<Vec<_>>()
        };
        LineChart {
            title: format!("{}: distance of true and unrelated pairs", m.name()),
            x_label: if *m == Method::Keypoints {
                "points of 64 that did not agree on one displacement".into()
            } else {
                "Hamming distance".into()
            },
            y_label: "fraction of pairs".into(),
            log_x: false,
            log_y: true,
            series: vec![
                Series {
                    name: "true (edited copy, own entry)".into(),
                    points: as_fraction(&run.histograms.true_pairs[i]),
                    thin: false,
                    color: None,
                },
                Series {
                    name: "unrelated (copy, other entry)".into(),
                    points: as_fraction(&run.histograms.unrelated_pairs[i]),
                    thin: false,
                    color: None,
                },
                Series {
                    name: format!("threshold {}", m.threshold()),
                    points: vec![
                        (f64::from(m.threshold()), 1e-6),
                        (f64::from(m.threshold()), 1.0),
                    ],
                    thin: true,
                    color: None,
                },
            ],
        }
        .write_png(&dir.join(format!("distances_{}.png", m.name())))?;
    }
    Ok(())
}

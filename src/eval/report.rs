//! Counting a run: recall and false matches per edit and overall, TSV and PNG plots.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::Method;
use std::collections::BTreeMap;

use super::harness::{CopyClass, EvalRun, PictureClass, QueryResult, ScreenHit};
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
    /// Copies of unbanked photos under an edit that is not a template (class `unbanked_edit`).
    pub unbanked_edit_copies: u64,
    /// Of those, how many matched anything.
    pub false_unbanked_edit: u64,
    /// Copies of unbanked photos in a shared template (class `template`).
    pub template_copies: u64,
    /// Of those, how many matched anything.
    pub false_template: u64,
    /// Copies of low-texture pictures, banked or not (class `low_texture`).
    pub low_texture_copies: u64,
    /// Of those, how many matched an entry not their own picture's.
    pub false_low_texture: u64,
    /// Copies of banked low-texture pictures (not in recall).
    pub low_texture_banked: u64,
    /// Of those, how many found their own entry.
    pub low_texture_found: u64,
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

    /// Copies, banked or not, that matched an entry not their own: the sum over the classes
    /// (banked photos, unbanked edits, template negatives, low-texture pictures).
    pub fn false_matches(&self) -> u64 {
        self.false_banked + self.false_unbanked_edit + self.false_template + self.false_low_texture
    }

    fn add(&mut self, o: &Counts) {
        self.banked += o.banked;
        self.found += o.found;
        self.unbanked += o.unbanked;
        self.false_unbanked += o.false_unbanked;
        self.false_banked += o.false_banked;
        self.errors += o.errors;
        self.unbanked_edit_copies += o.unbanked_edit_copies;
        self.false_unbanked_edit += o.false_unbanked_edit;
        self.template_copies += o.template_copies;
        self.false_template += o.false_template;
        self.low_texture_copies += o.low_texture_copies;
        self.false_low_texture += o.false_low_texture;
        self.low_texture_banked += o.low_texture_banked;
        self.low_texture_found += o.low_texture_found;
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

/// Counts one copy under one decision. Recall (`banked`, `found`, `false_banked`) counts copies
/// of banked photos only; a low-texture picture's copies count in the `low_texture` fields.
pub fn count(r: &QueryResult, decision: Decision) -> Counts {
    let mut c = Counts::default();
    let banked = r.entry.is_some();
    match r.class {
        CopyClass::Banked => c.banked = 1,
        CopyClass::UnbankedEdit => c.unbanked_edit_copies = 1,
        CopyClass::Template => c.template_copies = 1,
        CopyClass::LowTexture => {
            c.low_texture_copies = 1;
            c.low_texture_banked = u64::from(banked);
        }
    }
    if !banked {
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
    if !banked {
        c.false_unbanked = u64::from(wrong);
    }
    let wrong = u64::from(wrong);
    match r.class {
        CopyClass::Banked => {
            c.found = u64::from(found);
            c.false_banked = wrong;
        }
        CopyClass::UnbankedEdit => c.false_unbanked_edit = wrong,
        CopyClass::Template => c.false_template = wrong,
        CopyClass::LowTexture => {
            c.low_texture_found = u64::from(found && banked);
            c.false_low_texture = wrong;
        }
    }
    c
}

/// Counts over the edits of the first harness only ([`crate::eval::edits::ORIGINAL_EDITS`]), per
/// decision: the figures the grown catalogue keeps comparable with earlier runs.
pub fn summarise_original(run: &EvalRun) -> Vec<Counts> {
    let ds = decisions(run);
    let mut out = vec![Counts::default(); ds.len()];
    for r in run
        .results
        .iter()
        .filter(|r| run.edits[r.edit].is_original())
    {
        for (j, d) in ds.iter().enumerate() {
            out[j].add(&count(r, *d));
        }
    }
    out
}

/// One false match of the screener, for reports.
#[derive(Clone, Debug)]
pub struct FalseMatch<'a> {
    /// The copy.
    pub result: &'a QueryResult,
    /// The wrong match.
    pub hit: &'a ScreenHit,
}

/// Every false match of the screener (each wrong entry of each copy), in result order.
pub fn false_matches(run: &EvalRun) -> Vec<FalseMatch<'_>> {
    run.results
        .iter()
        .filter(|r| r.error.is_none())
        .flat_map(|r| {
            r.screened
                .iter()
                .flat_map(|v| v.false_hits.iter())
                .map(move |hit| FalseMatch { result: r, hit })
        })
        .collect()
}

/// The screener's false matches grouped by (copy class, algorithm, lookup variant): copies with
/// such a match, and the smallest and largest distance. Sorted by class, then most copies first.
pub fn false_match_groups(run: &EvalRun) -> Vec<(CopyClass, String, String, u64, u32, u32)> {
    let mut groups: BTreeMap<(CopyClass, String, String), (u64, u32, u32)> = BTreeMap::new();
    for f in false_matches(run) {
        let g = groups
            .entry((
                f.result.class,
                f.hit.algorithm().to_string(),
                f.hit.variant().to_string(),
            ))
            .or_insert((0, u32::MAX, 0));
        g.0 += 1;
        g.1 = g.1.min(f.hit.distance);
        g.2 = g.2.max(f.hit.distance);
    }
    let mut out: Vec<_> = groups
        .into_iter()
        .map(|((c, a, v), (n, lo, hi))| (c, a, v, n, lo, hi))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(b.3.cmp(&a.3)).then(a.1.cmp(&b.1)));
    out
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
    let original = summarise_original(run);
    for (d, c) in ds.iter().zip(&original) {
        let _ = writeln!(
            s,
            "{} on the {} original edits: recall {:.1}% ({}/{}), {} false matches",
            d.name(),
            crate::eval::edits::ORIGINAL_EDITS.len(),
            100.0 * c.recall(),
            c.found,
            c.banked,
            c.false_matches()
        );
    }
    for (d, c) in ds.iter().zip(&overall) {
        let _ = writeln!(
            s,
            "{} false matches by class: banked photos {} of {}, unbanked edits {} of {}, template negatives {} of {}, low-texture {} of {} (their own entries found: {} of {})",
            d.name(),
            c.false_banked,
            c.banked,
            c.false_unbanked_edit,
            c.unbanked_edit_copies,
            c.false_template,
            c.template_copies,
            c.false_low_texture,
            c.low_texture_copies,
            c.low_texture_found,
            c.low_texture_banked
        );
    }
    let groups = false_match_groups(run);
    if !groups.is_empty() {
        let _ = writeln!(
            s,
            "false matches of vigie by class, algorithm and lookup variant (copies, distances):"
        );
        for (class, algorithm, variant, n, lo, hi) in &groups {
            let _ = writeln!(
                s,
                "  {:<14} {:<8} {:<30} {:>5}  {lo}..{hi}",
                class.name(),
                algorithm,
                variant,
                n
            );
        }
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
        "edit\tdecision\tbanked_copies\tfound\trecall\tunbanked_copies\tfalse_unbanked\tfalse_banked\terrors\tunbanked_edit_copies\tfalse_unbanked_edit\ttemplate_copies\tfalse_template\tlow_texture_copies\tfalse_low_texture\tlow_texture_banked\tlow_texture_found\n",
    );
    let mut rows = |name: &str, counts: &[Counts]| {
        for (d, c) in ds.iter().zip(counts) {
            let _ = writeln!(
                out,
                "{name}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                d.name(),
                c.banked,
                c.found,
                c.recall(),
                c.unbanked,
                c.false_unbanked,
                c.false_banked,
                c.errors,
                c.unbanked_edit_copies,
                c.false_unbanked_edit,
                c.template_copies,
                c.false_template,
                c.low_texture_copies,
                c.false_low_texture,
                c.low_texture_banked,
                c.low_texture_found
            );
        }
    };
    for (e, counts) in per_edit.iter().enumerate() {
        rows(run.edits[e].name, counts);
    }
    rows("OVERALL", &overall);
    rows("ORIGINAL_EDITS", &summarise_original(run));
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
        "picture\tedit\tentry\tfound\tfalse_match\tconfidence\terror\thow\tpdq_quality\tquality64\tclass\tfalse_how\tfalse_distance\tfalse_entry\n",
    );
    let opt = |q: Option<u8>| q.map(|q| q.to_string()).unwrap_or_default();
    for r in &run.results {
        let v = r.screened.as_ref();
        let worst = v.and_then(|v| v.false_hits.first());
        let _ = writeln!(
            per_query,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
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
            r.class.name(),
            worst.map(|h| h.how.as_str()).unwrap_or(""),
            worst.map(|h| h.distance.to_string()).unwrap_or_default(),
            worst.map(|h| run.entry_name(h.entry)).unwrap_or_default(),
        );
    }
    std::fs::write(dir.join("queries.tsv"), per_query)?;
    // Every false match of the screener: what the matcher's redesign reads (`false_matches.tsv`).
    let mut fm = String::from(
        "picture\tclass\tedit\tentry\tentry_name\talgorithm\tvariant\tdistance\tconfidence\tpdq_quality\tquality64\tentry_pdq_quality\tentry_quality64\n",
    );
    for f in false_matches(run) {
        let (epdq, eq64) = run
            .bank_qualities
            .get(f.hit.entry)
            .copied()
            .unwrap_or((None, None));
        let _ = writeln!(
            fm,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{}\t{}",
            run.pictures[f.result.picture],
            f.result.class.name(),
            run.edits[f.result.edit].name,
            f.hit.entry,
            run.entry_name(f.hit.entry),
            f.hit.algorithm(),
            f.hit.variant(),
            f.hit.distance,
            f.hit.confidence,
            opt(f.result.pdq_quality),
            opt(f.result.quality64),
            opt(epdq),
            opt(eq64),
        );
    }
    std::fs::write(dir.join("false_matches.tsv"), fm)?;
    // The bank's qualities, what the 64-bit floor must keep (`bank.tsv`): every entry, the
    // banked pictures first, then the templated copies; `photo_box` (x,y,width,height in the
    // picture's pixels) when the entry was taken for a template and banked as its photo.
    let mut bank =
        String::from("entry\tpicture\tpdq_quality\tquality64\ttemplate\tclass\tphoto_box\n");
    for (entry, (b, (pdq, q64))) in run.entries.iter().zip(&run.bank_qualities).enumerate() {
        let photo_box = run
            .bank_photo_boxes
            .get(entry)
            .copied()
            .flatten()
            .map(|r| format!("{},{},{},{}", r.x, r.y, r.width, r.height))
            .unwrap_or_default();
        let _ = writeln!(
            bank,
            "{entry}\t{}\t{}\t{}\t{}\t{}\t{photo_box}",
            run.pictures[b.picture],
            opt(*pdq),
            opt(*q64),
            b.template.map(|t| run.edits[t].name).unwrap_or(""),
            match run.classes[b.picture] {
                PictureClass::Photo => "photo",
                PictureClass::LowTexture => "low_texture",
            }
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

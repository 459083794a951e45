//! `vigie bench lookup`: lookup latency of the Hamming index against a plain linear scan on seeded
//! synthetic banks (uniform, and families of near-duplicates), with build time and memory.
//!
//! Memory per entry is [`IndexCore::heap_bytes`] divided by the entry count: the capacity of every
//! vector the index owns (hash array, ids, each table's bucket directory and entry arena). Each is
//! a single allocation, so allocator bookkeeping is negligible; the bank copy the benchmark keeps
//! for the linear scan is not counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

use super::BenchError;
use super::measure::{ms, percentile, progress_bar, thread_cpu_time};
use super::synth::{self, BankKind, SplitMix64};
use crate::bits::Bits;
use crate::index::{HammingIndex, Layout, Match, linear_scan};
use crate::plot::{LineChart, Series};

/// Arguments of `vigie bench lookup`.
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// Bank size, or a comma-separated list of sizes (then a PNG of latency against size is drawn).
    #[arg(long, value_delimiter = ',', required = true)]
    pub entries: Vec<usize>,
    /// Hash width: 256 (PDQ) or 64 (pHash/dHash).
    #[arg(long, default_value_t = 256)]
    pub bits: u32,
    /// Query radius (inclusive Hamming distance).
    #[arg(long)]
    pub radius: u32,
    /// Queries per bank (half planted near stored hashes, half uniform).
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Seed of the synthetic banks and queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report here (and the PNG next to it, same name with `.png`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    mean_us: f64,
}

impl Latency {
    /// Percentiles of `times` (any order; sorted here), in microseconds; NaN when empty.
    fn of(times: &mut [Duration]) -> Latency {
        times.sort_unstable();
        let at = |q: f64| percentile(times, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
        let total: Duration = times.iter().sum();
        Latency {
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: at(1.0),
            mean_us: total.as_secs_f64() * 1e6 / times.len() as f64,
        }
    }
}

#[derive(Debug, Serialize)]
struct Run {
    bank: BankKind,
    entries: usize,
    build_ms: f64,
    bytes_per_entry: f64,
    layout: LayoutSummary,
    /// Wall-clock time per query.
    vigie: Latency,
    /// Thread CPU time per query (see `thread_cpu_time`).
    vigie_cpu: Latency,
    linear_scan: Latency,
    linear_scan_cpu: Latency,
    /// Linear-scan p50 over vigie p50.
    speedup_p50: f64,
    speedup_p99: f64,
    /// Matches summed over all queries (identical for both paths, checked).
    matches: usize,
    queries_with_matches: usize,
}

#[derive(Debug, Serialize)]
struct LayoutSummary {
    substrings: usize,
    substring_bits: Vec<u32>,
    prefix_bits: Vec<u32>,
}

impl From<&Layout> for LayoutSummary {
    fn from(l: &Layout) -> Self {
        LayoutSummary {
            substrings: l.tables.len(),
            substring_bits: l.tables.iter().map(|t| t.bits).collect(),
            prefix_bits: l.tables.iter().map(|t| t.prefix_bits).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    bits: u32,
    radius: u32,
    queries: usize,
    seed: u64,
    runs: Vec<Run>,
}

/// Runs `vigie bench lookup`: both bank kinds at every size; the JSON report on stdout (and in
/// `--out`), a PNG of latency against size when several sizes were asked for. Errors: bad
/// arguments, an index that cannot hold the bank, a result that differs from the linear scan's, an
/// unwritable output.
pub fn run(args: LookupArgs) -> Result<(), BenchError> {
    if args.queries == 0 {
        return Err(BenchError("--queries must be at least 1".into()));
    }
    if args.entries.contains(&0) {
        return Err(BenchError("--entries must be at least 1".into()));
    }
    if args.bits != 256 && args.bits != 64 {
        return Err(BenchError(format!(
            "--bits must be 256 or 64, not {}",
            args.bits
        )));
    }
    if args.radius > args.bits {
        return Err(BenchError(format!(
            "--radius {} exceeds the hash width {}",
            args.radius, args.bits
        )));
    }
    let runs = match args.bits {
        256 => bench_width::<4>(&args)?,
        64 => bench_width::<1>(&args)?,
        other => return Err(BenchError(format!("--bits must be 256 or 64, not {other}"))),
    };
    let report = Report {
        bits: args.bits,
        radius: args.radius,
        queries: args.queries,
        seed: args.seed,
        runs,
    };
    let json = match &args.out {
        Some(out) => super::write_json(out, &report)?,
        None => serde_json::to_string_pretty(&report)?,
    };
    println!("{json}");
    if args.entries.len() > 1 {
        let png = match &args.out {
            Some(out) => out.with_extension("png"),
            None => PathBuf::from("bench-lookup.png"),
        };
        plot(&report, &png)?;
        eprintln!("plot written to {}", png.display());
    }
    Ok(())
}

fn bench_width<const W: usize>(args: &LookupArgs) -> Result<Vec<Run>, BenchError> {
    let mut runs = Vec::new();
    for kind in [BankKind::Uniform, BankKind::NearDuplicates] {
        for &n in &args.entries {
            // One stream per (kind, size) so a run does not depend on which others were asked for.
            let mut rng =
                SplitMix64::new(args.seed ^ (n as u64).wrapping_mul(0x9E37_79B9) ^ kind as u64);
            let run = bench_one::<W>(kind, n, args, &mut rng)?;
            eprintln!(
                "{:>15} {:>9} entries: build {:.0} ms, {:.1} B/entry | vigie p50 {:.1} us p99 {:.1} us max {:.1} us \
                 (cpu p50 {:.1} p99 {:.1}) | linear p50 {:.1} us p99 {:.1} us | x{:.1} at p50",
                kind.name(),
                n,
                run.build_ms,
                run.bytes_per_entry,
                run.vigie.p50_us,
                run.vigie.p99_us,
                run.vigie.max_us,
                run.vigie_cpu.p50_us,
                run.vigie_cpu.p99_us,
                run.linear_scan.p50_us,
                run.linear_scan.p99_us,
                run.speedup_p50
            );
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Runs `search` on each query in turn under a progress bar named `what`: the wall time, the
/// thread CPU time and the result of each.
fn time_each<const W: usize>(
    queries: &[Bits<W>],
    what: String,
    mut search: impl FnMut(&Bits<W>) -> Vec<Match>,
) -> (Vec<Duration>, Vec<Duration>, Vec<Vec<Match>>) {
    let bar = progress_bar(
        queries.len() as u64,
        "{msg:>40} [{bar:30}] {pos}/{len} {elapsed}",
    );
    bar.set_message(what);
    let mut wall = Vec::with_capacity(queries.len());
    let mut cpu = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let (t, c) = (Instant::now(), thread_cpu_time());
        let found = search(q);
        wall.push(t.elapsed());
        cpu.push(thread_cpu_time().saturating_sub(c));
        results.push(found);
        bar.inc(1);
    }
    bar.finish_and_clear();
    (wall, cpu, results)
}

fn bench_one<const W: usize>(
    kind: BankKind,
    n: usize,
    args: &LookupArgs,
    rng: &mut SplitMix64,
) -> Result<Run, BenchError> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("{} bank of {n}: generating", kind.name()));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let bank: Vec<Bits<W>> = synth::bank(kind, n, rng);
    let ids: Vec<u64> = (0..n as u64).collect();
    let queries = synth::queries(&bank, args.queries, args.radius, rng);

    spinner.set_message(format!("{} bank of {n}: building the index", kind.name()));
    let start = Instant::now();
    let index = HammingIndex::<W>::from_entries(bank.iter().copied().zip(ids.iter().copied()))
        .map_err(|e| BenchError(e.to_string()))?;
    let build = start.elapsed();
    spinner.finish_and_clear();

    let label = |what: &str| format!("{} {n}: {what}", kind.name());
    let (mut vigie_times, mut vigie_cpu, vigie_results) =
        time_each(&queries, label("vigie queries"), |q| {
            index.search(q, args.radius)
        });
    let (mut linear_times, mut linear_cpu, linear_results) =
        time_each(&queries, label("linear scan"), |q| {
            linear_scan(&bank, &ids, q, args.radius)
        });
    if let Some(i) = (0..queries.len()).find(|&i| vigie_results[i] != linear_results[i]) {
        return Err(BenchError(format!(
            "RESULT MISMATCH on {} bank of {n}, query {i} ({}): index found {} matches, linear scan {}",
            kind.name(),
            queries[i],
            vigie_results[i].len(),
            linear_results[i].len()
        )));
    }

    let vigie = Latency::of(&mut vigie_times);
    let linear = Latency::of(&mut linear_times);
    Ok(Run {
        bank: kind,
        entries: n,
        build_ms: ms(build),
        bytes_per_entry: index.heap_bytes() as f64 / n as f64,
        layout: LayoutSummary::from(&index.layout()),
        speedup_p50: linear.p50_us / vigie.p50_us,
        speedup_p99: linear.p99_us / vigie.p99_us,
        vigie,
        vigie_cpu: Latency::of(&mut vigie_cpu),
        linear_scan: linear,
        linear_scan_cpu: Latency::of(&mut linear_cpu),
        matches: vigie_results.iter().map(Vec::len).sum(),
        queries_with_matches: vigie_results.iter().filter(|r| !r.is_empty()).count(),
    })
}

fn plot(report: &Report, path: &std::path::Path) -> Result<(), BenchError> {
    // Colour by method and bank, thick p50, thin p99.
    let mut series = Vec::new();
    for (kind, vigie_color, linear_color) in [
        (BankKind::Uniform, (214, 39, 40), (31, 119, 180)),
        (BankKind::NearDuplicates, (255, 127, 14), (23, 190, 207)),
    ] {
        let runs: Vec<&Run> = report.runs.iter().filter(|r| r.bank == kind).collect();
        let line = |name: &str, pick: &dyn Fn(&Run) -> f64, thin: bool, color| Series {
            name: format!("{name}, {}", kind.name()),
            points: runs.iter().map(|r| (r.entries as f64, pick(r))).collect(),
            thin,
            color: Some(color),
        };
        series.push(line("vigie p50", &|r| r.vigie.p50_us, false, vigie_color));
        series.push(line("vigie p99", &|r| r.vigie.p99_us, true, vigie_color));
        series.push(line(
            "linear scan p50",
            &|r| r.linear_scan.p50_us,
            false,
            linear_color,
        ));
        series.push(line(
            "linear scan p99",
            &|r| r.linear_scan.p99_us,
            true,
            linear_color,
        ));
    }
    let chart = LineChart {
        title: format!(
            "Single-query lookup latency, {}-bit hashes, radius {}, {} queries",
            report.bits, report.radius, report.queries
        ),
        x_label: "bank size (entries)".into(),
        y_label: "latency (microseconds)".into(),
        log_x: true,
        log_y: true,
        series,
    };
    chart.write_png(path).map_err(|e| BenchError(e.to_string()))
}

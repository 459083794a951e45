//! `vigie bench store`: open + load time and resident memory of the start-up load.
//!
//! Populates a store with N random PDQ entries (once; kept for later runs), then measures in a
//! fresh child process, so the figures are those of a server starting: open the store, stream
//! every active entry into the in-memory index, report wall time and resident set (VmRSS, VmHWM).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::bits::Bits;
use crate::index::HammingIndex;
use crate::store::load::{BulkLoad, HashSink, load_into};
use crate::store::{
    EntryHashes, EntryId, HashValue, NewBank, NewEntry, RocksOptions, Store, Timestamp,
};

use super::CliError;
use super::bank::print_json;

#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Number of PDQ entries in the benchmark store.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Store directory [default: ./vigie-bench-store-<entries>]; populated when empty, kept after.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Measured load runs (each in a fresh process); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Internal: measure one load in this process and print it as JSON.
    #[arg(long, hide = true)]
    pub load_only: bool,
    /// Stream the entries without building the index (separates store scan time from index time).
    #[arg(long)]
    pub scan_only: bool,
}

const BANK: &str = "bench";

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", 2014):
/// reproducible random hashes without a dependency.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn populate(dir: &std::path::Path, n: u64) -> Result<(), CliError> {
    // Bulk set-up only: unsynced writes (the measured open uses the default, synced options).
    let store = Store::open(
        dir,
        &RocksOptions {
            sync_writes: false,
            ..RocksOptions::default()
        },
    )?;
    if store.get_bank(BANK)?.is_none() {
        store.create_bank(
            NewBank {
                name: BANK.into(),
                ..NewBank::default()
            },
            "bench",
        )?;
    }
    let have = store.count_entries(BANK)?;
    if have >= n {
        return Ok(());
    }
    let bar = ProgressBar::new(n);
    if let Ok(style) =
        ProgressStyle::with_template("populating {bar:40} {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar.set_position(have);
    let mut rng = 0x5eed_u64 ^ have;
    let mut i = have;
    while i < n {
        let end = (i + 10_000).min(n);
        let batch: Vec<NewEntry> = (i..end)
            .map(|k| {
                let hashes = EntryHashes {
                    pdq: Some(Bits([
                        splitmix(&mut rng),
                        splitmix(&mut rng),
                        splitmix(&mut rng),
                        splitmix(&mut rng),
                    ])),
                    ..EntryHashes::default()
                };
                NewEntry {
                    external_id: format!("e{k:010}"),
                    hashes,
                    label: "bench".into(),
                    ..NewEntry::default()
                }
            })
            .collect();
        store.upsert_entries(BANK, batch, "bench")?;
        bar.set_position(end);
        i = end;
    }
    bar.finish_and_clear();
    eprintln!("compacting...");
    store.compact()?;
    Ok(())
}

/// VmRSS and VmHWM of this process in bytes (Linux); zero elsewhere.
pub fn resident_memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Counts hashes and keeps nothing.
#[derive(Default)]
struct CountingSink(u64);

impl HashSink for CountingSink {
    fn insert(&mut self, _id: EntryId, _hash: HashValue) {
        self.0 += 1;
    }

    fn len(&self) -> u64 {
        self.0
    }
}

fn load_once(dir: &std::path::Path, scan_only: bool) -> Result<serde_json::Value, CliError> {
    if scan_only {
        let start = Instant::now();
        let store = Store::open(dir, &RocksOptions::default())?;
        let opened = start.elapsed();
        let mut sink = CountingSink::default();
        let stats = load_into(&store, Timestamp::now(), &mut sink)?;
        let total = start.elapsed();
        let (rss, hwm) = resident_memory();
        return Ok(serde_json::json!({
            "entries": stats.entries,
            "hashes": sink.len(),
            "open_ms": opened.as_secs_f64() * 1e3,
            "load_ms": (total - opened).as_secs_f64() * 1e3,
            "total_ms": total.as_secs_f64() * 1e3,
            "rss_mib": rss as f64 / 1048576.0,
            "peak_rss_mib": hwm as f64 / 1048576.0,
        }));
    }
    let start = Instant::now();
    let store = Store::open(dir, &RocksOptions::default())?;
    let opened = start.elapsed();
    // As the server loads: gather per algorithm, then one bulk extend of the PDQ index.
    let mut bulk = BulkLoad::default();
    let stats = load_into(&store, Timestamp::now(), &mut bulk)?;
    let scanned = start.elapsed();
    let pdq = HammingIndex::<4>::from_entries(std::mem::take(&mut bulk.pdq))
        .map_err(|e| CliError(format!("index: {e}")))?;
    let total = start.elapsed();
    let (rss, hwm) = resident_memory();
    Ok(serde_json::json!({
        "entries": stats.entries,
        "hashes": stats.hashes,
        "open_ms": opened.as_secs_f64() * 1e3,
        "load_ms": (total - opened).as_secs_f64() * 1e3,
        "total_ms": total.as_secs_f64() * 1e3,
        "rss_mib": rss as f64 / 1048576.0,
        "peak_rss_mib": hwm as f64 / 1048576.0,
        "scan_ms": (scanned - opened).as_secs_f64() * 1e3,
        "index_ms": (total - scanned).as_secs_f64() * 1e3,
        "index_len": pdq.len(),
        "index_heap_mib": pdq.heap_bytes() as f64 / 1048576.0,
    }))
}

pub fn run(args: StoreBenchArgs) -> Result<ExitCode, CliError> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("./vigie-bench-store-{}", args.entries)));
    if args.load_only {
        print_json(&load_once(&dir, args.scan_only)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    populate(&dir, args.entries)?;
    let exe = std::env::current_exe()?;
    let mut runs = Vec::new();
    for run in 0..args.runs.max(1) {
        let output = Command::new(&exe)
            .args([
                "bench",
                "store",
                "--load-only",
                "--entries",
                &args.entries.to_string(),
                "--data-dir",
            ])
            .arg(&dir)
            .output()?;
        if !output.status.success() {
            return Err(CliError(format!(
                "load run failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        eprintln!("run {}: {value}", run + 1);
        runs.push(value);
    }
    let median = |key: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    print_json(&serde_json::json!({
        "entries": args.entries,
        "runs": runs.len(),
        "scan_only": args.scan_only,
        "median_open_ms": median("open_ms"),
        "median_load_ms": median("load_ms"),
        "median_total_ms": median("total_ms"),
        "median_rss_mib": median("rss_mib"),
        "median_peak_rss_mib": median("peak_rss_mib"),
    }))?;
    Ok(ExitCode::SUCCESS)
}

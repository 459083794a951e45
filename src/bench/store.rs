//! `vigie bench store`: open + load time and resident memory of the start-up load.
//!
//! Populates a store with N random PDQ entries (once; kept for later runs), then measures in a
//! fresh child process, so the figures are those of a server starting: open the store, stream
//! every active entry into the in-memory index, report wall time and resident set (VmRSS, VmHWM).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::BenchError;
use super::measure::{Resident, median, mib, ms, progress_bar};
use super::synth::SplitMix64;
use crate::index::HammingIndex;
use crate::store::load::{BulkLoad, HashSink, load_into};
use crate::store::{
    EntryHashes, EntryId, HashValue, NewBank, NewEntry, RocksOptions, Store, Timestamp,
};

/// Arguments of `vigie bench store`.
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

/// The bank the benchmark store holds (shared with `vigie bench service`).
const BANK: &str = "bench";

/// The benchmark store's directory when none is given: `./vigie-bench-store-<entries>`.
pub(crate) fn default_dir(entries: u64) -> PathBuf {
    PathBuf::from(format!("./vigie-bench-store-{entries}"))
}

/// Makes the store under `dir` (created if missing) hold at least `n` entries of random PDQ hashes
/// in the bank `bench`, adding only the missing ones, then compacts it. The entries are the same
/// on every machine: entry `k` is `e<k>` (ten digits), its hash drawn from a SplitMix64 stream
/// seeded by the count already present when a run starts. Errors: the store's.
pub(crate) fn populate(dir: &Path, n: u64) -> Result<(), BenchError> {
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
    let bar = progress_bar(n, "populating {bar:40} {pos}/{len} {per_sec} eta {eta}");
    bar.set_position(have);
    let mut rng = SplitMix64::new(0x5eed_u64 ^ have);
    let mut i = have;
    while i < n {
        let end = (i + 10_000).min(n);
        let batch: Vec<NewEntry> = (i..end)
            .map(|k| {
                let hashes = EntryHashes {
                    pdq: Some(rng.hash()),
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

/// One start-up load, timed in this process: open the store, stream every active entry into the
/// PDQ index as the server does (or, `scan_only`, into a counter), then read the resident memory
/// with the index still held. Returns the figures as a JSON object (times in ms, memory in MiB).
fn load_once(dir: &Path, scan_only: bool) -> Result<serde_json::Value, BenchError> {
    let start = Instant::now();
    let store = Store::open(dir, &RocksOptions::default())?;
    let opened = start.elapsed();
    let (mut report, index) = if scan_only {
        let mut sink = CountingSink::default();
        let stats = load_into(&store, Timestamp::now(), &mut sink)?;
        let report = serde_json::json!({ "entries": stats.entries, "hashes": sink.len() });
        (report, None)
    } else {
        // As the server loads: gather per algorithm, then one bulk extend of the PDQ index.
        let mut bulk = BulkLoad::default();
        let stats = load_into(&store, Timestamp::now(), &mut bulk)?;
        let scanned = start.elapsed();
        let pdq = HammingIndex::<4>::from_entries(std::mem::take(&mut bulk.pdq))
            .map_err(|e| BenchError(format!("index: {e}")))?;
        let report = serde_json::json!({
            "entries": stats.entries,
            "hashes": stats.hashes,
            "scan_ms": ms(scanned - opened),
            "index_ms": ms(start.elapsed() - scanned),
            "index_len": pdq.len(),
            "index_heap_mib": mib(pdq.heap_bytes() as u64),
        });
        (report, Some(pdq))
    };
    let total = start.elapsed();
    let memory = Resident::now();
    drop(index);
    if let serde_json::Value::Object(map) = &mut report {
        map.insert("open_ms".into(), ms(opened).into());
        map.insert("load_ms".into(), ms(total - opened).into());
        map.insert("total_ms".into(), ms(total).into());
        map.insert("rss_mib".into(), mib(memory.now).into());
        map.insert("peak_rss_mib".into(), mib(memory.peak).into());
    }
    Ok(report)
}

/// Runs `vigie bench store`: populates the store if needed, then times `--runs` loads, each in a
/// fresh child process (`--load-only`), and prints their medians as one JSON line (each run's
/// figures go to stderr). Errors: the store's, or a failed child run (with its stderr).
pub fn run(args: StoreBenchArgs) -> Result<(), BenchError> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| default_dir(args.entries));
    if args.load_only {
        println!(
            "{}",
            serde_json::to_string(&load_once(&dir, args.scan_only)?)?
        );
        return Ok(());
    }
    populate(&dir, args.entries)?;
    let exe = std::env::current_exe()?;
    let mut runs = Vec::new();
    for run in 0..args.runs.max(1) {
        let mut child = Command::new(&exe);
        child
            .args(["bench", "store", "--load-only", "--entries"])
            .arg(args.entries.to_string())
            .arg("--data-dir")
            .arg(&dir);
        if args.scan_only {
            child.arg("--scan-only");
        }
        let output = child.output()?;
        if !output.status.success() {
            return Err(BenchError(format!(
                "load run failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        eprintln!("run {}: {value}", run + 1);
        runs.push(value);
    }
    let median_of = |key: &str| median(runs.iter().filter_map(|r| r[key].as_f64()).collect());
    let summary = serde_json::json!({
        "entries": args.entries,
        "runs": runs.len(),
        "scan_only": args.scan_only,
        "median_open_ms": median_of("open_ms"),
        "median_load_ms": median_of("load_ms"),
        "median_total_ms": median_of("total_ms"),
        "median_rss_mib": median_of("rss_mib"),
        "median_peak_rss_mib": median_of("peak_rss_mib"),
    });
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

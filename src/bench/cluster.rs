//! `vigie bench cluster`: replicas sharing banks through NATS JetStream, measured on this machine.
//!
//! Starts a 3-node NATS cluster (`cluster::local`, real `nats-server` processes on loopback) and
//! replicas in this process (`cluster::Cluster`, each with its own RocksDB directory), then
//! measures: propagation (a write on replica A, from the call to its apply on replica B) p50/p99;
//! write throughput with the stream replicated 3 times (single-entry changes from concurrent
//! writers, and batches of `--batch` entries that fill the bank to `--entries`); replay rate (a
//! new replica applying the whole stream from its first change); and the time for a new replica
//! to be ready when the stream's start is gone (download and restore the newest snapshot, load
//! the index, replay the rest).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BenchError;
use super::measure::{ms, percentile};
use super::synth::SplitMix64;
use crate::cluster::local::{LocalNats, find_nats_server};
use crate::cluster::{Cluster, ClusterConfig, snapshots};
use crate::hashing::HashingSetup;
use crate::store::{Change, EntryHashes, HashValue, NewBank, NewEntry, Origin, RocksOptions};

/// Arguments of `vigie bench cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterBenchArgs {
    /// Entries in the bank the replay and the new replica are measured on.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Entries per change when filling the bank.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Single-entry writes timed for propagation.
    #[arg(long, default_value_t = 500)]
    pub writes: usize,
    /// Concurrent writers of single-entry changes (throughput).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Working directory (NATS stores, replica data) [default: a temporary directory, removed].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const BANK: &str = "bench";

/// A single-entry change's entry: `external_id` with a uniform random PDQ hash.
fn random_entry(rng: &mut SplitMix64, external_id: String) -> NewEntry {
    let mut hashes = EntryHashes::default();
    hashes.set(HashValue::Pdq(rng.hash::<4>()));
    NewEntry {
        external_id,
        hashes,
        label: String::new(),
        source: String::new(),
        note: String::new(),
        added_by: None,
        added_at: None,
        disabled_until: None,
    }
}

/// The nearest-rank percentile `q` of `sorted` in milliseconds (0 when there are none).
fn pct_ms(sorted: &[Duration], q: f64) -> f64 {
    percentile(sorted, q).map_or(0.0, ms)
}

/// The benchmark's replica configuration: stream `BENCH` replicated 3 times, snapshots only when
/// the benchmark publishes one, never not ready for lag.
fn config(urls: &str) -> ClusterConfig {
    ClusterConfig {
        servers: urls.split(',').map(str::to_string).collect(),
        stream: "BENCH".into(),
        replicas: 3,
        write_timeout: Duration::from_secs(30),
        // Snapshots only when the benchmark publishes one.
        snapshot_changes: u64::MAX,
        snapshot_interval: Duration::from_secs(86_400 * 365),
        max_lag: u64::MAX,
        ..ClusterConfig::default()
    }
}

/// A replica of the benchmark's stream with its store under `dir`, started.
async fn replica(urls: &str, dir: &Path) -> Result<Cluster, BenchError> {
    let options = RocksOptions::default();
    Cluster::start(&config(urls), dir, &options, HashingSetup::default())
        .await
        .map_err(|e| BenchError(e.to_string()))
}

/// Waits until `c` caught up with the stream head it saw at start.
async fn until_ready(c: &Cluster) {
    let mut ready = c.progress.watch_ready();
    let _ = ready.wait_for(|r| *r).await;
}

/// Runs the benchmark (3 NATS servers and up to 4 replicas, in a temporary directory unless
/// `--dir`); progress on stderr, the report as JSON on stdout (and in `--out`). Errors:
/// nats-server not found, NATS or a replica failing, or the new replica missing entries.
pub fn run(args: ClusterBenchArgs) -> Result<(), BenchError> {
    let binary = find_nats_server().ok_or_else(|| {
        BenchError("nats-server not found: run scripts/setup.sh (or set VIGIE_NATS_SERVER)".into())
    })?;
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&args, &binary, &dir));
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// A fresh directory for one run, named by this process.
fn tempfile_dir() -> Result<PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("vigie-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The measures, in order, on a NATS cluster under `dir`.
async fn bench(args: &ClusterBenchArgs, binary: &Path, dir: &Path) -> Result<(), BenchError> {
    let nats = LocalNats::start(binary, &dir.join("nats"), 3, 8 << 20)?;
    let urls = nats.urls();
    eprintln!("NATS cluster of 3 on {urls}");
    let a = replica(&urls, &dir.join("a")).await?;
    let b = replica(&urls, &dir.join("b")).await?;
    until_ready(&a).await;
    until_ready(&b).await;
    let origin = || Origin::now("bench");
    a.writer
        .write_async(
            Change::CreateBank {
                bank: NewBank {
                    name: BANK.into(),
                    ..NewBank::default()
                },
            },
            &origin(),
        )
        .await
        .map_err(|e| BenchError(e.to_string()))?;

    // Propagation: one write at a time on A, until B applied it.
    let mut rng = SplitMix64::new(7);
    let mut acks = Vec::with_capacity(args.writes);
    let mut propagation = Vec::with_capacity(args.writes);
    for i in 0..args.writes {
        let change = Change::UpsertEntries {
            bank: BANK.into(),
            entries: vec![random_entry(&mut rng, format!("p-{i}"))],
        };
        let started = Instant::now();
        a.writer
            .write_async(change, &origin())
            .await
            .map_err(|e| BenchError(e.to_string()))?;
        acks.push(started.elapsed());
        b.progress.wait_applied(a.progress.applied()).await;
        propagation.push(started.elapsed());
    }
    acks.sort();
    propagation.sort();
    eprintln!(
        "propagation over {} writes: acknowledged on A p50 {:.2} ms p99 {:.2} ms; applied on B p50 {:.2} ms p99 {:.2} ms",
        args.writes,
        pct_ms(&acks, 0.5),
        pct_ms(&acks, 0.99),
        pct_ms(&propagation, 0.5),
        pct_ms(&propagation, 0.99)
    );

    // Throughput of single-entry writes from concurrent writers.
    let single = (args.writes * 4).max(args.concurrency);
    let writer = a.writer.clone();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let writer = writer.clone();
        let n = single / args.concurrency;
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(1000 + w as u64);
            for i in 0..n {
                let change = Change::UpsertEntries {
                    bank: BANK.into(),
                    entries: vec![random_entry(&mut rng, format!("s-{w}-{i}"))],
                };
                writer.write_async(change, &Origin::now("bench")).await?;
            }
            Ok::<_, crate::cluster::WriteError>(n)
        }));
    }
    let mut written = 0;
    for t in tasks {
        written += t
            .await
            .map_err(|e| BenchError(e.to_string()))?
            .map_err(|e| BenchError(e.to_string()))?;
    }
    let single_rate = written as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "single-entry writes, {} writers: {single_rate:.0} entries/s acknowledged",
        args.concurrency
    );

    // Fill the bank with batches (4 writers).
    let batches = (args.entries as usize).div_ceil(args.batch);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per = batches.div_ceil(4);
    for w in 0..4usize {
        let writer = writer.clone();
        let batch = args.batch;
        let (from, to) = (w * per, ((w + 1) * per).min(batches));
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(9000 + w as u64);
            for k in from..to {
                let entries = (0..batch)
                    .map(|j| random_entry(&mut rng, format!("b-{k}-{j}")))
                    .collect();
                let change = Change::UpsertEntries {
                    bank: BANK.into(),
                    entries,
                };
                writer.write_async(change, &Origin::now("bench")).await?;
            }
            Ok::<_, crate::cluster::WriteError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| BenchError(e.to_string()))?
            .map_err(|e| BenchError(e.to_string()))?;
    }
    let fill = started.elapsed();
    let batch_rate = (batches * args.batch) as f64 / fill.as_secs_f64();
    b.progress.wait_applied(a.progress.applied()).await;
    let total_entries = a.store.count_entries(BANK)?;
    let changes = a.progress.applied();
    eprintln!(
        "batched writes ({} entries a change, 4 writers): {batch_rate:.0} entries/s acknowledged; bank now {total_entries} entries in {changes} changes",
        args.batch
    );

    // Replay: a new replica applies the whole stream.
    let started = Instant::now();
    let c = replica(&urls, &dir.join("c")).await?;
    until_ready(&c).await;
    let replay = started.elapsed();
    let replay_rate = total_entries as f64 / replay.as_secs_f64();
    eprintln!(
        "replay of {changes} changes ({total_entries} entries) by a new replica: {:.1} s, {replay_rate:.0} entries/s, {:.0} changes/s",
        replay.as_secs_f64(),
        changes as f64 / replay.as_secs_f64()
    );
    c.shutdown().await;

    // A new replica when the stream's start is gone: snapshot, purge, join.
    let client = async_nats::connect(urls.split(',').map(str::to_string).collect::<Vec<_>>())
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    let js = async_nats::jetstream::new(client);
    let bucket = snapshots::ensure_bucket(&js, "BENCH", 3)
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    let started = Instant::now();
    let covered = snapshots::publish(&bucket, &a.live, &dir.join("a.snapshot-bench"))
        .await
        .map_err(|e| BenchError(e.to_string()))?
        .unwrap_or(0);
    let publish = started.elapsed();
    let stream = js
        .get_stream("BENCH")
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    stream
        .purge()
        .sequence(covered + 1)
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    let started = Instant::now();
    let d = replica(&urls, &dir.join("d")).await?;
    until_ready(&d).await;
    let join = started.elapsed();
    let d_entries = d.store.count_entries(BANK)?;
    eprintln!(
        "snapshot at sequence {covered} published in {:.1} s; a new replica ready in {:.1} s with {d_entries} entries",
        publish.as_secs_f64(),
        join.as_secs_f64()
    );
    if d_entries != total_entries {
        return Err(BenchError(format!(
            "the new replica has {d_entries} entries, the bank {total_entries}"
        )));
    }
    let report = serde_json::json!({
        "propagation_ms": { "p50": pct_ms(&propagation, 0.5), "p99": pct_ms(&propagation, 0.99) },
        "ack_ms": { "p50": pct_ms(&acks, 0.5), "p99": pct_ms(&acks, 0.99) },
        "single_entry_writes_per_s": single_rate.round(),
        "batched_entries_per_s": batch_rate.round(),
        "batch": args.batch,
        "entries": total_entries,
        "changes": changes,
        "replay_s": replay.as_secs_f64(),
        "replay_entries_per_s": replay_rate.round(),
        "replay_changes_per_s": (changes as f64 / replay.as_secs_f64()).round(),
        "snapshot_publish_s": publish.as_secs_f64(),
        "new_replica_ready_s": join.as_secs_f64(),
    });
    match &args.out {
        Some(out) => println!("{}", super::write_json(out, &report)?),
        None => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    d.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
    drop(nats);
    Ok(())
}

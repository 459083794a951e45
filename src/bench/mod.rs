//! `vigie bench lookup|store|hash|service|cluster|keypoints`: the benchmarks that run outside the
//! test suite, and what they share.
//!
//! Each harness owns its arguments (a `clap::Args` struct) and its report; [`run`] is the one
//! dispatch. The helpers they share live here once: [`measure`] (percentiles, thread CPU time,
//! resident memory, progress bars), [`pictures`] (reading a directory of pictures, picking the
//! largest, re-encoding them as JPEG) and [`synth`] (seeded synthetic hashes, banks and queries,
//! also used by the index's property tests and the criterion benches). Nothing in the core imports
//! this module.

pub mod cluster;
pub mod hash;
pub mod keypoints;
pub mod lookup;
pub mod measure;
pub mod pictures;
pub mod service;
pub mod store;
pub mod synth;

/// Which benchmark `vigie bench` runs.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Lookup latency of the Hamming index against a linear scan on synthetic banks.
    Lookup(lookup::LookupArgs),
    /// Store open + index load time and resident memory with N PDQ entries.
    Store(store::StoreBenchArgs),
    /// Per-image medians for decoding and each hash at several sizes; images per second.
    Hash(hash::HashBenchArgs),
    /// Screen throughput and latency under increasing load, against a 1M-entry bank.
    Service(service::ServiceBenchArgs),
    /// Replicas through NATS JetStream: propagation, write throughput, replay, a new replica's
    /// start (needs nats-server: scripts/setup.sh installs it).
    Cluster(cluster::ClusterBenchArgs),
    /// Keypoints at bank scale: a bank of N synthetic image entries drawn from a corpus's real
    /// keypoints, the corpus's other pictures screened against it (index memory per entry, chance
    /// pairs, screen latency, false matches).
    Keypoints(keypoints::KeypointsBenchArgs),
}

/// Runs one benchmark to its end: its report is on stdout (and under `--out` where it has one),
/// its progress on stderr.
///
/// Errors: a refused argument, an unreadable input, a failed store or server, or (lookup) a result
/// that differs from the linear scan's; each as one line of text.
pub fn run(which: BenchCommand) -> Result<(), BenchError> {
    match which {
        BenchCommand::Lookup(args) => lookup::run(args),
        BenchCommand::Store(args) => store::run(args),
        BenchCommand::Hash(args) => hash::run(args),
        BenchCommand::Service(args) => service::run(args),
        BenchCommand::Cluster(args) => cluster::run(args),
        BenchCommand::Keypoints(args) => keypoints::run(args),
    }
}

/// A benchmark that could not run to its end, as one line of text. Any error converts into one by
/// its message (so it is not itself a `std::error::Error`, which would make that conversion
/// overlap the identity one).
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for BenchError {
    fn from(e: E) -> Self {
        BenchError(e.to_string())
    }
}

/// Writes `report` as pretty JSON (with a final newline) to `path` and returns the text.
/// Errors: serialisation, or `path` not writable (named in the message).
pub fn write_json(
    path: &std::path::Path,
    report: &impl serde::Serialize,
) -> Result<String, BenchError> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, format!("{json}\n"))
        .map_err(|e| BenchError(format!("{}: {e}", path.display())))?;
    Ok(json)
}

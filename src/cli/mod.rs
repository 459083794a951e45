//! Command-line front ends. Each command parses its own arguments and talks to the core;
//! errors surface as one line on stderr and a non-zero exit code.

pub mod audit;
pub mod bank;
pub mod client;
pub mod entries;
mod entries_images;
pub mod eval;
pub mod hash;
pub mod import_export;
pub mod keys;
pub mod matching;
pub mod recover;
pub mod serve;

use std::process::ExitCode;

/// What `--help` says of hash lists and of 64-bit hex (`vigie hash`, `match`, `import`, `export`).
pub const HASH_LIST_HELP: &str = "\
64-bit pHash and dHash hex is in the bit order Python `imagehash` writes (`str(imagehash.phash(img))`): \
the 8x8 hash grid row by row, its first bit the most significant bit of the first hex digit. \
vigie prints its own hashes so and reads lists so; until schema 5 vigie printed each byte's bits \
the other way round (a file written by an older vigie reads a few dozen bits off: hash the pictures \
again, or export them again from a migrated store).

Hash lists are read as the field writes them: a bare hash per line; `hash,quality,path` \
(Meta's pdq-photo-hasher); `hash=<hex>,...` (Meta's hash I/O); a hash, then a tab or spaces and \
anything. Files saved on Windows read as they are (UTF-8 with a byte-order mark, UTF-16 with \
its mark, CRLF, trailing spaces). An error names the file and line and quotes only the hash.";

use clap::{Parser, Subcommand};

/// Perceptual-hash screening against banks of known abusive imagery
#[derive(Debug, Parser)]
#[command(name = "vigie", version)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `vigie` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hash image files (PDQ, pHash, dHash, MD5, SHA-256), one JSON line per file.
    Hash(hash::HashArgs),
    /// Match one hash list against another (exact Hamming search), one JSON line per query.
    Match(matching::MatchArgs),
    /// Create, list, show, update and delete banks.
    Bank {
        /// What to do.
        #[command(subcommand)]
        command: bank::BankCommand,
    },
    /// Add, remove, list, show, disable and enable bank entries.
    Entries {
        /// What to do.
        #[command(subcommand)]
        command: entries::EntriesCommand,
    },
    /// Import entries into a bank (jsonl, csv, signal-lines, hex); last stdout line is a JSON summary.
    Import(import_export::ImportArgs),
    /// Export a bank's entries to stdout (jsonl, csv, signal-lines, hex).
    Export(import_export::ExportArgs),
    /// List the audit log of bank and entry changes.
    Audit(audit::AuditArgs),
    /// Run the gRPC service on the existing store under --data-dir.
    // Boxed: its settings (server, HTTP edge, cluster) make it several times the other variants.
    Serve(Box<serve::ServeArgs>),
    /// Open a store whose write-ahead log is damaged, keeping what precedes the damage and
    /// reporting what was dropped (needs --accept-wal-loss).
    RecoverWal(recover::RecoverArgs),
    /// Create, list and revoke API keys (on --data-dir, while no server holds it).
    Keys(keys::KeysArgs),
    /// Talk to a running server: create a bank, add an image, screen files.
    Client(client::ClientArgs),
    /// Recall and false matches on edited copies of a corpus (TSV and plots).
    Eval(eval::EvalArgs),
    /// Benchmarks that run outside the test suite.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: crate::bench::BenchCommand,
    },
}

/// A command that could not run to its end: printed as `error: ...` on stderr, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError(e.to_string())
    }
}

/// Runs the parsed command; a failure is printed as one `error: ...` line on stderr and gives exit
/// code 2, success the command's own code (usually 0).
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Hash(args) => hash::run(args),
        Command::Match(args) => matching::run(args),
        Command::Bench { which } => crate::bench::run(which)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| CliError(e.0)),
        Command::Bank { command } => bank::run(command),
        Command::Entries { command } => entries::run(command),
        Command::Import(args) => import_export::run_import(args),
        Command::Export(args) => import_export::run_export(args),
        Command::Audit(args) => audit::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::RecoverWal(args) => recover::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Client(args) => client::run(args),
        Command::Eval(args) => eval::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

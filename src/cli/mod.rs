//! Command-line front ends. Each command parses its own arguments and talks to the core;
//! errors surface as one line on stderr and a non-zero exit code.

pub mod bench_lookup;
pub mod eval;
pub mod hash;
pub mod matching;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vigie",
    version,
    about = "Perceptual-hash screening against banks of known abusive imagery"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hash image files (PDQ, pHash, dHash, MD5, SHA-256), one JSON line per file.
    Hash(hash::HashArgs),
    /// Match one hash list against another (exact Hamming search), one JSON line per query.
    Match(matching::MatchArgs),
    /// Recall and false matches on edited copies of a corpus (TSV and plots).
    Eval(eval::EvalArgs),
    /// Benchmarks that run outside the test suite.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Lookup latency of the Hamming index against a linear scan on synthetic banks.
    Lookup(bench_lookup::LookupArgs),
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

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Hash(args) => hash::run(args),
        Command::Match(args) => matching::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench {
            which: BenchCommand::Lookup(args),
        } => bench_lookup::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

//! The `vigie` binary: argument parsing and dispatch only; every command lives in `vigie::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = vigie::cli::Cli::parse();
    vigie::cli::run(cli)
}

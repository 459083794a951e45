//! `vigie match`: placeholder, filled in by the index work.
use std::process::ExitCode;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct MatchArgs {}

pub fn run(_args: MatchArgs) -> Result<ExitCode, CliError> {
    Err(CliError("not yet implemented".into()))
}

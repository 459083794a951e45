//! `vigie bench lookup`: placeholder, filled in by the index work.
use std::process::ExitCode;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct LookupArgs {}

pub fn run(_args: LookupArgs) -> Result<ExitCode, CliError> {
    Err(CliError("not yet implemented".into()))
}

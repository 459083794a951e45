//! `vigie audit`: the audit log, one JSON line per event, oldest first.

use std::process::ExitCode;

use crate::store::{AuditFilter, Timestamp};

use super::CliError;
use super::bank::{StoreArgs, print_json};

/// `vigie audit`: the audit log of bank and entry changes.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only events of this bank.
    #[arg(long)]
    pub bank: Option<String>,
    /// Only events at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events at or before this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The store to read.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Prints the audit events that pass the filters, one JSON line each. Errors: the store cannot be
/// opened or read.
pub fn run(args: AuditArgs) -> Result<ExitCode, CliError> {
    let filter = AuditFilter {
        bank: args.bank,
        since: args.since.as_deref().map(Timestamp::parse).transpose()?,
        until: args.until.as_deref().map(Timestamp::parse).transpose()?,
        limit: args.limit,
    };
    let db = args.store.open(false)?;
    for event in db.audit_events(&filter)? {
        print_json(&event)?;
    }
    Ok(ExitCode::SUCCESS)
}

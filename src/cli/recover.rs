//! `vigie recover-wal`: the one explicit way to open a store whose write-ahead log is damaged,
//! keeping what precedes the damage and reporting exactly what was dropped.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliError;
use crate::store::{RocksOptions, Store, StoreError, WalRecovery};

/// The arguments of `vigie recover-wal`.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The store's directory (no server may hold it).
    #[arg(long, env = "VIGIE_DATA_DIR", default_value = "./vigie-data")]
    pub data_dir: PathBuf,
    /// Required: you accept losing every write recorded in the log from the damage on (restoring
    /// from a backup or a replica loses nothing; prefer it when you can).
    #[arg(long)]
    pub accept_wal_loss: bool,
}

/// Opens the store strictly first; only when that fails on a damaged log does it reopen with
/// point-in-time recovery (the log files copied aside first), then prints one JSON object: what
/// was kept and dropped (see `RecoveryReport`). Exit 0 when the store is whole or was recovered;
/// 2 (with the reason) otherwise. The store is left closed and whole: `vigie serve` opens it.
pub fn run(args: RecoverArgs) -> Result<ExitCode, CliError> {
    if !args.accept_wal_loss {
        return Err(CliError(
            "recover-wal drops every write logged after the damage: pass --accept-wal-loss to \
             say you accept it (or restore the store from a backup or a replica)"
                .into(),
        ));
    }
    let strict = RocksOptions {
        create_if_missing: false,
        ..RocksOptions::default()
    };
    match Store::open(&args.data_dir, &strict) {
        Ok(_) => {
            super::bank::print_json(&serde_json::json!({
                "recovered": false,
                "message": "the store opens whole: nothing to recover",
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(StoreError::Damaged(message)) => {
            eprintln!("strict open refused: {message}");
        }
        Err(e) => return Err(e.into()),
    }
    let (store, report) = Store::open_reporting(
        &args.data_dir,
        &RocksOptions {
            wal_recovery: WalRecovery::PointInTime,
            ..strict
        },
    )?;
    drop(store);
    let Some(report) = report else {
        return Err(CliError("point-in-time open gave no report".into()));
    };
    eprintln!("{report}");
    super::bank::print_json(&serde_json::json!({
        "recovered": true,
        "wal_copy": report.wal_copy.display().to_string(),
        "batches_in_log": report.batches_in_log,
        "batches_kept": report.batches_kept,
        "batches_dropped": report.batches_dropped,
        "operations_dropped": report.operations_dropped,
        "bytes_after_damage": report.bytes_after_damage,
        "recovered_sequence": report.recovered_sequence,
    }))?;
    Ok(ExitCode::SUCCESS)
}

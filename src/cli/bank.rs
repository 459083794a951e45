//! `vigie bank create|list|show|update|delete`, and the `--data-dir`/`--actor` arguments every
//! store command shares.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::store::formats::FormatError;
use crate::store::{BankKind, BankUpdate, MaxDistances, NewBank, RocksOptions, Store, StoreError};

use super::CliError;

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError(e.to_string())
    }
}

impl From<FormatError> for CliError {
    fn from(e: FormatError) -> Self {
        CliError(e.to_string())
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError(e.to_string())
    }
}

/// Where the store is and who is acting on it.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Data directory of the store (RocksDB). Refused while a server or another command holds it.
    #[arg(long, env = "VIGIE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Actor named in the audit log for changes [default: cli:$USER].
    #[arg(long, env = "VIGIE_ACTOR")]
    pub actor: Option<String>,
}

impl StoreArgs {
    /// Open the store; commands that only read refuse a missing directory instead of creating one.
    pub fn open(&self, create: bool) -> Result<Store, CliError> {
        if !create && !self.data_dir.join("CURRENT").exists() {
            return Err(CliError(format!(
                "no vigie store in {} (create a bank first)",
                self.data_dir.display()
            )));
        }
        Ok(Store::open(&self.data_dir, &RocksOptions::default())?)
    }

    /// The audit actor: `--actor`, else `cli:` and the login name.
    pub fn actor(&self) -> String {
        match &self.actor {
            Some(a) => a.clone(),
            None => {
                let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME"));
                format!("cli:{}", user.unwrap_or_else(|_| "unknown".into()))
            }
        }
    }
}

/// Thresholds on the command line; unset ones keep the current (or default) value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DistanceArgs {
    /// Maximum PDQ distance for a match (default 31).
    #[arg(long)]
    pub pdq_max_distance: Option<u32>,
    /// Maximum pHash distance (default 8).
    #[arg(long)]
    pub phash_max_distance: Option<u32>,
    /// Maximum dHash distance (default 8).
    #[arg(long)]
    pub dhash_max_distance: Option<u32>,
}

impl DistanceArgs {
    fn is_set(&self) -> bool {
        self.pdq_max_distance.is_some()
            || self.phash_max_distance.is_some()
            || self.dhash_max_distance.is_some()
    }

    fn apply(&self, mut base: MaxDistances) -> MaxDistances {
        base.pdq = self.pdq_max_distance.unwrap_or(base.pdq);
        base.phash = self.phash_max_distance.unwrap_or(base.phash);
        base.dhash = self.dhash_max_distance.unwrap_or(base.dhash);
        base
    }
}

/// `vigie bank ...`: bank management on a store no server holds.
#[derive(Debug, clap::Subcommand)]
pub enum BankCommand {
    /// Create a bank; prints it as JSON.
    Create {
        /// Bank name: [A-Za-z0-9_-]{1,64}.
        name: String,
        /// block: matches flag an upload; allow: matches cancel block matches of the same picture.
        #[arg(long, default_value = "block")]
        kind: BankKind,
        /// What the bank holds, for curators.
        #[arg(long, default_value = "")]
        description: String,
        /// Create it disabled (its entries are not matched until enabled).
        #[arg(long)]
        disabled: bool,
        /// Maximum Hamming distances per algorithm (bits).
        #[command(flatten)]
        distances: DistanceArgs,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List banks, one JSON line each, with entry counts.
    List {
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one bank as JSON, with its entry count.
    Show {
        /// The bank's name.
        name: String,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a bank's description, kind, enabled flag or thresholds.
    Update {
        /// The bank's name.
        name: String,
        /// What the bank holds, for curators.
        #[arg(long)]
        description: Option<String>,
        /// block: matches flag an upload; allow: matches cancel block matches of the same picture.
        #[arg(long)]
        kind: Option<BankKind>,
        /// Enable the bank (its entries are matched again).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable the bank (its entries are not matched until enabled).
        #[arg(long)]
        disable: bool,
        /// Maximum Hamming distances per algorithm (bits).
        #[command(flatten)]
        distances: DistanceArgs,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a bank and every entry in it.
    Delete {
        /// The bank's name.
        name: String,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn bank_with_count(
    store: &Store,
    bank: &crate::store::Bank,
) -> Result<serde_json::Value, CliError> {
    let mut value = serde_json::to_value(bank)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("entries".into(), store.count_entries(&bank.name)?.into());
    }
    Ok(value)
}

/// Runs one bank command, printing its result as JSON. Errors: the store refuses or fails.
pub fn run(command: BankCommand) -> Result<ExitCode, CliError> {
    match command {
        BankCommand::Create {
            name,
            kind,
            description,
            disabled,
            distances,
            store,
        } => {
            let actor = store.actor();
            let db = store.open(true)?;
            let new = NewBank {
                name,
                description,
                kind,
                enabled: Some(!disabled),
                max_distance: Some(distances.apply(MaxDistances::default())),
            };
            print_json(&db.create_bank(new, &actor)?)?;
        }
        BankCommand::List { store } => {
            let db = store.open(false)?;
            for bank in db.list_banks()? {
                print_json(&bank_with_count(&db, &bank)?)?;
            }
        }
        BankCommand::Show { name, store } => {
            let db = store.open(false)?;
            let bank = db.get_bank(&name)?.ok_or(StoreError::BankNotFound(name))?;
            print_json(&bank_with_count(&db, &bank)?)?;
        }
        BankCommand::Update {
            name,
            description,
            kind,
            enable,
            disable,
            distances,
            store,
        } => {
            let actor = store.actor();
            let db = store.open(false)?;
            let current = db
                .get_bank(&name)?
                .ok_or_else(|| StoreError::BankNotFound(name.clone()))?;
            let update = BankUpdate {
                description,
                kind,
                enabled: if enable {
                    Some(true)
                } else if disable {
                    Some(false)
                } else {
                    None
                },
                max_distance: distances
                    .is_set()
                    .then(|| distances.apply(current.max_distance)),
            };
            print_json(&db.update_bank(&name, update, &actor)?)?;
        }
        BankCommand::Delete { name, store } => {
            let actor = store.actor();
            let db = store.open(false)?;
            let removed = db.delete_bank(&name, &actor)?;
            print_json(&serde_json::json!({ "deleted": name, "entries_removed": removed.len() }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

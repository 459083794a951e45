//! `vigie keys create|update|list|revoke` on `--data-dir` (when no server holds it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::store::api_keys::{Detail, KeyPolicy, ProbeAction, Role, generate_key};
use crate::store::{RocksOptions, Store};

/// `vigie keys ...`: API keys on a store no server holds.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
    /// The store's directory.
    #[arg(
        long,
        global = true,
        env = "VIGIE_DATA_DIR",
        default_value = crate::config::DEFAULT_DATA_DIR
    )]
    pub data_dir: PathBuf,
}

/// A key's policy flags (docs/SECURITY.md); each one left out keeps its current value (on
/// create: the default).
#[derive(Debug, Default, clap::Args)]
pub struct PolicyFlags {
    /// How much a screen answer reveals: exact (distances), band (strong/medium/weak) or
    /// confidence (match and a two-level confidence). Default: confidence for screen keys,
    /// exact for curate and admin keys.
    #[arg(long)]
    pub detail: Option<Detail>,
    /// Screens a second, sustained (0: no limit). Default: the server's --key-rate.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Screens at once above the rate (token bucket size). Default: the server's --key-burst.
    #[arg(long)]
    pub burst: Option<u32>,
    /// What probing near banked hashes does: off, audit, withhold (answers near the probed
    /// hashes withheld for a while) or suspend (the key too). Default: withhold for screen keys,
    /// off for curate and admin keys.
    #[arg(long)]
    pub on_probe: Option<ProbeAction>,
}

impl PolicyFlags {
    fn policy(&self) -> KeyPolicy {
        KeyPolicy {
            detail: self.detail,
            rate: self.rate,
            burst: self.burst,
            on_probe: self.on_probe,
        }
    }
}

/// The key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// screen, curate or admin.
        #[arg(long)]
        role: Role,
        /// The key's name.
        #[arg(long)]
        name: String,
        /// The key's policy.
        #[command(flatten)]
        policy: PolicyFlags,
    },
    /// Change a key's policy, or lift its suspension.
    Update {
        /// The key's name.
        name: String,
        /// The policy fields to change.
        #[command(flatten)]
        policy: PolicyFlags,
        /// Lift a suspension for probing: the key works again.
        #[arg(long, conflicts_with = "suspend")]
        unsuspend: bool,
        /// Suspend the key: its calls fail until --unsuspend.
        #[arg(long)]
        suspend: bool,
    },
    /// List keys (names, roles, revocation), never the keys themselves.
    List,
    /// Revoke a key: its next call fails.
    Revoke {
        /// The key's name.
        name: String,
    },
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Runs one key command (a created key is printed once). Errors: the store refuses or fails.
pub fn run(args: KeysArgs) -> Result<ExitCode, CliError> {
    // `keys create` makes the store of a quick start; listing and revoking need an existing one.
    let options = RocksOptions {
        create_if_missing: matches!(args.command, KeysCommand::Create { .. }),
        ..RocksOptions::default()
    };
    let store = Store::open(&args.data_dir, &options).map_err(|e| CliError(e.to_string()))?;
    match args.command {
        KeysCommand::Create { role, name, policy } => {
            let key = generate_key();
            let record = store
                .create_api_key_with_policy(&name, role, policy.policy(), &key, &actor())
                .map_err(|e| CliError(e.to_string()))?;
            eprintln!(
                "created key {:?} with role {}; it is shown once, store it now:",
                record.name,
                record.role.name()
            );
            println!("{key}");
        }
        KeysCommand::List => {
            for k in store.list_api_keys().map_err(|e| CliError(e.to_string()))? {
                let line = serde_json::json!({
                    "name": k.name,
                    "role": k.role.name(),
                    "created_at": k.created_at.to_string(),
                    "revoked": k.revoked_at.is_some(),
                    "detail": k.detail().name(),
                    "rate": k.policy.rate,
                    "burst": k.policy.burst,
                    "on_probe": k.on_probe().name(),
                    "suspended": k.suspended_at.is_some(),
                });
                println!("{line}");
            }
        }
        KeysCommand::Update {
            name,
            policy,
            unsuspend,
            suspend,
        } => {
            let suspended = match (suspend, unsuspend) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let k = store
                .update_api_key(&name, policy.policy(), suspended, &actor())
                .map_err(|e| CliError(e.to_string()))?;
            eprintln!(
                "updated key {:?}: detail {}, rate {}, burst {}, on-probe {}{}",
                k.name,
                k.detail().name(),
                k.policy
                    .rate
                    .map_or_else(|| "server default".into(), |r| r.to_string()),
                k.policy
                    .burst
                    .map_or_else(|| "server default".into(), |b| b.to_string()),
                k.on_probe().name(),
                if k.suspended_at.is_some() {
                    ", suspended"
                } else {
                    ""
                }
            );
        }
        KeysCommand::Revoke { name } => {
            store
                .revoke_api_key(&name, &actor())
                .map_err(|e| CliError(e.to_string()))?;
            eprintln!("revoked key {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

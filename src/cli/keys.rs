//! `vigie keys create|list|revoke` on `--data-dir` (when no server holds it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::store::api_keys::{Role, generate_key};
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
    let store = Store::open(&args.data_dir, &RocksOptions::default())
        .map_err(|e| CliError(e.to_string()))?;
    match args.command {
        KeysCommand::Create { role, name } => {
            let key = generate_key();
            let record = store
                .create_api_key(&name, role, &key, &actor())
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
                });
                println!("{line}");
            }
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

//! `vigie entries add|remove|list|show|disable|enable`.

use std::process::ExitCode;

use crate::store::{
    Algorithm, EntryHashes, EntryId, HashValue, NewEntry, Store, StoreError, Timestamp,
};

use super::CliError;
use super::bank::{StoreArgs, print_json};

/// Hashes given on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HashArgs {
    /// PDQ hash, 64 hex digits.
    #[arg(long)]
    pub pdq: Option<String>,
    /// pHash, 16 hex digits.
    #[arg(long)]
    pub phash: Option<String>,
    /// dHash, 16 hex digits.
    #[arg(long)]
    pub dhash: Option<String>,
    /// MD5, 32 hex digits.
    #[arg(long)]
    pub md5: Option<String>,
    /// SHA-256, 64 hex digits.
    #[arg(long)]
    pub sha256: Option<String>,
}

impl HashArgs {
    /// The hashes given on the command line. Errors: a malformed hex hash, or none given.
    pub fn parse(&self) -> Result<EntryHashes, CliError> {
        let mut hashes = EntryHashes::default();
        for (algorithm, text) in [
            (Algorithm::Pdq, &self.pdq),
            (Algorithm::Phash, &self.phash),
            (Algorithm::Dhash, &self.dhash),
            (Algorithm::Md5, &self.md5),
            (Algorithm::Sha256, &self.sha256),
        ] {
            if let Some(text) = text {
                let value = HashValue::parse(algorithm, text)
                    .map_err(|e| CliError(format!("--{algorithm}: {e}")))?;
                hashes.set(value);
            }
        }
        Ok(hashes)
    }
}

/// `vigie entries ...`: entry management on a store no server holds.
#[derive(Debug, clap::Subcommand)]
pub enum EntriesCommand {
    /// Add entries from image files (hashed with every algorithm) or from hashes given as flags.
    /// An external id already in the bank updates that entry. Prints one JSON line per entry.
    Add {
        /// The bank's name.
        #[arg(long)]
        bank: String,
        /// Image files; each becomes one entry (external id: the file's SHA-256 unless --external-id).
        images: Vec<std::path::PathBuf>,
        /// The hashes, one flag per algorithm.
        #[command(flatten)]
        hashes: HashArgs,
        /// External id (one entry only) [default: the image's SHA-256, or `<algorithm>:<hex>`].
        #[arg(long)]
        external_id: Option<String>,
        /// The entries' label (a category the curator chooses).
        #[arg(long, default_value = "")]
        label: String,
        /// Where the entry comes from (a case, a report, a partner).
        #[arg(long, default_value = "")]
        source: String,
        /// A free note for curators.
        #[arg(long, default_value = "")]
        note: String,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove entries by id or external id.
    Remove {
        /// The bank's name.
        #[arg(long)]
        bank: String,
        /// Entry ids.
        ids: Vec<EntryId>,
        /// Entries by their id in the curator's system.
        #[arg(long = "external-id")]
        external_ids: Vec<String>,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a bank's entries (external-id order), one JSON line each.
    List {
        /// The bank's name.
        #[arg(long)]
        bank: String,
        /// The entries' label (a category the curator chooses).
        #[arg(long)]
        label: Option<String>,
        /// Start after this external id (paging).
        #[arg(long)]
        after: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one entry by id, or by --bank and --external-id.
    Show {
        /// The entry's id.
        id: Option<EntryId>,
        /// The bank's name.
        #[arg(long, requires = "external_id")]
        bank: Option<String>,
        /// The entry's id in the curator's system (unique in its bank).
        #[arg(long)]
        external_id: Option<String>,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Take entries out of matching until a time (RFC 3339 or Unix seconds; default: indefinitely).
    Disable {
        /// The bank's name.
        #[arg(long)]
        bank: String,
        /// Entry ids.
        #[arg(required = true)]
        ids: Vec<EntryId>,
        /// Disabled until this time (RFC 3339, or Unix seconds).
        #[arg(long)]
        until: Option<String>,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Put disabled entries back into matching.
    Enable {
        /// The bank's name.
        #[arg(long)]
        bank: String,
        /// Entry ids.
        #[arg(required = true)]
        ids: Vec<EntryId>,
        /// The store to use (`--data-dir`).
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs one entries command, printing its result as JSON. Errors: bad input, the store refuses
/// or fails.
pub fn run(command: EntriesCommand) -> Result<ExitCode, CliError> {
    match command {
        EntriesCommand::Add {
            bank,
            images,
            hashes,
            external_id,
            label,
            source,
            note,
            store,
        } => {
            let given = hashes.parse()?;
            let mut entries = Vec::new();
            if !given.is_empty() {
                let first = given
                    .iter()
                    .next()
                    .map(|h| format!("{}:{}", h.algorithm(), h.to_hex()));
                let external_id = external_id.clone().or(first).unwrap_or_default();
                entries.push(NewEntry {
                    external_id,
                    hashes: given,
                    ..NewEntry::default()
                });
            }
            if !images.is_empty() {
                let hasher = super::entries_images::image_hasher();
                for path in &images {
                    entries.push(super::entries_images::entry_from_image(&hasher, path)?);
                }
            }
            if entries.is_empty() {
                return Err(CliError(
                    "give image files or at least one of --pdq/--phash/--dhash/--md5/--sha256"
                        .into(),
                ));
            }
            if let Some(id) = external_id {
                if entries.len() > 1 {
                    return Err(CliError(
                        "--external-id names one entry; several were given".into(),
                    ));
                }
                entries[0].external_id = id;
            }
            for e in &mut entries {
                e.label.clone_from(&label);
                e.source.clone_from(&source);
                e.note.clone_from(&note);
            }
            let actor = store.actor();
            let db = store.open(false)?;
            for done in db.upsert_entries(&bank, entries, &actor)? {
                print_json(&done)?;
            }
        }
        EntriesCommand::Remove {
            bank,
            mut ids,
            external_ids,
            store,
        } => {
            let actor = store.actor();
            let db = store.open(false)?;
            for x in external_ids {
                let entry = db
                    .find_entry(&bank, &x)?
                    .ok_or_else(|| StoreError::EntryNotFound(format!("{x:?} in bank {bank:?}")))?;
                ids.push(entry.id);
            }
            if ids.is_empty() {
                return Err(CliError("give entry ids or --external-id".into()));
            }
            for entry in db.remove_entries(&bank, &ids, &actor)? {
                print_json(
                    &serde_json::json!({ "removed": entry.id, "external_id": entry.external_id }),
                )?;
            }
        }
        EntriesCommand::List {
            bank,
            label,
            after,
            limit,
            store,
        } => {
            let db = store.open(false)?;
            for entry in db.list_entries(&bank, label.as_deref(), after.as_deref(), limit)? {
                print_json(&entry)?;
            }
        }
        EntriesCommand::Show {
            id,
            bank,
            external_id,
            store,
        } => {
            let db = store.open(false)?;
            let entry = match (id, bank, external_id) {
                (Some(id), None, None) => db
                    .get_entry(id)?
                    .ok_or_else(|| StoreError::EntryNotFound(id.to_string()))?,
                (None, Some(bank), Some(x)) => find(&db, &bank, &x)?,
                _ => {
                    return Err(CliError(
                        "give an entry id, or --bank and --external-id".into(),
                    ));
                }
            };
            print_json(&entry)?;
        }
        EntriesCommand::Disable {
            bank,
            ids,
            until,
            store,
        } => {
            let until = match until {
                Some(t) => Timestamp::parse(&t)?,
                None => Timestamp::MAX,
            };
            let actor = store.actor();
            let db = store.open(false)?;
            for entry in db.set_entries_disabled(&bank, &ids, Some(until), &actor)? {
                print_json(&entry)?;
            }
        }
        EntriesCommand::Enable { bank, ids, store } => {
            let actor = store.actor();
            let db = store.open(false)?;
            for entry in db.set_entries_disabled(&bank, &ids, None, &actor)? {
                print_json(&entry)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn find(db: &Store, bank: &str, external_id: &str) -> Result<crate::store::Entry, CliError> {
    Ok(db
        .find_entry(bank, external_id)?
        .ok_or_else(|| StoreError::EntryNotFound(format!("{external_id:?} in bank {bank:?}")))?)
}

//! Bank changes as values: every mutation of banks, entries and API keys is one [`Change`],
//! applied by [`Store::apply`] as one atomic batch with its audit event.
//!
//! Why values: the live matcher (`crate::matcher::LiveBanks`) must apply each change to the store
//! and then to its in-memory index in exactly the order of the store commits, and a replicated
//! deployment puts the same values on a log that every replica applies in order. So a change
//! carries everything decided before it is applied: who made it and when ([`Origin`]), and the
//! key's SHA-256 rather than the key. What is decided at apply time (entry ids, which external id
//! is an update) depends only on the store's state, so replicas that apply the same changes in the
//! same order end in the same state.
//!
//! Replaying a change leaves banks, entries and keys as one application did: a second create or
//! removal is refused with nothing written, a second upsert rewrites the same records under the
//! same ids. The audit log records each application.
//!
//! A change serialises to JSON with every part of an entry, its crop windows and keypoints
//! included (which the export formats leave out).

use serde::{Deserialize, Serialize};

use super::api_keys::{ApiKey, Role};
use super::{
    Bank, BankUpdate, Entry, EntryId, NewBank, NewEntry, Store, StoreError, Timestamp, Upserted,
};

/// Who made a change and when: the audit log's actor and time, and the time new entries are
/// stamped with. Decided once, where the change is accepted, so a replay records the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The audit actor (an API key's name, `cli`, ...): 1 to 256 printable bytes.
    pub actor: String,
    /// When the change was accepted.
    pub at: Timestamp,
}

impl Origin {
    /// A change made now by `actor`.
    pub fn now(actor: impl Into<String>) -> Origin {
        Origin {
            actor: actor.into(),
            at: Timestamp::now(),
        }
    }
}

/// One mutation of banks, entries or API keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Create a bank.
    CreateBank {
        /// The new bank.
        bank: NewBank,
    },
    /// Change a bank's description, enabled flag, kind or limits.
    UpdateBank {
        /// The bank's name.
        name: String,
        /// What changes (`None` fields stay).
        update: BankUpdate,
    },
    /// Delete a bank and every entry in it.
    DeleteBank {
        /// The bank's name.
        name: String,
    },
    /// Add entries, or replace those whose external id is already in the bank.
    UpsertEntries {
        /// The bank's name.
        bank: String,
        /// The entries, in order (a repeated external id updates the earlier one).
        #[serde(with = "wire_entries")]
        entries: Vec<NewEntry>,
    },
    /// Remove entries, named by id and/or external id (all or nothing).
    RemoveEntries {
        /// The bank's name.
        bank: String,
        /// Entry ids.
        #[serde(default)]
        ids: Vec<EntryId>,
        /// External ids, resolved when the change is applied.
        #[serde(default)]
        external_ids: Vec<String>,
    },
    /// Disable entries until a time (`None`: enable them again).
    SetEntriesDisabled {
        /// The bank's name.
        bank: String,
        /// Entry ids.
        ids: Vec<EntryId>,
        /// Disabled until then; `None` enables.
        until: Option<Timestamp>,
    },
    /// Record the outcome of an import (its entries came as [`Change::UpsertEntries`]).
    RecordImport {
        /// The bank's name.
        bank: String,
        /// The counts, as the audit event's detail.
        detail: serde_json::Value,
    },
    /// Create an API key.
    CreateKey {
        /// Unique key name.
        name: String,
        /// What the key may do.
        role: Role,
        /// SHA-256 of the key, as 64 hex digits: the key itself never travels.
        #[serde(with = "hex32")]
        key_sha256: [u8; 32],
    },
    /// Revoke an API key.
    RevokeKey {
        /// The key's name.
        name: String,
    },
}

/// What applying a [`Change`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The bank as it now is (create, update).
    Bank(Bank),
    /// A deleted bank's entries, with the hashes they had.
    BankDeleted(Vec<(EntryId, super::EntryHashes)>),
    /// Upserted entries, in input order.
    Upserted(Vec<Upserted>),
    /// Removed entries.
    Removed(Vec<Entry>),
    /// Entries whose disabled time changed, as they now are.
    Disabled(Vec<Entry>),
    /// The import's audit event was written.
    ImportRecorded,
    /// The key's record (create, revoke).
    Key(ApiKey),
}

impl Change {
    /// The bank a change is about (`None` for key changes).
    pub fn bank(&self) -> Option<&str> {
        match self {
            Change::CreateBank { bank } => Some(&bank.name),
            Change::UpdateBank { name, .. } | Change::DeleteBank { name } => Some(name),
            Change::UpsertEntries { bank, .. }
            | Change::RemoveEntries { bank, .. }
            | Change::SetEntriesDisabled { bank, .. }
            | Change::RecordImport { bank, .. } => Some(bank),
            Change::CreateKey { .. } | Change::RevokeKey { .. } => None,
        }
    }
}

impl Store {
    /// Applies one change as one atomic batch with its audit event (actor and time from
    /// `origin`). Errors: what the corresponding store call refuses (an unknown bank or entry, an
    /// invalid name or text, a taken name), or a storage failure; on error nothing is written.
    pub fn apply(&self, change: Change, origin: &Origin) -> Result<Applied, StoreError> {
        let (actor, at) = (origin.actor.as_str(), origin.at);
        Ok(match change {
            Change::CreateBank { bank } => Applied::Bank(self.create_bank_at(bank, actor, at)?),
            Change::UpdateBank { name, update } => {
                Applied::Bank(self.update_bank_at(&name, update, actor, at)?)
            }
            Change::DeleteBank { name } => {
                Applied::BankDeleted(self.delete_bank_at(&name, actor, at)?)
            }
            Change::UpsertEntries { bank, entries } => {
                Applied::Upserted(self.upsert_entries_at(&bank, entries, actor, at)?)
            }
            Change::RemoveEntries {
                bank,
                mut ids,
                external_ids,
            } => {
                for external in &external_ids {
                    let entry = self.find_entry(&bank, external)?.ok_or_else(|| {
                        StoreError::EntryNotFound(format!(
                            "{} in bank {}",
                            super::quote(external),
                            super::quote(&bank)
                        ))
                    })?;
                    ids.push(entry.id);
                }
                Applied::Removed(self.remove_entries_at(&bank, &ids, actor, at)?)
            }
            Change::SetEntriesDisabled { bank, ids, until } => {
                Applied::Disabled(self.set_entries_disabled_at(&bank, &ids, until, actor, at)?)
            }
            Change::RecordImport { bank, detail } => {
                self.record_import_at(&bank, detail, actor, at)?;
                Applied::ImportRecorded
            }
            Change::CreateKey {
                name,
                role,
                key_sha256,
            } => Applied::Key(self.create_api_key_hashed_at(&name, role, key_sha256, actor, at)?),
            Change::RevokeKey { name } => Applied::Key(self.revoke_api_key_at(&name, actor, at)?),
        })
    }
}

/// 32 bytes as 64 lowercase hex digits.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the 32 bytes as one string of 64 lowercase hex digits, first byte first.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    /// Reads a string of exactly 64 hex digits (either case) into 32 bytes; anything else is a
    /// deserialisation error ("expected 64 hex digits").
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if text.len() != 64 || !text.is_ascii() {
            return Err(D::Error::custom("expected 64 hex digits"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| D::Error::custom("expected 64 hex digits"))?;
        }
        Ok(out)
    }
}

/// Entries with every part: the export form's fields (hashes as `{"pdq": hex, ...}`), plus the
/// crop-window PDQs and keypoints vigie derived from pixels, which exports leave out.
mod wire_entries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::bits::Bits;
    use crate::hashing::keypoints::Keypoint;
    use crate::store::{EntryKeypoints, NewEntry};

    #[derive(Serialize, Deserialize)]
    struct WireEntry {
        #[serde(flatten)]
        entry: NewEntry,
        /// Crop-window PDQs, hex.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pdq_windows: Vec<String>,
        /// Keypoints as `[x, y, scale, descriptor]`, the descriptor as a 64-bit number.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keypoints: Vec<(u8, u8, u8, u64)>,
    }

    /// Writes the entries as a sequence of `WireEntry`, in order.
    pub fn serialize<S: Serializer>(entries: &[NewEntry], s: S) -> Result<S::Ok, S::Error> {
        let wire: Vec<WireEntry> = entries
            .iter()
            .map(|e| WireEntry {
                entry: e.clone(),
                pdq_windows: e.hashes.windows().map(|w| w.to_hex()).collect(),
                keypoints: e
                    .hashes
                    .keypoints
                    .as_slice()
                    .iter()
                    .map(|p| (p.x, p.y, p.scale, p.descriptor.0[0]))
                    .collect(),
            })
            .collect();
        wire.serialize(s)
    }

    /// Reads a sequence of `WireEntry` back into entries, windows and keypoints restored.
    /// Errors: a window that is not 64 hex digits, or what the entry's own fields refuse.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NewEntry>, D::Error> {
        use serde::de::Error;
        let wire = Vec::<WireEntry>::deserialize(d)?;
        let mut out = Vec::with_capacity(wire.len());
        for w in wire {
            let mut entry = w.entry;
            let mut windows = Vec::with_capacity(w.pdq_windows.len());
            for hex in &w.pdq_windows {
                windows.push(Bits::<4>::from_hex(hex).map_err(D::Error::custom)?);
            }
            entry.hashes.set_windows(windows);
            entry.hashes.keypoints =
                EntryKeypoints::new(w.keypoints.into_iter().map(|(x, y, scale, d)| Keypoint {
                    x,
                    y,
                    scale,
                    descriptor: Bits([d]),
                }));
            out.push(entry);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::Bits;
    use crate::hashing::keypoints::Keypoint;
    use crate::store::{AuditFilter, EntryHashes, EntryKeypoints};

    fn entry(external_id: &str, seed: u64) -> NewEntry {
        let mut hashes = EntryHashes {
            pdq: Some(Bits([seed, !seed, seed.rotate_left(7), 3])),
            dhash: Some(Bits([seed ^ 0xabc])),
            ..EntryHashes::default()
        };
        hashes.set_windows([Bits([1, 2, 3, seed]), Bits([4, 5, 6, seed])]);
        hashes.keypoints = EntryKeypoints::new([Keypoint {
            x: 10,
            y: 200,
            scale: 2,
            descriptor: Bits([seed.wrapping_mul(31)]),
        }]);
        NewEntry {
            external_id: external_id.into(),
            hashes,
            label: "ad".into(),
            ..NewEntry::default()
        }
    }

    /// An ad with several photos: further PDQs beside the first (schema 5).
    fn entry_with_photos(external_id: &str, seed: u64) -> NewEntry {
        let mut e = entry(external_id, seed);
        for k in 1..=2 {
            e.hashes
                .add(crate::store::HashValue::Pdq(Bits([seed + k, 9, 9, k])))
                .expect("add");
        }
        assert_eq!(e.hashes.more.len(), 2);
        e
    }

    #[test]
    fn a_change_round_trips_through_json_with_windows_and_keypoints() {
        let changes = vec![
            Change::CreateBank {
                bank: NewBank {
                    name: "ads".into(),
                    enabled: Some(false),
                    ..NewBank::default()
                },
            },
            Change::UpsertEntries {
                bank: "ads".into(),
                entries: vec![entry("a", 1), entry_with_photos("b", 2)],
            },
            Change::SetEntriesDisabled {
                bank: "ads".into(),
                ids: vec![1],
                until: Some(Timestamp(1_700_000_000_123_456)),
            },
            Change::CreateKey {
                name: "k".into(),
                role: Role::Curate,
                key_sha256: [7; 32],
            },
        ];
        for change in changes {
            let json = serde_json::to_string(&change).expect("serialise");
            let back: Change = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, change, "{json}");
        }
    }

    #[test]
    fn replaying_changes_leaves_banks_entries_and_keys_as_one_application_did() {
        let store = Store::in_memory();
        let origin = Origin {
            actor: "tester".into(),
            at: Timestamp(1_700_000_000_000_000),
        };
        let changes = vec![
            Change::CreateBank {
                bank: NewBank {
                    name: "ads".into(),
                    ..NewBank::default()
                },
            },
            Change::UpsertEntries {
                bank: "ads".into(),
                entries: vec![entry("a", 1), entry("b", 2), entry_with_photos("a", 3)],
            },
            Change::RemoveEntries {
                bank: "ads".into(),
                ids: vec![],
                external_ids: vec!["b".into()],
            },
            Change::CreateKey {
                name: "k".into(),
                role: Role::Screen,
                key_sha256: [9; 32],
            },
        ];
        let snapshot = |store: &Store| {
            let entries = store.list_entries("ads", None, None, 100).expect("list");
            (
                store.list_banks().expect("banks"),
                entries,
                store.list_api_keys().expect("keys"),
            )
        };
        for c in &changes {
            store.apply(c.clone(), &origin).expect("first application");
        }
        let once = snapshot(&store);
        assert_eq!(
            once.1.len(),
            1,
            "a repeated external id updates: {:?}",
            once.1
        );
        assert_eq!(once.1[0].hashes.pdq, entry("a", 3).hashes.pdq);
        // Every photo of the ad is kept, through the replay too.
        assert_eq!(once.1[0].hashes, entry_with_photos("a", 3).hashes);
        assert_eq!(
            once.1[0].added_at, origin.at,
            "stamped with the change's time"
        );
        for c in &changes {
            // Creates and removals are refused the second time; upserts rewrite the same records.
            let _ = store.apply(c.clone(), &origin);
        }
        assert_eq!(snapshot(&store), once);
        // The audit log records each application that wrote something.
        let events = store.audit_events(&AuditFilter::default()).expect("audit");
        assert!(
            events
                .iter()
                .all(|e| e.time == origin.at && e.actor == "tester")
        );
    }
}

//! The service's own decision as a [`Screener`]: the banked pictures become entries of one block
//! bank in an in-memory store, indexed as the server indexes them (`HashIndexes`), and every
//! edited copy goes through `QueryHashes::from_image` and `Matcher::screen`, exactly what a
//! `Screen` request with image bytes runs after hashing.

use std::collections::HashMap;

use super::harness::{BankedPicture, ScreenHit, Screener};
use crate::hashing::ImageHashes;
use crate::matcher::{HashIndexes, Matcher, QueryHashes, ScreenOptions, entry_hashes};
use crate::store::{EntryId, NewBank, NewEntry, Store};

const BANK: &str = "eval";
const ACTOR: &str = "vigie-eval";

pub struct ServiceScreener {
    store: Store,
    indexes: HashIndexes,
    /// Store id -> index of the banked picture.
    entry_of: HashMap<EntryId, usize>,
}

impl ServiceScreener {
    pub fn new(banked: &[BankedPicture<'_>]) -> Result<ServiceScreener, String> {
        let store = Store::in_memory();
        store
            .create_bank(
                NewBank {
                    name: BANK.into(),
                    description: "vigie eval: the banked half of the corpus".into(),
                    ..NewBank::default()
                },
                ACTOR,
            )
            .map_err(|e| e.to_string())?;
        let entries: Vec<NewEntry> = banked
            .iter()
            .map(|b| NewEntry {
                external_id: b.name.to_string(),
                hashes: entry_hashes(b.hashes),
                label: String::new(),
                source: String::new(),
                note: String::new(),
                added_by: None,
                added_at: None,
                disabled_until: None,
            })
            .collect();
        let upserted = store
            .upsert_entries(BANK, entries, ACTOR)
            .map_err(|e| e.to_string())?;
        let indexes = HashIndexes::new();
        let mut entry_of = HashMap::new();
        // `upsert_entries` answers in input order.
        for (u, b) in upserted.iter().zip(banked) {
            indexes.insert(u.id, &u.hashes);
            entry_of.insert(u.id, b.entry);
        }
        Ok(ServiceScreener {
            store,
            indexes,
            entry_of,
        })
    }
}

impl Screener for ServiceScreener {
    fn screen(&self, hashes: &ImageHashes) -> Result<Vec<ScreenHit>, String> {
        let mut notes = Vec::new();
        let query = QueryHashes::from_image(hashes, &mut notes);
        let matcher = Matcher {
            store: &self.store,
            indexes: &self.indexes,
        };
        let outcome = matcher
            .screen(&query, &ScreenOptions::default())
            .map_err(|e| e.to_string())?;
        Ok(outcome
            .matches
            .iter()
            .filter(|m| !m.suppressed)
            .filter_map(|m| {
                Some(ScreenHit {
                    entry: *self.entry_of.get(&m.entry_id)?,
                    confidence: m.confidence,
                    distance: m.distance,
                    how: format!("{} {}", m.algorithm, m.transform.name()),
                })
            })
            .collect())
    }
}

/// For [`super::run`]: the service's matcher set up on the banked pictures.
pub fn make_service_screener(banked: &[BankedPicture<'_>]) -> Result<Box<dyn Screener>, String> {
    Ok(Box::new(ServiceScreener::new(banked)?))
}

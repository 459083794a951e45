//! The service's own decision as a [`Screener`]: the banked pictures become entries of one block
//! bank of a [`LiveBanks`] over an in-memory store, and every edited copy goes through
//! [`LiveBanks::screen_image_hashes`]: exactly what a `Screen` request with image bytes runs after
//! hashing (the harness hashes with the same `HashingSetup::screening`).

use std::collections::HashMap;
use std::sync::Arc;

use super::harness::{BankedPicture, ScreenHit, Screener};
use crate::hashing::{HashingSetup, ImageHashes};
use crate::matcher::{LiveBanks, MatchKind, ScreenOptions, entry_hashes};
use crate::store::{Applied, Change, EntryId, NewBank, NewEntry, Origin, Store};

const BANK: &str = "eval";
const ACTOR: &str = "vigie-eval";

/// The live banks of `vigie eval`: one block bank holding the banked half of the corpus.
pub struct ServiceScreener {
    banks: LiveBanks,
    /// Store id -> index of the banked picture.
    entry_of: HashMap<EntryId, usize>,
}

impl ServiceScreener {
    /// Banks `banked` (hashed with `HashingSetup::banking`) in a fresh in-memory store. Errors: a
    /// store refusal, as text.
    pub fn new(banked: &[BankedPicture<'_>]) -> Result<ServiceScreener, String> {
        let banks = LiveBanks::open(Arc::new(Store::in_memory()), HashingSetup::default())
            .map_err(|e| e.to_string())?;
        let origin = Origin::now(ACTOR);
        banks
            .apply(
                Change::CreateBank {
                    bank: NewBank {
                        name: BANK.into(),
                        description: "vigie eval: the banked half of the corpus".into(),
                        ..NewBank::default()
                    },
                },
                &origin,
            )
            .map_err(|e| e.to_string())?;
        let entries: Vec<NewEntry> = banked
            .iter()
            .map(|b| NewEntry {
                external_id: b.name.to_string(),
                hashes: entry_hashes(b.hashes),
                ..NewEntry::default()
            })
            .collect();
        let applied = banks
            .apply(
                Change::UpsertEntries {
                    bank: BANK.into(),
                    entries,
                },
                &origin,
            )
            .map_err(|e| e.to_string())?;
        let Applied::Upserted(upserted) = applied else {
            return Err("the bank did not take the entries".into());
        };
        // Upserts answer in input order.
        let entry_of = upserted
            .iter()
            .zip(banked)
            .map(|(u, b)| (u.id, b.entry))
            .collect();
        Ok(ServiceScreener { banks, entry_of })
    }
}

impl Screener for ServiceScreener {
    fn screen(&self, hashes: &ImageHashes) -> Result<Vec<ScreenHit>, String> {
        let outcome = self
            .banks
            .screen_image_hashes(hashes, &ScreenOptions::default())
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
                    how: format!("{} {}", m.algorithm, variant(m.how)),
                })
            })
            .collect())
    }
}

/// The lookup variant a match came through, as reports name it: the transform for a
/// whole-picture match (`original`, `rotate90`, `flip_horizontal`, ...), `content_box:<transform>`,
/// `crop_window`, `keypoints`, `frame:<index>`. Each variant is one more chance for an unrelated
/// picture: the matcher redesign of issue 17 reads the false matches by variant.
pub fn variant(how: MatchKind) -> String {
    match how {
        MatchKind::Whole(t) => t.name().to_string(),
        MatchKind::ContentBox(t) => format!("content_box:{}", t.name()),
        MatchKind::CropWindow => "crop_window".to_string(),
        MatchKind::Keypoints { .. } => "keypoints".to_string(),
        MatchKind::Frame(i) => format!("frame:{i}"),
    }
}

/// For [`super::run`]: the service's matcher set up on the banked pictures.
pub fn make_service_screener(banked: &[BankedPicture<'_>]) -> Result<Box<dyn Screener>, String> {
    Ok(Box::new(ServiceScreener::new(banked)?))
}

//! [`LiveBanks`]: the one core type every edge calls. It owns the store and the in-memory index of
//! every active entry, applies every bank change to both in one order, and screens uploads.
//!
//! Why one type: the index must hold exactly the active entries of the enabled banks in the
//! store. A change is written to the store (one atomic, synced batch) and then to the index, and
//! changes are serialised across both steps, so that index updates happen in exactly the order of
//! the store commits: with the index updated after the store's own write lock was released, three
//! writers to the same external ids left replaced hashes matching, and enabling a bank while
//! entries were added left entries out of the index until a restart. A call returns only after
//! both steps: every screen that starts after it sees the change.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::decision::{self, MatchError, ScreenOptions, ScreenOutcome};
use super::entry::{banking_warnings, entry_hashes};
use super::indexes::HashIndexes;
use super::query::QueryHashes;
use crate::hashing::{DecodeError, HashingSetup, ImageHasher, ImageHashes};
use crate::store::formats::{self, FormatError, ImportOptions, ImportSummary, LineError};
use crate::store::load::{self, BulkLoad, LoadStats};
use crate::store::{Applied, Change, EntryHashes, EntryId, Origin, Store, StoreError, Timestamp};

/// Why a screen of image bytes failed.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    /// The bytes are not a picture vigie can hash (empty, unsupported, corrupt, over a limit).
    #[error(transparent)]
    Image(#[from] DecodeError),
    /// The decision could not be made (an unknown bank, a store read failure).
    #[error(transparent)]
    Match(#[from] MatchError),
}

/// An uploaded picture, screened: its hashes (for the client; never stored) and the decision.
#[derive(Clone, Debug)]
pub struct ScreenedImage {
    /// Everything vigie computed of the upload.
    pub hashes: ImageHashes,
    /// The matches, with notes (hashes not looked up come first).
    pub outcome: ScreenOutcome,
}

/// A picture hashed for a bank: the entry's hashes and the warnings a curator should see (a
/// picture too featureless for PDQ to match, ...).
#[derive(Clone, Debug)]
pub struct BankedImage {
    /// What the entry keeps.
    pub hashes: EntryHashes,
    /// One sentence each.
    pub warnings: Vec<String>,
}

/// The banks and their live index: see the module doc. Share it behind an `Arc`; every method
/// takes `&self`.
pub struct LiveBanks {
    store: Arc<Store>,
    indexes: Arc<HashIndexes>,
    /// Held across a change's store commit and its index update (and across the start-up load),
    /// so index updates happen in commit order and a load never races a change.
    writer: Mutex<()>,
    setup: HashingSetup,
    screen_hasher: ImageHasher,
    bank_hasher: ImageHasher,
    loaded: AtomicBool,
}

impl LiveBanks {
    /// The banks of `store`, with an empty index: call [`LiveBanks::load`] before screening
    /// (screens before it find nothing). `setup` fixes how uploads and banked pictures are hashed.
    pub fn new(store: Arc<Store>, setup: HashingSetup) -> LiveBanks {
        LiveBanks {
            store,
            indexes: Arc::new(HashIndexes::new()),
            writer: Mutex::new(()),
            screen_hasher: setup.screening(),
            bank_hasher: setup.banking(),
            setup,
            loaded: AtomicBool::new(false),
        }
    }

    /// [`LiveBanks::new`] and [`LiveBanks::load`]. Errors: a store read failure.
    pub fn open(store: Arc<Store>, setup: HashingSetup) -> Result<LiveBanks, StoreError> {
        let banks = LiveBanks::new(store, setup);
        banks.load()?;
        Ok(banks)
    }

    /// The start-up load: every active entry of every enabled bank into the index, in one bulk
    /// build per index (several times faster and leaner than inserting hash by hash). Changes
    /// wait for it. Returns what was loaded; errors on a store read failure (the index is then
    /// left empty and [`LiveBanks::is_loaded`] stays false).
    pub fn load(&self) -> Result<LoadStats, StoreError> {
        let _writer = self.lock_writer()?;
        let mut bulk = BulkLoad::default();
        let stats = load::load_into(&self.store, Timestamp::now(), &mut bulk)?;
        self.indexes.extend_bulk(bulk);
        self.loaded.store(true, Ordering::Release);
        Ok(stats)
    }

    /// Whether [`LiveBanks::load`] has completed.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The store, for reads (listings, lookups, audit). Writes go through [`LiveBanks::apply`].
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The index, for its counts (metrics, stats).
    pub fn indexes(&self) -> &HashIndexes {
        &self.indexes
    }

    /// A handle on the index alone, for a task that reports its counts and must not keep the store
    /// open (the metrics endpoint: a restarted server must be able to open the store again).
    pub fn index_handle(&self) -> Arc<HashIndexes> {
        self.indexes.clone()
    }

    /// How uploads and banked pictures are hashed.
    pub fn setup(&self) -> &HashingSetup {
        &self.setup
    }

    /// The hasher a screen runs on uploads ([`HashingSetup::screening`]).
    pub fn screen_hasher(&self) -> &ImageHasher {
        &self.screen_hasher
    }

    /// Hashes an upload to screen with [`LiveBanks::screen_hasher`], leaving out what the banks
    /// cannot answer now (no keypoints found when no entry holds any, no trial turns when no
    /// entry holds crop windows: see `hashing::LocalLookups`). Errors: bytes vigie cannot hash.
    pub fn hash_upload(&self, bytes: &[u8]) -> Result<ImageHashes, DecodeError> {
        self.screen_hasher
            .hash_bytes_for(bytes, self.indexes.local_lookups())
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, ()>, StoreError> {
        // Nothing is left half-done under this lock (the store batch is atomic, index calls are
        // single updates), so a poisoned lock only means a panic elsewhere: carry on.
        Ok(self.writer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Applies one change: the store's atomic batch (actor and time from `origin`), then the
    /// index, in that order and serialised with every other change; returns after both. Errors:
    /// what the store refuses (see [`Store::apply`]); on error neither the store nor the index
    /// changed.
    pub fn apply(&self, change: Change, origin: &Origin) -> Result<Applied, StoreError> {
        self.apply_sequenced(change, origin, None)
    }

    /// [`LiveBanks::apply`] for a replica of a cluster: the store batch also records `seq`, the
    /// change's sequence in the cluster's change stream ([`Store::apply_at_sequence`]).
    pub fn apply_at_sequence(
        &self,
        change: Change,
        origin: &Origin,
        seq: u64,
    ) -> Result<Applied, StoreError> {
        self.apply_sequenced(change, origin, Some(seq))
    }

    fn apply_sequenced(
        &self,
        change: Change,
        origin: &Origin,
        seq: Option<u64>,
    ) -> Result<Applied, StoreError> {
        let _writer = self.lock_writer()?;
        let commit = |change: Change| match seq {
            Some(seq) => self.store.apply_at_sequence(change, origin, seq),
            None => self.store.apply(change, origin),
        };
        // The index holds active entries of enabled banks, judged at the real time (a replayed
        // change's own time may be long past).
        let now = Timestamp::now();
        let bank_enabled = |name: &str| -> Result<bool, StoreError> {
            Ok(self.store.get_bank(name)?.is_some_and(|b| b.enabled))
        };
        match change {
            Change::UpdateBank { ref name, .. } => {
                let was_enabled = bank_enabled(name)?;
                let name = name.clone();
                let applied = commit(change)?;
                if let Applied::Bank(bank) = &applied
                    && bank.enabled != was_enabled
                {
                    // Enabling or disabling a bank moves its active entries in or out.
                    self.store.for_each_entry(&name, None, None, &mut |e| {
                        if e.is_active(now) {
                            if bank.enabled {
                                self.indexes.insert(e.id, &e.hashes);
                            } else {
                                self.indexes.remove(e.id, &e.hashes);
                            }
                        }
                        Ok(true)
                    })?;
                }
                Ok(applied)
            }
            Change::UpsertEntries {
                ref bank,
                ref entries,
            } => {
                let enabled = bank_enabled(bank)?;
                let active: Vec<bool> = entries
                    .iter()
                    .map(|e| e.disabled_until.is_none_or(|t| t <= now))
                    .collect();
                let applied = commit(change)?;
                if enabled && let Applied::Upserted(upserted) = &applied {
                    // In input order: an external id repeated in the batch replaces its own
                    // earlier hashes, as in the store.
                    for (u, active) in upserted.iter().zip(active) {
                        if let Some(previous) = &u.previous {
                            self.indexes.remove(u.id, previous);
                        }
                        if active {
                            self.indexes.insert(u.id, &u.hashes);
                        }
                    }
                }
                Ok(applied)
            }
            Change::SetEntriesDisabled {
                ref bank, ref ids, ..
            } => {
                let enabled = bank_enabled(bank)?;
                let mut was_active = Vec::with_capacity(ids.len());
                for &id in ids {
                    was_active.push(self.store.get_entry(id)?.is_some_and(|e| e.is_active(now)));
                }
                let applied = commit(change)?;
                if enabled && let Applied::Disabled(changed) = &applied {
                    for (e, was) in changed.iter().zip(was_active) {
                        match (was, e.is_active(now)) {
                            (true, false) => self.indexes.remove(e.id, &e.hashes),
                            (false, true) => self.indexes.insert(e.id, &e.hashes),
                            _ => {}
                        }
                    }
                }
                Ok(applied)
            }
            _ => {
                let applied = commit(change)?;
                match &applied {
                    // Removing hashes an index does not hold (a disabled entry or bank) is a no-op.
                    Applied::BankDeleted(removed) => {
                        for (id, hashes) in removed {
                            self.indexes.remove(*id, hashes);
                        }
                    }
                    Applied::Removed(removed) => {
                        for e in removed {
                            self.indexes.remove(e.id, &e.hashes);
                        }
                    }
                    _ => {}
                }
                Ok(applied)
            }
        }
    }

    /// Imports a hash list into `bank` (see [`formats::import`] for the formats and counts): each
    /// batch is one [`Change::UpsertEntries`] through [`LiveBanks::apply`], live as soon as it is
    /// committed, and the outcome one [`Change::RecordImport`]. `on_bad_line` sees each bad line
    /// as it is met. Errors: an unknown bank, a bad line under `strict`, a read or store failure
    /// (batches committed before it stay).
    pub fn import(
        &self,
        bank: &str,
        reader: impl BufRead,
        options: &ImportOptions,
        origin: &Origin,
        on_bad_line: &mut dyn FnMut(&LineError),
    ) -> Result<ImportSummary, FormatError> {
        formats::import_with(
            &mut |change| self.apply(change, origin),
            self.store(),
            bank,
            reader,
            options,
            on_bad_line,
        )
    }

    /// Hashes a picture for a bank entry ([`HashingSetup::banking`]): the entry's hashes and the
    /// warnings a curator should see. Errors: the bytes are not a picture vigie can hash.
    pub fn hash_for_bank(&self, bytes: &[u8]) -> Result<BankedImage, DecodeError> {
        let h = self.bank_hasher.hash_bytes(bytes)?;
        Ok(BankedImage {
            warnings: banking_warnings(&h),
            hashes: entry_hashes(&h),
        })
    }

    /// Screens an uploaded picture: hashes it ([`HashingSetup::screening`]), plans the lookups and
    /// decides. The bytes are not kept. Errors: [`ScreenError::Image`] for bytes vigie cannot
    /// hash, [`ScreenError::Match`] for an unknown bank or a store read failure.
    pub fn screen_image(
        &self,
        bytes: &[u8],
        options: &ScreenOptions,
    ) -> Result<ScreenedImage, ScreenError> {
        let hashes = self.hash_upload(bytes)?;
        let outcome = self.screen_image_hashes(&hashes, options)?;
        Ok(ScreenedImage { hashes, outcome })
    }

    /// Screens an upload already hashed with [`LiveBanks::screen_hasher`] (what `vigie eval`
    /// does, hashing once for several screeners). The notes of hashes not looked up come first.
    pub fn screen_image_hashes(
        &self,
        hashes: &ImageHashes,
        options: &ScreenOptions,
    ) -> Result<ScreenOutcome, MatchError> {
        let mut notes = Vec::new();
        let query = QueryHashes::from_image(hashes, &mut notes);
        let mut outcome = self.screen_query(&query, options)?;
        outcome.notes.splice(0..0, notes);
        Ok(outcome)
    }

    /// Screens hashes a client computed (upright lookups only). Errors: an unknown bank, a store
    /// read failure.
    pub fn screen_hashes(
        &self,
        hashes: &EntryHashes,
        options: &ScreenOptions,
    ) -> Result<ScreenOutcome, MatchError> {
        self.screen_query(&QueryHashes::from_hashes(hashes), options)
    }

    /// Screens a planned query.
    pub fn screen_query(
        &self,
        query: &QueryHashes,
        options: &ScreenOptions,
    ) -> Result<ScreenOutcome, MatchError> {
        decision::screen(&self.store, &self.indexes, query, options)
    }

    /// Whether the index holds exactly what a fresh load of the store would: every active entry
    /// of every enabled bank with all its hashes, and nothing else. Returns the first difference
    /// found, as a sentence. Walks the whole store: for tests and operators' checks, not for the
    /// request path.
    pub fn check_index_against_store(&self) -> Result<Result<(), String>, StoreError> {
        let _writer = self.lock_writer()?;
        let fresh = HashIndexes::new();
        let mut bulk = BulkLoad::default();
        let mut entries: Vec<(EntryId, EntryHashes)> = Vec::new();
        load::load_into(&self.store, Timestamp::now(), &mut bulk)?;
        self.store
            .for_each_active_entry(Timestamp::now(), &mut |id, _, hashes| {
                entries.push((id, hashes.clone()));
                Ok(())
            })?;
        fresh.extend_bulk(bulk);
        if fresh.counts() != self.indexes.counts() {
            return Ok(Err(format!(
                "index holds {:?}, the store's active entries {:?}",
                self.indexes.counts(),
                fresh.counts()
            )));
        }
        if fresh.sub_picture_counts() != self.indexes.sub_picture_counts() {
            return Ok(Err(format!(
                "index holds {:?} windows and keypoints, the store's active entries {:?}",
                self.indexes.sub_picture_counts(),
                fresh.sub_picture_counts()
            )));
        }
        // Equal counts, and every stored hash found under its own id, make the multisets equal.
        for (id, hashes) in &entries {
            if !self.indexes.holds(*id, hashes) {
                return Ok(Err(format!("entry {id} is not fully indexed")));
            }
        }
        Ok(Ok(()))
    }
}

/// The screen decision on the in-memory backend (crop windows, allow banks, mirror + banner,
/// featureless pictures), and the index kept equal to the store under concurrent changes.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::Dihedral;
    use crate::matcher::MatchKind;
    use crate::store::{
        Algorithm, BankKind, BankUpdate, HashValue, NewBank, NewEntry, RocksOptions,
    };
    use image::imageops::FilterType;

    fn read_fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    /// PNG as it is; JPEG at quality 30 (a heavy recompression).
    fn encode(picture: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            image::ImageFormat::Jpeg => {
                let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 30);
                picture.to_rgb8().write_with_encoder(enc).expect("jpeg");
            }
            _ => picture
                .write_to(&mut std::io::Cursor::new(&mut out), format)
                .expect("encode"),
        }
        out
    }

    fn origin() -> Origin {
        Origin::now("tester")
    }

    fn live() -> LiveBanks {
        LiveBanks::open(Arc::new(Store::in_memory()), HashingSetup::default()).expect("open")
    }

    fn create_bank(banks: &LiveBanks, name: &str, kind: BankKind) {
        let bank = NewBank {
            name: name.into(),
            kind,
            ..NewBank::default()
        };
        banks
            .apply(Change::CreateBank { bank }, &origin())
            .expect("create bank");
    }

    fn upsert(
        banks: &LiveBanks,
        bank: &str,
        entries: Vec<NewEntry>,
    ) -> Vec<crate::store::Upserted> {
        let change = Change::UpsertEntries {
            bank: bank.into(),
            entries,
        };
        match banks.apply(change, &origin()).expect("upsert") {
            Applied::Upserted(u) => u,
            other => panic!("{other:?}"),
        }
    }

    /// Adds a picture as an entry, as `AddEntries` does; its id and the curator's warnings.
    fn add_image(
        banks: &LiveBanks,
        bank: &str,
        external_id: &str,
        bytes: &[u8],
    ) -> (EntryId, Vec<String>) {
        let banked = banks.hash_for_bank(bytes).expect("hash for bank");
        let entry = NewEntry {
            external_id: external_id.into(),
            hashes: banked.hashes,
            label: "trafficking".into(),
            ..NewEntry::default()
        };
        (upsert(banks, bank, vec![entry])[0].id, banked.warnings)
    }

    fn screen(banks: &LiveBanks, bytes: &[u8]) -> ScreenOutcome {
        banks
            .screen_image(bytes, &ScreenOptions::default())
            .expect("screen")
            .outcome
    }

    #[test]
    fn edited_copies_of_a_banked_picture_match_and_others_do_not() {
        let banks = live();
        create_bank(&banks, "ads", BankKind::Block);
        let bridge_bytes = read_fixture("bridge.jpg");
        let (id, warnings) = add_image(&banks, "ads", "case-17", &bridge_bytes);
        assert!(warnings.is_empty(), "{warnings:?}");
        let bridge = image::load_from_memory(&bridge_bytes).expect("decode");
        let edits: Vec<(&str, Vec<u8>, Dihedral)> = vec![
            ("same file", bridge_bytes.clone(), Dihedral::Original),
            (
                "jpeg q30",
                encode(&bridge, image::ImageFormat::Jpeg),
                Dihedral::Original,
            ),
            (
                "half size png",
                encode(
                    &bridge.resize(512, 288, FilterType::Triangle),
                    image::ImageFormat::Png,
                ),
                Dihedral::Original,
            ),
            (
                "mirrored",
                encode(&bridge.fliph(), image::ImageFormat::Png),
                Dihedral::FlipHorizontal,
            ),
            (
                "rotated 90",
                encode(&bridge.rotate90(), image::ImageFormat::Png),
                Dihedral::Rotate90,
            ),
            (
                "webp fixture",
                read_fixture("formats/lossy.webp"),
                Dihedral::Original,
            ),
        ];
        for (what, bytes, transform) in edits {
            let screened = banks
                .screen_image(&bytes, &ScreenOptions::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let r = screened.outcome;
            assert!(r.matched, "{what} should match");
            let m = &r.matches[0];
            assert_eq!(
                (m.bank.as_str(), m.entry_id, m.external_id.as_str()),
                ("ads", id, "case-17"),
                "{what}"
            );
            assert_eq!(m.label, "trafficking");
            assert!(
                m.confidence > 0.5 && m.confidence <= 1.0,
                "{what}: {}",
                m.confidence
            );
            assert!(m.distance <= 31, "{what}: {}", m.distance);
            if m.algorithm == Algorithm::Pdq {
                assert_eq!(m.transform(), transform, "{what}");
            }
            // The upload's own PDQ comes back for the client.
            assert!(
                screened.hashes.pdq.is_some_and(|p| p.quality == 100),
                "{what}"
            );
        }
        let unrelated = screen(&banks, &read_fixture("wine.jpg"));
        assert!(
            !unrelated.matched && unrelated.matches.is_empty(),
            "{:?}",
            unrelated.matches
        );
    }

    /// A featureless picture (PDQ quality under 50): flagged when it is added, and its PDQ does
    /// not match, with a note that says why; a picture with texture is neither.
    #[test]
    fn featureless_pictures_are_flagged_when_added_and_not_matched_by_pdq() {
        let banks = live();
        create_bank(&banks, "ads", BankKind::Block);
        // A very gentle gradient: a picture, but too flat for PDQ.
        let flat = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(400, 300, |x, _| {
            let v = 120 + (x / 100) as u8;
            image::Rgb([v, v, v])
        }));
        let (_, warnings) = add_image(
            &banks,
            "ads",
            "flat",
            &encode(&flat, image::ImageFormat::Png),
        );
        // One warning for PDQ, one for pHash/dHash (issue 15: they have a quality floor too).
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("PDQ quality"), "{warnings:?}");
        assert!(warnings[1].contains("pHash/dHash quality"), "{warnings:?}");
        // Screened again, recompressed (other bytes, so no exact-hash match): no perceptual
        // match, and notes.
        let answer = screen(&banks, &encode(&flat, image::ImageFormat::Jpeg));
        assert!(
            answer.matches.iter().all(|m| !matches!(
                m.algorithm,
                Algorithm::Pdq | Algorithm::Phash | Algorithm::Dhash
            )),
            "{:?}",
            answer.matches
        );
        assert!(
            answer.notes.iter().any(|n| n.contains("quality")),
            "{:?}",
            answer.notes
        );
        // A photo is added without a warning and screens without that note.
        let bridge = read_fixture("bridge.jpg");
        let (_, warnings) = add_image(&banks, "ads", "bridge", &bridge);
        assert!(warnings.is_empty(), "{warnings:?}");
        let answer = screen(&banks, &bridge);
        assert!(answer.matched);
        assert!(answer.matches.iter().any(|m| m.external_id == "bridge"));
        assert!(answer.notes.is_empty(), "{:?}", answer.notes);
    }

    /// An entry added as an image keeps PDQs of centred crops of it, so a cropped re-upload (10%
    /// off each side, recompressed) still meets it; one added as bare hashes has none and does
    /// not. The windows survive reopening the RocksDB store (stored in the entry record, reloaded
    /// into their own index).
    #[test]
    fn a_cropped_copy_matches_through_the_crop_windows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            let store = Store::open(dir.path(), &RocksOptions::default()).expect("open store");
            LiveBanks::open(Arc::new(store), HashingSetup::default()).expect("load")
        };
        let banks = open();
        create_bank(&banks, "ads", BankKind::Block);
        let wine = read_fixture("wine.jpg");
        add_image(&banks, "ads", "wine", &wine);
        let picture = image::load_from_memory(&wine).expect("decode");
        let (w, ht) = (picture.width(), picture.height());
        let cropped = picture.crop_imm(w / 10, ht / 10, w - 2 * (w / 10), ht - 2 * (ht / 10));
        let cropped = encode(&cropped, image::ImageFormat::Jpeg);
        let answer = screen(&banks, &cropped);
        assert!(answer.matched, "{answer:?}");
        let m = &answer.matches[0];
        assert_eq!(
            (m.external_id.as_str(), m.algorithm),
            ("wine", Algorithm::Pdq)
        );
        assert!(m.confidence > 0.5, "{m:?}");

        drop(banks);
        let banks = open();
        assert!(screen(&banks, &cropped).matched, "after reopening");

        // The same picture banked as bare hashes (no pixels, so no windows) is not found by the
        // crop.
        create_bank(&banks, "shared", BankKind::Block);
        let whole = banks
            .screen_image(&wine, &ScreenOptions::default())
            .expect("screen");
        let pdq = whole.hashes.pdq.expect("pdq").hash;
        let bare = NewEntry {
            external_id: "wine-hash".into(),
            hashes: EntryHashes {
                pdq: Some(pdq),
                ..EntryHashes::default()
            },
            ..NewEntry::default()
        };
        upsert(&banks, "shared", vec![bare]);
        let answer = screen(&banks, &cropped);
        assert!(
            answer.matches.iter().all(|m| m.external_id != "wine-hash"),
            "{answer:?}"
        );
    }

    /// Banks of bare hashes hold no keypoints and no crop windows: an upload is hashed without
    /// them (and its other hashes are those of a full hashing), and the first entry added from
    /// pixels brings both back for the next screen, which then finds an off-centre crop.
    #[test]
    fn uploads_are_hashed_for_what_the_banks_hold() {
        let banks = live();
        create_bank(&banks, "lists", BankKind::Block);
        upsert(&banks, "lists", vec![hash_entry("listed", 7)]);
        let wine = read_fixture("wine.jpg");
        let picture = image::load_from_memory(&wine).expect("decode");
        let (w, ht) = (picture.width(), picture.height());
        // Keeps 70% of each side from the top-left corner: neither centred windows nor the whole
        // hashes meet it, the keypoints do.
        let cropped = encode(
            &picture.crop_imm(0, 0, w * 7 / 10, ht * 7 / 10),
            image::ImageFormat::Png,
        );
        let full = banks
            .screen_hasher()
            .hash_bytes(&cropped)
            .expect("full hashing");
        assert!(!full.query_keypoints.is_empty());
        let hash_only = banks.hash_upload(&cropped).expect("hash upload");
        assert!(hash_only.query_keypoints.is_empty(), "no banked keypoints");
        assert!(
            hash_only.pdq_regions.iter().all(|r| !r.trial_turn),
            "no banked windows"
        );
        assert_eq!(
            (
                hash_only.pdq,
                hash_only.pdq_dihedral,
                hash_only.phash,
                hash_only.dhash
            ),
            (full.pdq, full.pdq_dihedral, full.phash, full.dhash)
        );
        assert_eq!(
            hash_only.pdq_regions,
            full.pdq_regions
                .iter()
                .filter(|r| !r.trial_turn)
                .cloned()
                .collect::<Vec<_>>()
        );
        assert!(!screen(&banks, &cropped).matched);

        create_bank(&banks, "ads", BankKind::Block);
        let (id, _) = add_image(&banks, "ads", "wine", &wine);
        let hashed = banks.hash_upload(&cropped).expect("hash upload");
        assert_eq!(hashed.query_keypoints, full.query_keypoints);
        assert_eq!(hashed.pdq_regions, full.pdq_regions);
        let answer = screen(&banks, &cropped);
        assert!(
            answer
                .matches
                .iter()
                .any(|m| m.entry_id == id && matches!(m.how, MatchKind::Keypoints { .. })),
            "{answer:?}"
        );
    }

    /// A bank entry made from a chat screenshot around a photo keeps the photo (issue 17, step
    /// 3): another photo in the same screenshot template matches nothing, although it shares the
    /// whole frame; the same screenshot recompressed and resized, and the bare photo, still match
    /// the entry.
    #[test]
    fn a_templated_entry_matches_its_photo_not_its_template() {
        let banks = live();
        create_bank(&banks, "ads", BankKind::Block);
        let bridge_bytes = read_fixture("bridge.jpg");
        let bridge = image::load_from_memory(&bridge_bytes).expect("decode");
        let wine = image::load_from_memory(&read_fixture("wine.jpg")).expect("decode");
        let chat = |p: &image::DynamicImage| {
            image::DynamicImage::ImageRgb8(crate::eval::templates::chat_dark(&p.to_rgb8()))
        };
        let banked = chat(&bridge);
        let (id, warnings) = add_image(
            &banks,
            "ads",
            "ad-1",
            &encode(&banked, image::ImageFormat::Png),
        );
        assert!(
            warnings.iter().any(|w| w.contains("template")),
            "{warnings:?}"
        );

        let other = screen(&banks, &encode(&chat(&wine), image::ImageFormat::Png));
        assert!(other.matches.is_empty(), "{other:?}");

        let (w, h) = (banked.width() * 4 / 5, banked.height() * 4 / 5);
        let repost = banked.resize_exact(w, h, image::imageops::FilterType::Triangle);
        for bytes in [
            encode(&repost, image::ImageFormat::Jpeg),
            bridge_bytes.clone(),
        ] {
            let answer = screen(&banks, &bytes);
            assert!(
                answer.matches.iter().any(|m| m.entry_id == id),
                "{answer:?}"
            );
        }
    }

    /// A mirrored copy with a phone-number banner across it: the banner moves PDQ (mirrored or
    /// not) out of reach, but the mirrored upload's dHash/pHash still meet the banked picture,
    /// reported as a mirror.
    #[test]
    fn a_mirrored_copy_with_a_banner_matches_through_the_mirrored_64_bit_hashes() {
        let banks = live();
        create_bank(&banks, "ads", BankKind::Block);
        let bridge = read_fixture("bridge.jpg");
        add_image(&banks, "ads", "bridge", &bridge);
        let mut edited = image::load_from_memory(&bridge)
            .expect("decode")
            .fliph()
            .to_rgb8();
        let (w, ht) = edited.dimensions();
        for y in ht * 62 / 100..ht * 78 / 100 {
            for x in 0..w {
                // A yellow band with dark "digits" every few pixels.
                let ink = (x / 6) % 3 == 0 && (y - ht * 62 / 100) % 10 < 6;
                edited.put_pixel(
                    x,
                    y,
                    image::Rgb(if ink { [20, 20, 20] } else { [250, 220, 0] }),
                );
            }
        }
        let answer = screen(
            &banks,
            &encode(
                &image::DynamicImage::ImageRgb8(edited),
                image::ImageFormat::Jpeg,
            ),
        );
        assert!(answer.matched, "{answer:?}");
        let m = &answer.matches[0];
        assert_eq!(m.external_id, "bridge");
        assert!(
            m.algorithm == Algorithm::Phash || m.algorithm == Algorithm::Dhash,
            "the banner should have kept PDQ out: {m:?}"
        );
        assert_eq!(m.transform(), Dihedral::FlipHorizontal);
    }

    #[test]
    fn allow_banks_cancel_block_matches_and_removed_entries_stop_matching() {
        let banks = live();
        create_bank(&banks, "ads", BankKind::Block);
        create_bank(&banks, "stock", BankKind::Allow);
        let wine = read_fixture("wine.jpg");
        let (id, _) = add_image(&banks, "ads", "w", &wine);
        assert!(screen(&banks, &wine).matched);
        add_image(&banks, "stock", "stock-photo-1", &wine);
        let r = screen(&banks, &wine);
        assert!(!r.matched, "an allow-bank match cancels the block match");
        assert!(r.matches.iter().any(|m| m.bank == "ads" && m.suppressed));
        assert!(
            r.matches
                .iter()
                .any(|m| m.bank == "stock" && m.bank_kind == BankKind::Allow)
        );
        assert!(r.notes.iter().any(|n| n.contains("allow")), "{:?}", r.notes);
        // Removing entries: no screen after the call sees them.
        let remove = |bank: &str, ids: Vec<EntryId>, external_ids: Vec<String>| {
            let change = Change::RemoveEntries {
                bank: bank.into(),
                ids,
                external_ids,
            };
            banks.apply(change, &origin()).expect("remove")
        };
        remove("stock", vec![], vec!["stock-photo-1".into()]);
        assert!(screen(&banks, &wine).matched);
        remove("ads", vec![id], vec![]);
        let r = screen(&banks, &wine);
        assert!(!r.matched && r.matches.is_empty());
        // A screen naming a bank that does not exist is refused.
        let options = ScreenOptions {
            banks: vec!["nope".into()],
            ..ScreenOptions::default()
        };
        assert!(matches!(
            banks.screen_image(&wine, &options),
            Err(ScreenError::Match(MatchError::UnknownBank(_)))
        ));
    }

    /// A hash entry whose PDQ is `seed`-derived (distinct per seed, far apart).
    fn hash_entry(external_id: &str, seed: u64) -> NewEntry {
        let mix = |k: u64| {
            let mut z = seed.wrapping_add(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^ (z >> 31)
        };
        NewEntry {
            external_id: external_id.into(),
            hashes: EntryHashes {
                pdq: Some(crate::bits::Bits([mix(1), mix(2), mix(3), mix(4)])),
                dhash: Some(crate::bits::Bits([mix(5)])),
                md5: Some(crate::bits::Bits([mix(6), mix(7)])),
                ..EntryHashes::default()
            },
            ..NewEntry::default()
        }
    }

    /// Three writers upserting the same external ids while a fourth enables and disables the bank
    /// and a fifth disables and removes entries: afterwards the index holds exactly what a fresh
    /// load of the store would (it drifted before changes were serialised across store and index:
    /// replaced hashes still matched, and entries added while the bank was toggled were missing).
    #[test]
    fn the_index_equals_the_store_after_concurrent_changes() {
        let banks = Arc::new(live());
        create_bank(&banks, "ads", BankKind::Block);
        create_bank(&banks, "other", BankKind::Block);
        let mut threads = Vec::new();
        for writer in 0..3u64 {
            let banks = banks.clone();
            threads.push(std::thread::spawn(move || {
                for round in 0..400u64 {
                    // The same ten external ids from every writer, with different hashes.
                    let entries = (0..10u64)
                        .map(|k| {
                            hash_entry(&format!("ad-{k}"), writer * 1_000_000 + round * 100 + k)
                        })
                        .collect();
                    let bank = if round % 7 == 0 { "other" } else { "ads" };
                    let change = Change::UpsertEntries {
                        bank: bank.into(),
                        entries,
                    };
                    banks.apply(change, &origin()).expect("upsert");
                }
            }));
        }
        {
            let banks = banks.clone();
            threads.push(std::thread::spawn(move || {
                for round in 0..200 {
                    let update = BankUpdate {
                        enabled: Some(round % 2 == 1),
                        ..BankUpdate::default()
                    };
                    let change = Change::UpdateBank {
                        name: "ads".into(),
                        update,
                    };
                    banks.apply(change, &origin()).expect("toggle");
                }
            }));
        }
        {
            let banks = banks.clone();
            threads.push(std::thread::spawn(move || {
                for round in 0..200u64 {
                    let Some(e) = banks
                        .store()
                        .find_entry("ads", &format!("ad-{}", round % 10))
                        .expect("find")
                    else {
                        continue;
                    };
                    let change = if round % 3 == 0 {
                        Change::RemoveEntries {
                            bank: "ads".into(),
                            ids: vec![e.id],
                            external_ids: vec![],
                        }
                    } else {
                        Change::SetEntriesDisabled {
                            bank: "ads".into(),
                            ids: vec![e.id],
                            until: (round % 3 == 1).then_some(Timestamp::MAX),
                        }
                    };
                    // A concurrent removal may have taken the entry first.
                    let _ = banks.apply(change, &origin());
                }
            }));
        }
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(banks.check_index_against_store().expect("check"), Ok(()));
        // And it is the index screens use: every live entry's PDQ finds exactly that entry.
        banks
            .store()
            .for_each_active_entry(Timestamp::now(), &mut |id, _, hashes| {
                let outcome = banks
                    .screen_hashes(hashes, &ScreenOptions::default())
                    .expect("screen");
                assert!(
                    outcome.matches.iter().any(|m| m.entry_id == id),
                    "entry {id} not found"
                );
                Ok(())
            })
            .expect("walk");
    }

    #[test]
    fn replayed_changes_leave_the_index_equal_to_the_store() {
        let banks = live();
        let at = Origin {
            actor: "replica".into(),
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
                entries: vec![hash_entry("a", 1), hash_entry("b", 2)],
            },
            Change::UpsertEntries {
                bank: "ads".into(),
                entries: vec![ad_with_photos("a", 3)],
            },
            Change::RemoveEntries {
                bank: "ads".into(),
                ids: vec![],
                external_ids: vec!["b".into()],
            },
        ];
        for _ in 0..2 {
            for c in &changes {
                // As a replica gets it: through the change's JSON form.
                let json = serde_json::to_string(c).expect("serialise");
                let c: Change = serde_json::from_str(&json).expect("deserialise");
                let _ = banks.apply(c, &at);
            }
            assert_eq!(banks.check_index_against_store().expect("check"), Ok(()));
        }
        let entries = banks
            .store()
            .list_entries("ads", None, None, 10)
            .expect("list");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].hashes, ad_with_photos("a", 3).hashes);
        // Every photo of the ad is searchable after the replay, and names the ad.
        for photo in ad_with_photos("a", 3).hashes.iter() {
            let mut query = EntryHashes::default();
            query.set(photo);
            let outcome = banks
                .screen_hashes(&query, &ScreenOptions::default())
                .expect("screen");
            assert_eq!(outcome.matches.len(), 1, "{photo:?}");
            assert_eq!(outcome.matches[0].external_id, "a");
        }
    }

    /// An ad with several photos (schema 5): [`hash_entry`]'s hashes and two more PDQs and a
    /// dHash of other pictures.
    fn ad_with_photos(external_id: &str, seed: u64) -> NewEntry {
        let mut ad = hash_entry(external_id, seed);
        for other in [seed + 100, seed + 200] {
            let photo = hash_entry(external_id, other).hashes;
            for h in [
                photo.pdq.map(HashValue::Pdq),
                photo.dhash.map(HashValue::Dhash),
            ]
            .into_iter()
            .flatten()
            .take(if other == seed + 100 { 2 } else { 1 })
            {
                ad.hashes.add(h).expect("add");
            }
        }
        assert_eq!(ad.hashes.more.len(), 3);
        ad
    }
}

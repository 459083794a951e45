//! Where hashes, the index and the banks meet: an upload's hashes in, matching bank entries out,
//! each with its distance and a confidence.
//!
//! [`HashIndexes`] holds every active entry's hashes in memory: one exact Hamming index per
//! perceptual algorithm (multi-index hashing, see `crate::index`) and a hash map per exact
//! algorithm. It only knows entry ids; what an entry is (bank, external id, label) is read from the
//! store for the few candidates a query finds, so memory stays at the index's cost per hash.
//!
//! A write reaches the indexes after the store acknowledged it and before the API call returns,
//! so every screen that starts after an `AddEntries` returned sees the new entries.

pub mod calibration;
pub mod confidence;

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use crate::bits::{Bits, Hash64, Hash256};
use crate::hashing::keypoints::{self, Keypoint, PointPair, UploadKeypoints};
use crate::hashing::perceptual64::{GRID_TRANSFORMS, PHASH_TRANSFORMS};
use crate::hashing::{Dihedral, ImageHashes};
use crate::index::HammingIndex;
use crate::store::load::BulkLoad;
use crate::store::{
    Algorithm, Bank, BankKind, Entry, EntryHashes, EntryId, EntryKeypoints, HashValue, Store,
    StoreError, Timestamp,
};

/// The transforms a content box is looked up under: upright and mirrored. Each lookup is a search
/// of the whole PDQ index (about 12% of a screen's CPU went to lookups with all eight per box).
const REGION_TRANSFORMS: [Dihedral; 2] = [Dihedral::Original, Dihedral::FlipHorizontal];

/// PDQ hashes of quality below this are too featureless to match on (Meta's recommendation).
pub const MIN_PDQ_QUALITY: u8 = 50;

type Md5 = Bits<2>;

/// The hashes a bank entry made from a picture holds: the displayed picture's PDQ, pHash, dHash
/// and the exact hashes (what `AddEntries` stores for an image, and `vigie eval` banks).
pub fn entry_hashes(h: &ImageHashes) -> EntryHashes {
    let mut hashes = EntryHashes {
        pdq: h.pdq.map(|p| p.hash),
        phash: h.phash,
        dhash: h.dhash,
        md5: h.md5,
        sha256: h.sha256,
        ..EntryHashes::default()
    };
    // Crop windows (when the hasher made them) of good quality only: a featureless crop would
    // match too much.
    hashes.set_windows(
        h.pdq_windows
            .iter()
            .filter(|p| p.quality >= MIN_PDQ_QUALITY)
            .map(|p| p.hash),
    );
    hashes.keypoints = EntryKeypoints::new(h.bank_keypoints.iter().copied());
    hashes
}

/// A keypoint's id in the keypoint index: the entry id, then the point's scale (2 bits) and
/// position (8 + 8), so a hit says where the banked point is without a second lookup. `None` past
/// 2^46 entry ids (never reached: ids count up from 1).
fn keypoint_id(entry: EntryId, p: &Keypoint) -> Option<u64> {
    (entry < 1 << 46 && p.scale < 4)
        .then(|| entry << 18 | u64::from(p.scale) << 16 | u64::from(p.x) << 8 | u64::from(p.y))
}

fn split_keypoint_id(id: u64) -> (EntryId, Keypoint) {
    let point = Keypoint {
        x: (id >> 8) as u8,
        y: id as u8,
        scale: (id >> 16 & 3) as u8,
        descriptor: Bits([0]),
    };
    (id >> 18, point)
}

/// The 64-bit hashes of an upload's grid transforms, each filed under its inverse (the transform
/// from the banked picture to the upload).
fn turned_64<const N: usize>(
    hashes: Option<[Hash64; N]>,
    transforms: [Dihedral; N],
) -> Vec<(Dihedral, Hash64)> {
    hashes
        .map(|hs| transforms.iter().map(|t| t.inverse()).zip(hs).collect())
        .unwrap_or_default()
}

/// The distance a candidate must be within, from its bank's limit for the algorithm. A mirrored,
/// turned or content-box pHash/dHash lookup is another chance for an unrelated picture to land within a
/// 64-bit hash's radius, so it is held one bit tighter: on `vigie eval` the only false match the
/// mirrored lookups brought at the bank's 8 bits was an unrelated mirrored dHash at exactly 8.
fn distance_limit(c: &Candidate, bank_limit: u32) -> u32 {
    // A keypoint match was held to its vote threshold; a bank's limits are Hamming distances of
    // hashes and do not apply to it.
    if c.keypoints > 0 {
        return u32::MAX;
    }
    let extra_64 = (c.transform != Dihedral::Original || c.region)
        && matches!(c.algorithm, Algorithm::Phash | Algorithm::Dhash);
    if extra_64 {
        bank_limit.saturating_sub(1)
    } else {
        bank_limit
    }
}

/// The keypoint descriptors' index, planned for their search radius rather than the 64-bit
/// hashes' (on `vigie eval`'s bank of 81 pictures: 0.83 -> 0.70 ms of lookups a screen, measured
/// before the texture rule made lookups rarer).
struct KeypointIndex(HammingIndex<1>);

impl Default for KeypointIndex {
    fn default() -> Self {
        Self(HammingIndex::with_design_radius(
            keypoints::DESCRIPTOR_RADIUS,
        ))
    }
}

impl std::ops::Deref for KeypointIndex {
    type Target = HammingIndex<1>;
    fn deref(&self) -> &HammingIndex<1> {
        &self.0
    }
}

/// Every active entry's hashes, searchable.
#[derive(Default)]
pub struct HashIndexes {
    pdq: HammingIndex<4>,
    /// Crop-window PDQs of entries added as images: searched only with the upload's upright
    /// whole-picture hashes (a cropped re-upload of the banked picture), so they cost one or two
    /// lookups per screen, not one per transform and content box.
    pdq_windows: HammingIndex<4>,
    phash: HammingIndex<1>,
    dhash: HammingIndex<1>,
    /// Keypoint descriptors of entries added as images (at each banked scale), under
    /// [`keypoint_id`]: searched with the upload's points, for crops no window covers.
    keypoints: KeypointIndex,
    md5: RwLock<HashMap<Md5, Vec<EntryId>>>,
    sha256: RwLock<HashMap<Hash256, Vec<EntryId>>>,
}

/// A PDQ index, the hashes to search it with, and whether its hits are sub-rectangle matches.
type PdqLookup<'a> = (&'a HammingIndex<4>, Vec<&'a (Dihedral, Hash256)>, bool);

/// One index hit before the store is consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: EntryId,
    pub algorithm: Algorithm,
    pub distance: u32,
    /// How the upload relates to the banked picture: upload = transform(banked picture)
    /// (`Original` for none).
    pub transform: Dihedral,
    /// Matched through a content box of the upload (borders trimmed, screenshot photo).
    pub region: bool,
    /// For a keypoint match, the upload points that agreed on one displacement (the `distance`
    /// is then [`keypoints::votes_distance`] of it); 0 for a hash match.
    pub keypoints: u32,
}

/// What to look up for one upload.
#[derive(Clone, Debug, Default)]
pub struct QueryHashes {
    /// PDQ hashes with the transform each stands for: the displayed picture first, then its
    /// dihedral variants, and Meta's-rule hash when it differs. The hash of `t(upload)` meets the
    /// banked picture when `upload = t⁻¹(banked)`, so each is filed under `t⁻¹`: the transform that
    /// turns the banked picture into the upload, as a trust team reads it ("rotated 90 degrees").
    pub pdq: Vec<(Dihedral, Hash256)>,
    /// PDQ of the upload's content boxes (see `hashing::regions`), each with its transforms.
    pub pdq_regions: Vec<(Dihedral, Hash256)>,
    /// PDQ of the upload turned back by each trial turn: searched in the crop windows only.
    pub pdq_trial_turns: Vec<Hash256>,
    pub phash: Option<Hash64>,
    pub dhash: Option<Hash64>,
    /// pHash and dHash of the upload under the grid transforms, each filed under the transform
    /// that turns the banked picture into the upload.
    pub phash_turned: Vec<(Dihedral, Hash64)>,
    pub dhash_turned: Vec<(Dihedral, Hash64)>,
    /// pHash and dHash of the upload's content boxes (upright).
    pub phash_regions: Vec<Hash64>,
    pub dhash_regions: Vec<Hash64>,
    pub md5: Option<Md5>,
    pub sha256: Option<Hash256>,
    /// The upload's point sets (today one: of the whole picture).
    pub keypoints: Vec<UploadKeypoints>,
    /// The frames of an animated upload besides its default image (see `ImageHashes::frames`).
    pub frames: Vec<FrameQuery>,
}

/// What to look up for one frame of an animation: its hashes, upright, against the whole
/// pictures' indexes. A match through it says which frame ([`MatchInfo::frame`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameQuery {
    /// The frame's place in the animation, from 0.
    pub index: u32,
    /// Left out below [`MIN_PDQ_QUALITY`], as the whole picture's.
    pub pdq: Option<Hash256>,
    pub phash: Option<Hash64>,
    pub dhash: Option<Hash64>,
}

fn lock_poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    // A panic while holding these locks cannot leave a map half-updated (single insert/remove
    // calls), so the data behind a poisoned lock is still consistent.
    e.into_inner()
}

impl HashIndexes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry's hashes.
    pub fn insert(&self, id: EntryId, hashes: &EntryHashes) {
        for value in hashes.iter() {
            self.insert_value(id, value);
        }
        for w in hashes.windows() {
            if let Err(e) = self.pdq_windows.insert(w, id) {
                tracing::error!(entry = id, error = %e, "crop window not indexed");
            }
        }
        for p in hashes.keypoints.as_slice() {
            let Some(kid) = keypoint_id(id, p) else {
                tracing::error!(entry = id, "entry id too large for the keypoint index");
                break;
            };
            if let Err(e) = self.keypoints.insert(p.descriptor, kid) {
                tracing::error!(entry = id, error = %e, "keypoint not indexed");
            }
        }
    }

    fn insert_value(&self, id: EntryId, value: HashValue) {
        // The index refuses only past u32::MAX slots; the store cannot hold that many live entries
        // on one machine, so a refusal is logged rather than surfaced.
        let result = match value {
            HashValue::Pdq(h) => self.pdq.insert(h, id),
            HashValue::Phash(h) => self.phash.insert(h, id),
            HashValue::Dhash(h) => self.dhash.insert(h, id),
            HashValue::Md5(h) => {
                self.md5
                    .write()
                    .unwrap_or_else(lock_poisoned)
                    .entry(h)
                    .or_default()
                    .push(id);
                Ok(())
            }
            HashValue::Sha256(h) => {
                self.sha256
                    .write()
                    .unwrap_or_else(lock_poisoned)
                    .entry(h)
                    .or_default()
                    .push(id);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(entry = id, error = %e, "hash not indexed");
        }
    }

    /// Removes an entry's hashes (those it was inserted with).
    pub fn remove(&self, id: EntryId, hashes: &EntryHashes) {
        for value in hashes.iter() {
            match value {
                HashValue::Pdq(h) => {
                    self.pdq.remove(&h, id);
                }
                HashValue::Phash(h) => {
                    self.phash.remove(&h, id);
                }
                HashValue::Dhash(h) => {
                    self.dhash.remove(&h, id);
                }
                HashValue::Md5(h) => remove_exact(&self.md5, &h, id),
                HashValue::Sha256(h) => remove_exact(&self.sha256, &h, id),
            }
        }
        for w in hashes.windows() {
            self.pdq_windows.remove(&w, id);
        }
        for p in hashes.keypoints.as_slice() {
            if let Some(kid) = keypoint_id(id, p) {
                self.keypoints.remove(&p.descriptor, kid);
            }
        }
    }

    /// Records in `best` each entry whose banked points, at any banked scale, agree with at least
    /// [`keypoints::MIN_VOTES`] of the upload's on one displacement, with its best vote.
    fn keypoint_matches(&self, upload: &UploadKeypoints, best: &mut HashMap<EntryId, u32>) {
        // The pairs of each (entry, banked scale): displacements of different scales are in
        // different frames and must not vote together.
        // The id's high bits are the entry and the scale (see `keypoint_id`): sorted by them,
        // each group is one (entry, scale), without hashing every pair into a map.
        let mut found: Vec<(u64, PointPair)> = Vec::new();
        for (qi, q) in upload.points.iter().enumerate() {
            for (kid, _) in self
                .keypoints
                .search(&q.descriptor, keypoints::DESCRIPTOR_RADIUS)
            {
                let (_, banked) = split_keypoint_id(kid);
                found.push((kid >> 16, PointPair::new(qi, q, &banked)));
            }
        }
        found.sort_unstable_by_key(|(group, _)| *group);
        let mut pairs: Vec<PointPair> = Vec::new();
        for group in found.chunk_by(|a, b| a.0 == b.0) {
            // Fewer pairs than votes needed cannot make a match: skip the vote.
            if group.len() < keypoints::MIN_VOTES as usize {
                continue;
            }
            pairs.clear();
            pairs.extend(group.iter().map(|(_, p)| *p));
            let votes = keypoints::best_vote(&pairs, upload);
            if votes >= keypoints::MIN_VOTES {
                let b = best.entry(group[0].0 >> 2).or_default();
                *b = (*b).max(votes);
            }
        }
    }

    /// Hashes held, per algorithm.
    pub fn counts(&self) -> BTreeMap<Algorithm, u64> {
        fn exact<K>(m: &RwLock<HashMap<K, Vec<EntryId>>>) -> u64 {
            m.read()
                .unwrap_or_else(lock_poisoned)
                .values()
                .map(|v| v.len() as u64)
                .sum()
        }
        BTreeMap::from([
            (Algorithm::Pdq, self.pdq.len() as u64),
            (Algorithm::Phash, self.phash.len() as u64),
            (Algorithm::Dhash, self.dhash.len() as u64),
            (Algorithm::Md5, exact(&self.md5)),
            (Algorithm::Sha256, exact(&self.sha256)),
        ])
    }

    /// Every indexed hash within `radius(algorithm)` of a query hash. `radius` returns `None` for
    /// algorithms not to search.
    pub fn candidates(
        &self,
        query: &QueryHashes,
        radius: impl Fn(Algorithm) -> Option<u32>,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        if let Some(r) = radius(Algorithm::Pdq) {
            let turned_back: Vec<(Dihedral, Hash256)> = query
                .pdq_trial_turns
                .iter()
                .map(|h| (Dihedral::Original, *h))
                .collect();
            let upright = query
                .pdq
                .iter()
                .chain(&query.pdq_regions)
                .filter(|(t, _)| *t == Dihedral::Original)
                .chain(&turned_back);
            // (index, hashes, whether a hit is a sub-rectangle match): the whole upload under every
            // transform; its content boxes; and, as a crop of a banked picture (or a content box
            // that swallowed the banked picture's margins), its upright hashes, whole and of the
            // content boxes, against the banked windows.
            let lookups: [PdqLookup<'_>; 3] = [
                (&self.pdq, query.pdq.iter().collect(), false),
                (&self.pdq, query.pdq_regions.iter().collect(), true),
                (&self.pdq_windows, upright.collect(), true),
            ];
            for (index, hashes, region) in lookups {
                for (transform, h) in hashes {
                    for (id, distance) in index.search(h, r) {
                        out.push(Candidate {
                            id,
                            algorithm: Algorithm::Pdq,
                            distance,
                            transform: *transform,
                            region,
                            keypoints: 0,
                        });
                    }
                }
            }
            // Keypoints stand in for PDQ where a crop defeats it: searched whenever PDQ is.
            let mut by_points: HashMap<EntryId, u32> = HashMap::new();
            if !self.keypoints.is_empty() {
                for upload in &query.keypoints {
                    self.keypoint_matches(upload, &mut by_points);
                }
            }
            for (id, votes) in by_points {
                out.push(Candidate {
                    id,
                    algorithm: Algorithm::Pdq,
                    distance: keypoints::votes_distance(votes),
                    transform: Dihedral::Original,
                    region: true,
                    keypoints: votes,
                });
            }
        }
        let upright = |h: Option<Hash64>| h.map(|h| (Dihedral::Original, h));
        for (algorithm, index, hashes) in [
            (
                Algorithm::Phash,
                &self.phash,
                upright(query.phash).iter().chain(&query.phash_turned),
            ),
            (
                Algorithm::Dhash,
                &self.dhash,
                upright(query.dhash).iter().chain(&query.dhash_turned),
            ),
        ] {
            let Some(r) = radius(algorithm) else { continue };
            for (transform, h) in hashes {
                for (id, distance) in index.search(h, r) {
                    out.push(Candidate {
                        id,
                        algorithm,
                        distance,
                        transform: *transform,
                        region: false,
                        keypoints: 0,
                    });
                }
            }
        }
        for (algorithm, index, hashes) in [
            (Algorithm::Phash, &self.phash, &query.phash_regions),
            (Algorithm::Dhash, &self.dhash, &query.dhash_regions),
        ] {
            let Some(r) = radius(algorithm) else { continue };
            for h in hashes {
                for (id, distance) in index.search(h, r) {
                    out.push(Candidate {
                        id,
                        algorithm,
                        distance,
                        transform: Dihedral::Original,
                        region: true,
                        keypoints: 0,
                    });
                }
            }
        }
        if let (Some(_), Some(h)) = (radius(Algorithm::Md5), query.md5) {
            for &id in self
                .md5
                .read()
                .unwrap_or_else(lock_poisoned)
                .get(&h)
                .into_iter()
                .flatten()
            {
                out.push(Candidate {
                    id,
                    algorithm: Algorithm::Md5,
                    distance: 0,
                    transform: Dihedral::Original,
                    region: false,
                    keypoints: 0,
                });
            }
        }
        if let (Some(_), Some(h)) = (radius(Algorithm::Sha256), query.sha256) {
            for &id in self
                .sha256
                .read()
                .unwrap_or_else(lock_poisoned)
                .get(&h)
                .into_iter()
                .flatten()
            {
                out.push(Candidate {
                    id,
                    algorithm: Algorithm::Sha256,
                    distance: 0,
                    transform: Dihedral::Original,
                    region: false,
                    keypoints: 0,
                });
            }
        }
        out
    }
}

impl HashIndexes {
    /// The candidates of an animation's frames ([`QueryHashes::frames`]), each with its frame's
    /// index: every frame's PDQ, pHash and dHash against the whole pictures' indexes, upright.
    pub fn frame_candidates(
        &self,
        query: &QueryHashes,
        radius: impl Fn(Algorithm) -> Option<u32>,
    ) -> Vec<(u32, Candidate)> {
        let candidate = |id, algorithm, distance| Candidate {
            id,
            algorithm,
            distance,
            transform: Dihedral::Original,
            region: false,
            keypoints: 0,
        };
        let mut out = Vec::new();
        for f in &query.frames {
            if let (Some(r), Some(h)) = (radius(Algorithm::Pdq), f.pdq) {
                for (id, d) in self.pdq.search(&h, r) {
                    out.push((f.index, candidate(id, Algorithm::Pdq, d)));
                }
            }
            for (algorithm, index, hash) in [
                (Algorithm::Phash, &self.phash, f.phash),
                (Algorithm::Dhash, &self.dhash, f.dhash),
            ] {
                if let (Some(r), Some(h)) = (radius(algorithm), hash) {
                    for (id, d) in index.search(&h, r) {
                        out.push((f.index, candidate(id, algorithm, d)));
                    }
                }
            }
        }
        out
    }
}

fn remove_exact<K: std::hash::Hash + Eq>(
    map: &RwLock<HashMap<K, Vec<EntryId>>>,
    key: &K,
    id: EntryId,
) {
    let mut map = map.write().unwrap_or_else(lock_poisoned);
    if let Some(ids) = map.get_mut(key) {
        if let Some(pos) = ids.iter().position(|x| *x == id) {
            ids.swap_remove(pos);
        }
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

impl HashIndexes {
    /// Adds a whole start-up load: one bulk build per index, which is several times faster and
    /// leaner than inserting hash by hash.
    pub fn extend_bulk(&self, bulk: BulkLoad) {
        for (name, result) in [
            ("pdq", self.pdq.extend(bulk.pdq)),
            ("pdq_windows", self.pdq_windows.extend(bulk.pdq_windows)),
            ("phash", self.phash.extend(bulk.phash)),
            ("dhash", self.dhash.extend(bulk.dhash)),
            (
                "keypoints",
                self.keypoints.extend(
                    bulk.keypoints
                        .iter()
                        .filter_map(|(p, id)| Some((p.descriptor, keypoint_id(*id, p)?))),
                ),
            ),
        ] {
            if let Err(e) = result {
                tracing::error!(algorithm = name, error = %e, "hashes not indexed");
            }
        }
        let mut md5 = self.md5.write().unwrap_or_else(lock_poisoned);
        for (h, id) in bulk.md5 {
            md5.entry(h).or_default().push(id);
        }
        let mut sha256 = self.sha256.write().unwrap_or_else(lock_poisoned);
        for (h, id) in bulk.sha256 {
            sha256.entry(h).or_default().push(id);
        }
    }
}

impl QueryHashes {
    /// The lookups for an uploaded image's hashes. PDQ of quality below [`MIN_PDQ_QUALITY`] is left
    /// out (and said so in `notes`); the hasher's warnings (a file cut short or damaged, frames
    /// left unscreened) are passed on to `notes`.
    pub fn from_image(h: &ImageHashes, notes: &mut Vec<String>) -> QueryHashes {
        notes.extend(h.warnings.iter().cloned());
        let mut q = QueryHashes {
            phash: h.phash,
            dhash: h.dhash,
            phash_turned: turned_64(h.phash_turned, PHASH_TRANSFORMS),
            dhash_turned: turned_64(h.dhash_turned, GRID_TRANSFORMS),
            phash_regions: h.pdq_regions.iter().filter_map(|r| r.phash).collect(),
            dhash_regions: h.pdq_regions.iter().filter_map(|r| r.dhash).collect(),
            md5: h.md5,
            sha256: h.sha256,
            keypoints: h.query_keypoints.clone(),
            pdq: Vec::new(),
            pdq_regions: Vec::new(),
            pdq_trial_turns: Vec::new(),
            frames: h
                .frames
                .iter()
                .map(|f| FrameQuery {
                    index: f.index,
                    pdq: f
                        .pdq
                        .filter(|p| p.quality >= MIN_PDQ_QUALITY)
                        .map(|p| p.hash),
                    phash: f.phash,
                    dhash: f.dhash,
                })
                .collect(),
        };
        if let Some(pdq) = h.pdq {
            if pdq.quality < MIN_PDQ_QUALITY {
                notes.push(format!(
                    "PDQ not matched: quality {} is below {MIN_PDQ_QUALITY} (the picture is too featureless)",
                    pdq.quality
                ));
            } else {
                match h.pdq_dihedral {
                    Some(all) => q.pdq.extend(
                        Dihedral::ALL
                            .iter()
                            .map(|t| t.inverse())
                            .zip(all.iter().map(|p| p.hash)),
                    ),
                    None => q.pdq.push((Dihedral::Original, pdq.hash)),
                }
                if let Some(meta) = h.pdq_meta {
                    // Meta's rule sees the stored pixels: a list from another platform holds this hash.
                    q.pdq.push((Dihedral::Original, meta.hash));
                }
            }
        }
        // A picture featureless as displayed whose stored pixels are not (an alpha channel that
        // hides them): the stored pixels are screened all the same.
        if let (Some(shown), Some(meta)) = (h.pdq, h.pdq_meta) {
            if shown.quality < MIN_PDQ_QUALITY && meta.quality >= MIN_PDQ_QUALITY {
                notes.push(format!(
                    "the picture as displayed is featureless but its stored pixels are not (quality {}): those were screened",
                    meta.quality
                ));
                q.pdq.push((Dihedral::Original, meta.hash));
            }
        }
        // Content boxes (trimmed borders, the photo in a screenshot) are looked up on their own
        // quality: a framed picture whose frame dragged the whole hash's quality down still counts.
        for region in h
            .pdq_regions
            .iter()
            .filter(|r| r.pdq.quality >= MIN_PDQ_QUALITY)
        {
            if region.trial_turn {
                q.pdq_trial_turns.push(region.pdq.hash);
                continue;
            }
            match region.dihedral {
                Some(all) => q.pdq_regions.extend(
                    Dihedral::ALL
                        .iter()
                        .map(|t| t.inverse())
                        .zip(all.iter().map(|p| p.hash))
                        .filter(|(t, _)| REGION_TRANSFORMS.contains(t)),
                ),
                None => q.pdq_regions.push((Dihedral::Original, region.pdq.hash)),
            }
        }
        q
    }

    /// The lookups for hashes the client computed (no quality is known for them).
    pub fn from_hashes(hashes: &EntryHashes) -> QueryHashes {
        QueryHashes {
            pdq: hashes
                .pdq
                .map(|h| vec![(Dihedral::Original, h)])
                .unwrap_or_default(),
            pdq_regions: Vec::new(),
            pdq_trial_turns: Vec::new(),
            phash: hashes.phash,
            dhash: hashes.dhash,
            phash_turned: Vec::new(),
            dhash_turned: Vec::new(),
            phash_regions: Vec::new(),
            dhash_regions: Vec::new(),
            md5: hashes.md5,
            sha256: hashes.sha256,
            keypoints: Vec::new(),
            frames: Vec::new(),
        }
    }
}

/// Which banks a screen looks at, and how strictly.
#[derive(Clone, Debug, Default)]
pub struct ScreenOptions {
    /// Bank names; empty means every enabled bank.
    pub banks: Vec<String>,
    /// Tightens every bank's maximum distance.
    pub max_distance: Option<u32>,
}

/// One matching entry, as reported to the screening client (no hashes).
#[derive(Clone, Debug, PartialEq)]
pub struct MatchInfo {
    pub bank: String,
    pub bank_kind: BankKind,
    pub entry_id: EntryId,
    pub external_id: String,
    pub label: String,
    pub algorithm: Algorithm,
    pub distance: u32,
    pub confidence: f64,
    pub transform: Dihedral,
    /// A block match cancelled by an allow-bank match of the same picture.
    pub suppressed: bool,
    /// For a match by keypoints (a crop no hash could follow), the upload points that agreed;
    /// `distance` is then the points of 64 that did not. 0 for a hash match.
    pub keypoints: u32,
    /// `None` when the upload's picture matched; for an animation, the place (from 0) of the
    /// frame that matched when its default image did not match as well.
    pub frame: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScreenOutcome {
    /// Best first.
    pub matches: Vec<MatchInfo>,
    /// At least one block match stands.
    pub matched: bool,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("no bank named {0:?}")]
    UnknownBank(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Screens hashes against the banks: the index finds candidates, the store says what they are.
pub struct Matcher<'a> {
    pub store: &'a Store,
    pub indexes: &'a HashIndexes,
}

impl Matcher<'_> {
    pub fn screen(
        &self,
        query: &QueryHashes,
        options: &ScreenOptions,
    ) -> Result<ScreenOutcome, MatchError> {
        let mut outcome = ScreenOutcome::default();
        let all_banks = self.store.list_banks()?;
        let selected: Vec<&Bank> = if options.banks.is_empty() {
            all_banks.iter().filter(|b| b.enabled).collect()
        } else {
            let mut chosen = Vec::new();
            for name in &options.banks {
                let bank = all_banks
                    .iter()
                    .find(|b| &b.name == name)
                    .ok_or_else(|| MatchError::UnknownBank(name.clone()))?;
                if bank.enabled {
                    chosen.push(bank);
                } else {
                    outcome
                        .notes
                        .push(format!("bank {name:?} is disabled and was not screened"));
                }
            }
            chosen
        };
        if selected.is_empty() {
            return Ok(outcome);
        }
        let by_name: HashMap<&str, &Bank> =
            selected.iter().map(|b| (b.name.as_str(), *b)).collect();
        let tighten = |d: u32| options.max_distance.map_or(d, |m| m.min(d));
        // Search each algorithm at the widest threshold of the selected banks; each candidate is
        // then held to its own bank's threshold.
        let radius = |a: Algorithm| {
            selected
                .iter()
                .map(|b| tighten(b.max_distance.get(a)))
                .max()
        };
        let candidates = self.indexes.candidates(query, &radius);
        let frame_candidates = self.indexes.frame_candidates(query, &radius);

        let now = Timestamp::now();
        let mut best: HashMap<EntryId, MatchInfo> = HashMap::new();
        let mut entries: HashMap<EntryId, Option<Entry>> = HashMap::new();
        let all = candidates.into_iter().map(|c| (None, c));
        for (frame, c) in all.chain(frame_candidates.into_iter().map(|(i, c)| (Some(i), c))) {
            let entry = match entries.get(&c.id) {
                Some(e) => e.clone(),
                None => {
                    let e = self.store.get_entry(c.id)?;
                    entries.insert(c.id, e.clone());
                    e
                }
            };
            let Some(entry) = entry else { continue };
            if !entry.is_active(now) {
                continue;
            }
            let Some(bank) = by_name.get(entry.bank.as_str()) else {
                continue;
            };
            if c.distance > distance_limit(&c, tighten(bank.max_distance.get(c.algorithm))) {
                continue;
            }
            let info = MatchInfo {
                bank: bank.name.clone(),
                bank_kind: bank.kind,
                entry_id: entry.id,
                external_id: entry.external_id.clone(),
                label: entry.label.clone(),
                algorithm: c.algorithm,
                distance: c.distance,
                confidence: confidence::confidence_of(
                    c.algorithm,
                    if c.keypoints > 0 {
                        confidence::PdqKind::Keypoints
                    } else if c.region {
                        confidence::PdqKind::Region
                    } else {
                        confidence::PdqKind::Whole
                    },
                    c.distance,
                ),
                transform: c.transform,
                suppressed: false,
                keypoints: c.keypoints,
                frame,
            };
            // On a tie, the upright picture over a transform, the picture itself over a frame.
            let better = best.get(&c.id).is_none_or(|old| {
                (
                    info.confidence,
                    std::cmp::Reverse(info.transform != Dihedral::Original),
                    std::cmp::Reverse(info.frame.is_some()),
                ) > (
                    old.confidence,
                    std::cmp::Reverse(old.transform != Dihedral::Original),
                    std::cmp::Reverse(old.frame.is_some()),
                )
            });
            if better {
                best.insert(c.id, info);
            }
        }
        let mut matches: Vec<MatchInfo> = best.into_values().collect();
        // An allow bank holds known-benign pictures: when the upload matches one, block matches of
        // the same picture are reported but cancelled.
        let allowed = matches.iter().any(|m| m.bank_kind == BankKind::Allow);
        for m in matches
            .iter_mut()
            .filter(|m| m.bank_kind == BankKind::Block)
        {
            m.suppressed = allowed;
        }
        if allowed && matches.iter().any(|m| m.suppressed) {
            outcome
                .notes
                .push("block matches cancelled by an allow-bank match".into());
        }
        matches.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(a.distance.cmp(&b.distance))
                .then(a.entry_id.cmp(&b.entry_id))
        });
        outcome.matched = matches
            .iter()
            .any(|m| m.bank_kind == BankKind::Block && !m.suppressed);
        outcome.matches = matches;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::HasherBuilder;

    #[test]
    fn mirrored_64_bit_candidates_are_held_one_bit_tighter() {
        let candidate = |algorithm, transform| Candidate {
            id: 1,
            algorithm,
            distance: 8,
            transform,
            region: false,
            keypoints: 0,
        };
        let limit = |a, t| distance_limit(&candidate(a, t), 8);
        assert_eq!(limit(Algorithm::Dhash, Dihedral::Original), 8);
        assert_eq!(limit(Algorithm::Dhash, Dihedral::FlipHorizontal), 7);
        assert_eq!(limit(Algorithm::Phash, Dihedral::FlipHorizontal), 7);
        // PDQ's transforms are part of its own lookup and calibration: untouched.
        assert_eq!(limit(Algorithm::Pdq, Dihedral::FlipHorizontal), 8);
        // A keypoint match was held to its vote; no Hamming limit applies to it.
        let by_points = Candidate {
            distance: 56,
            keypoints: 8,
            ..candidate(Algorithm::Pdq, Dihedral::Original)
        };
        assert_eq!(distance_limit(&by_points, 31), u32::MAX);
    }

    #[test]
    fn content_boxes_are_looked_up_upright_and_mirrored_only() {
        let bridge = image::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bridge.jpg"
        ))
        .expect("fixture")
        .to_rgb8();
        let (w, h) = bridge.dimensions();
        let mut framed = image::RgbImage::from_pixel(w + 200, h + 200, image::Rgb([255, 255, 255]));
        image::imageops::overlay(&mut framed, &bridge, 100, 100);
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(framed)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode");
        let hashes = HasherBuilder::new()
            .dihedral(true)
            .regions(true)
            .build()
            .hash_bytes(&png)
            .expect("hash");
        assert!(!hashes.pdq_regions.is_empty(), "the frame is found");
        let mut notes = Vec::new();
        let q = QueryHashes::from_image(&hashes, &mut notes);
        // The whole picture under all eight transforms; each box upright and mirrored; the trial
        // turns apart (upright, for the crop windows only).
        assert_eq!(q.pdq.len(), 8);
        let (trials, boxes): (Vec<_>, Vec<_>) =
            hashes.pdq_regions.iter().partition(|r| r.trial_turn);
        assert_eq!(
            trials.len(),
            crate::hashing::regions::TRIAL_TURNS_DEGREES.len()
        );
        assert_eq!(
            q.pdq_trial_turns,
            trials.iter().map(|r| r.pdq.hash).collect::<Vec<_>>()
        );
        assert_eq!(q.pdq_regions.len(), 2 * boxes.len());
        for (region, pair) in boxes.iter().zip(q.pdq_regions.chunks(2)) {
            let all = region.dihedral.expect("dihedral");
            assert_eq!(pair[0], (Dihedral::Original, all[0].hash));
            let mirror = Dihedral::ALL
                .iter()
                .position(|t| *t == Dihedral::FlipHorizontal)
                .expect("mirror");
            assert_eq!(pair[1], (Dihedral::FlipHorizontal, all[mirror].hash));
        }
        assert!(notes.is_empty(), "{notes:?}");
    }

    fn fixture(name: &str) -> image::RgbImage {
        image::open(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
        .to_rgb8()
    }

    fn png(img: &image::RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn an_off_centre_crop_meets_its_entry_by_keypoints_only_when_they_are_on() {
        let bridge = fixture("bridge.jpg");
        let banked = HasherBuilder::new()
            .dihedral(true)
            .windows(true)
            .build()
            .hash_bytes(&png(&bridge))
            .expect("hash");
        let hashes = entry_hashes(&banked);
        assert!(hashes.keypoints.as_slice().len() >= keypoints::MIN_KEYPOINTS);
        let indexes = HashIndexes::new();
        indexes.insert(7, &hashes);
        // `vigie eval`'s crop_25pc_offcentre: a quarter off the right, a fifth off the top.
        let (w, h) = bridge.dimensions();
        let crop = image::imageops::crop_imm(&bridge, 0, h / 5, w * 3 / 4, h * 3 / 4).to_image();
        let screen = |img: &image::RgbImage, keypoints: bool| {
            let hashes = HasherBuilder::new()
                .dihedral(true)
                .regions(true)
                .keypoints(keypoints)
                .build()
                .hash_bytes(&png(img))
                .expect("hash");
            let q = QueryHashes::from_image(&hashes, &mut Vec::new());
            indexes.candidates(&q, |a| Some(if a == Algorithm::Pdq { 31 } else { 8 }))
        };
        // No hash follows this crop: without keypoints nothing is found.
        assert!(screen(&crop, false).is_empty());
        let found = screen(&crop, true);
        let by_points: Vec<&Candidate> = found.iter().filter(|c| c.keypoints > 0).collect();
        assert_eq!(by_points.len(), 1, "{found:?}");
        assert_eq!(by_points[0].id, 7);
        assert!(by_points[0].keypoints >= keypoints::MIN_VOTES);
        assert_eq!(
            by_points[0].distance,
            keypoints::votes_distance(by_points[0].keypoints)
        );
        // Another photo gathers no keypoint match.
        assert!(screen(&fixture("wine.jpg"), true).is_empty());
        // Removing the entry takes its keypoints out of the index.
        indexes.remove(7, &hashes);
        assert!(screen(&crop, true).is_empty());
    }
}

//! The set of in-memory indexes over every active entry's hashes, and candidate search in them.
//!
//! One exact Hamming index per perceptual algorithm (multi-index hashing, see `crate::index`), one
//! for the crop-window PDQs, one for keypoint descriptors, and a hash map per exact algorithm. The
//! indexes only know entry ids; what an entry is (bank, external id, label) is read from the store
//! for the few candidates a query finds, so memory stays at the index's cost per hash.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::keypoint_vote::{self, BankedPoints, KeypointId, PointPair};
use super::query::QueryHashes;
use crate::bits::{Bits, Hash256};
use crate::hashing::Dihedral;
use crate::hashing::LocalLookups;
use crate::hashing::keypoints::{Keypoint, MAX_KEYPOINTS, UploadKeypoints};
use crate::index::HammingIndex;
use crate::store::load::BulkLoad;
use crate::store::{Algorithm, EntryHashes, EntryId, HashValue, Md5};

/// How a candidate was found: which of the upload's lookups met which banked hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// The upload's whole-picture hash met the entry's, with `upload = transform(banked picture)`
    /// (`Dihedral::Original` for none).
    Whole(Dihedral),
    /// A content box of the upload (borders trimmed, the photo in a screenshot), under a
    /// transform, met the entry's whole-picture hash.
    ContentBox(Dihedral),
    /// An upright hash of the upload (whole, of a content box, or turned back by a trial turn)
    /// met one of the entry's crop windows: the upload is a crop of the banked picture.
    CropWindow,
    /// The upload's keypoints: `votes` distinct upload points agreed on one displacement to the
    /// entry's points (see `keypoint_vote`).
    Keypoints {
        /// Upload points that agreed (at least [`keypoint_vote::MIN_VOTES`]).
        votes: u32,
        /// Whether they were the upload's points mirrored left to right
        /// ([`UploadKeypoints::mirrored`]): the upload is a mirrored copy.
        mirrored: bool,
    },
    /// An upright hash of one frame of an animated upload (see `QueryHashes::frames`) met the
    /// entry's whole-picture hash: the frame's place in the animation, from 0.
    Frame(u32),
}

impl MatchKind {
    /// The transform from the banked picture to the upload (`Original` for sub-picture matches,
    /// which are upright; `FlipHorizontal` for a keypoint match through the mirrored points).
    pub fn transform(self) -> Dihedral {
        match self {
            MatchKind::Whole(t) | MatchKind::ContentBox(t) => t,
            MatchKind::Keypoints { mirrored: true, .. } => Dihedral::FlipHorizontal,
            MatchKind::CropWindow | MatchKind::Keypoints { .. } | MatchKind::Frame(_) => {
                Dihedral::Original
            }
        }
    }

    /// The frame of an animation that met the entry; `None` when the upload's picture itself
    /// (its default image) did.
    pub fn frame(self) -> Option<u32> {
        match self {
            MatchKind::Frame(i) => Some(i),
            _ => None,
        }
    }

    /// The keypoint votes of a keypoint match; `None` for a hash match.
    pub fn votes(self) -> Option<u32> {
        match self {
            MatchKind::Keypoints { votes, .. } => Some(votes),
            _ => None,
        }
    }
}

/// One index hit before the store is consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The entry hit.
    pub id: EntryId,
    /// The algorithm whose index was hit (a keypoint match counts as PDQ: it stands in for PDQ
    /// where a crop defeats it, and is searched whenever PDQ is).
    pub algorithm: Algorithm,
    /// Hamming distance in bits; for a keypoint match [`keypoint_vote::votes_distance`] of its
    /// votes, so both read a calibration table alike.
    pub distance: u32,
    /// How the upload met the entry.
    pub how: MatchKind,
}

/// What the keypoint part of a screen did, summed over the screens it is passed to (see
/// [`HashIndexes::candidates_with_stats`]): how many chance pairs a bank gives an upload, how
/// many (entry, scale) groups it has to vote on, and where the time goes. For benchmarks
/// (`vigie bench keypoints`); a screen does the same work without reporting it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeypointStats {
    /// Upload point sets searched (up to three an upload: as it is, mirrored, at the crop level;
    /// see `hashing::keypoints::query_keypoint_sets`).
    pub uploads: u64,
    /// Upload points looked up in the keypoint index.
    pub lookups: u64,
    /// Upload points looked up that met more than [`keypoint_vote::MAX_POINT_HITS`] banked
    /// points: left out of the shortlist.
    pub common_points: u64,
    /// Banked points found within [`keypoint_vote::SEARCH_RADIUS`] of an upload point by the
    /// index lookup (common points' not counted): the pairs that make the shortlist.
    pub pairs: u64,
    /// (entry, banked scale) groups met by at least [`keypoint_vote::SHORTLIST_POINTS`] upload
    /// points and ranked among the [`keypoint_vote::MAX_PAIRED_GROUPS`] best, paired in full at
    /// [`keypoint_vote::DESCRIPTOR_RADIUS`].
    pub shortlisted_groups: u64,
    /// Groups met by enough upload points but ranked past [`keypoint_vote::MAX_PAIRED_GROUPS`]:
    /// not paired.
    pub ranked_out_groups: u64,
    /// Descriptor pairs of the shortlisted groups at [`keypoint_vote::DESCRIPTOR_RADIUS`], each one
    /// vote's raw material.
    pub verified_pairs: u64,
    /// Shortlisted groups voted on: with as many distinct upload points as the group's least
    /// match ([`keypoint_vote::least_votes`]).
    pub voted_groups: u64,
    /// Distinct entries among those groups.
    pub voted_entries: u64,
    /// Entries whose vote made a match.
    pub matched_entries: u64,
    /// Time spent looking the upload's points up in the index.
    pub search: Duration,
    /// Time spent grouping the pairs and voting.
    pub vote: Duration,
}

/// Bytes each part of [`HashIndexes`] has allocated (its Hamming indexes' own accounting,
/// `HammingIndex::heap_bytes`: capacities, so what the allocator handed out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexBytes {
    /// The whole-picture indexes: PDQ, pHash and dHash (the MD5 and SHA-256 maps not counted).
    pub whole: usize,
    /// The crop-window PDQ index.
    pub windows: usize,
    /// The keypoint descriptor index and each image entry's points beside it.
    pub keypoints: usize,
}

/// The keypoint descriptors' index, planned for their search radius rather than the 64-bit
/// hashes' (on `vigie eval`'s bank of 81 pictures: 0.83 -> 0.70 ms of lookups a screen, measured
/// before the texture rule made lookups rarer).
///
/// Descriptors are held with their bits spread ([`spread`]): multi-index hashing cuts a hash into
/// runs of consecutive bits, and its cost model (like its analysis, Norouzi et al. 2012, section
/// 4) takes the bits of a run to be independent. A descriptor's consecutive bits are neighbouring
/// cells of one row of its patch, which mostly agree (a bright row, an edge): runs such as
/// `0xFF` and `0x00` then crowd a few buckets, and every lookup scans them. Spread, each run takes
/// cells from all over the patch. A permutation of the bits changes no Hamming distance, so what
/// is found is the same.
struct KeypointIndex(HammingIndex<1>);

impl Default for KeypointIndex {
    fn default() -> Self {
        Self(HammingIndex::with_design_radius(
            keypoint_vote::SEARCH_RADIUS,
        ))
    }
}

/// The stride of [`spread`]: odd, so `j * 27 mod 64` visits every bit. A step of 27 cells is
/// three columns and three rows on the 8x8 grid, so any two consecutive spread bits are cells at
/// least three apart, and the eight of a byte are spread over the whole patch.
const SPREAD_STRIDE: usize = 27;

/// For each byte position and value, its bits at their spread positions: [`spread`] is eight
/// table reads.
static SPREAD_TABLE: std::sync::LazyLock<Box<[[u64; 256]; 8]>> = std::sync::LazyLock::new(|| {
    let mut table = Box::new([[0u64; 256]; 8]);
    for (byte, row) in table.iter_mut().enumerate() {
        for (value, out) in row.iter_mut().enumerate() {
            for bit in 0..8 {
                if value & (1 << bit) != 0 {
                    // Source bit `byte * 8 + bit` goes to the position whose stride reaches it:
                    // spread bit j holds source bit (j * SPREAD_STRIDE) mod 64.
                    let source = byte * 8 + bit;
                    let j = (0..64)
                        .find(|j| j * SPREAD_STRIDE % 64 == source)
                        .unwrap_or(source);
                    *out |= 1 << j;
                }
            }
        }
    }
    table
});

/// `descriptor` with bit `(j * 27) mod 64` moved to bit `j`: a fixed permutation, so distances
/// between spread descriptors are those between the descriptors (see [`KeypointIndex`]).
fn spread(descriptor: &Bits<1>) -> Bits<1> {
    let d = descriptor.0[0];
    let mut out = 0u64;
    for (byte, row) in SPREAD_TABLE.iter().enumerate() {
        out |= row[((d >> (8 * byte)) & 0xFF) as usize];
    }
    Bits([out])
}

/// The index holds only the rarer points ([`keypoint_vote::is_lookup_point`]): a banked point is
/// admitted here, once, for every way in (insert, bulk extend) and out (remove). Every point,
/// plain ones included, is kept beside the index ([`BankedPoints`]) to pair in full.
impl KeypointIndex {
    fn insert(&self, p: &Keypoint, id: u64) -> Result<(), crate::index::IndexError> {
        if !keypoint_vote::is_lookup_point(p) {
            return Ok(());
        }
        self.0.insert(spread(&p.descriptor), id)
    }

    fn remove(&self, p: &Keypoint, id: u64) -> bool {
        keypoint_vote::is_lookup_point(p) && self.0.remove(&spread(&p.descriptor), id)
    }

    fn extend(
        &self,
        entries: impl IntoIterator<Item = (Keypoint, u64)>,
    ) -> Result<(), crate::index::IndexError> {
        self.0.extend(
            entries
                .into_iter()
                .filter(|(p, _)| keypoint_vote::is_lookup_point(p))
                .map(|(p, id)| (spread(&p.descriptor), id)),
        )
    }

    /// Whether `p` is held under `id` as it should be: a plain point, never held, counts as held.
    fn holds(&self, p: &Keypoint, id: u64) -> bool {
        !keypoint_vote::is_lookup_point(p)
            || self
                .search(&p.descriptor, 0)
                .iter()
                .any(|(found, _)| *found == id)
    }

    fn search(&self, descriptor: &Bits<1>, radius: u32) -> Vec<crate::index::Match> {
        self.0.search(&spread(descriptor), radius)
    }

    /// [`KeypointIndex::search`], or `None` when more than `limit` points are within `radius`.
    fn search_at_most(
        &self,
        descriptor: &Bits<1>,
        radius: u32,
        limit: usize,
    ) -> Option<Vec<crate::index::Match>> {
        self.0.search_at_most(&spread(descriptor), radius, limit)
    }

    /// Points held.
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Every active entry's hashes, searchable. Updated in place (no rebuild); safe to search while
/// another thread inserts or removes.
#[derive(Default)]
pub struct HashIndexes {
    pdq: HammingIndex<4>,
    /// Crop-window PDQs of entries added as images: searched only with the upload's upright
    /// hashes (a cropped re-upload of the banked picture), so they cost a few lookups per screen,
    /// not one per transform and content box.
    pdq_windows: HammingIndex<4>,
    phash: HammingIndex<1>,
    dhash: HammingIndex<1>,
    /// Keypoint descriptors of entries added as images (at each banked scale), under their
    /// [`KeypointId`]: searched with the upload's points, for crops no window covers.
    keypoints: KeypointIndex,
    /// Each image entry's banked points in full, for pairing a shortlisted entry's points at
    /// [`keypoint_vote::DESCRIPTOR_RADIUS`] (see [`keypoint_vote::SEARCH_RADIUS`]).
    banked_points: RwLock<HashMap<EntryId, BankedPoints>>,
    md5: RwLock<HashMap<Md5, Vec<EntryId>>>,
    sha256: RwLock<HashMap<Hash256, Vec<EntryId>>>,
}

fn lock_poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    // A panic while holding these locks cannot leave a map half-updated (single insert/remove
    // calls), so the data behind a poisoned lock is still consistent.
    e.into_inner()
}

impl HashIndexes {
    /// Empty indexes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry's hashes, crop windows and keypoints under its id.
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
            let Some(kid) = KeypointId::new(id, p) else {
                tracing::error!(entry = id, "entry id too large for the keypoint index");
                break;
            };
            if let Err(e) = self.keypoints.insert(p, kid.0) {
                tracing::error!(entry = id, error = %e, "keypoint not indexed");
            }
        }
        if !hashes.keypoints.as_slice().is_empty() {
            self.banked_points
                .write()
                .unwrap_or_else(lock_poisoned)
                .insert(id, BankedPoints::new(hashes.keypoints.as_slice()));
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
                insert_exact(&self.md5, h, id);
                Ok(())
            }
            HashValue::Sha256(h) => {
                insert_exact(&self.sha256, h, id);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(entry = id, error = %e, "hash not indexed");
        }
    }

    /// Removes an entry's hashes (those it was inserted with); hashes not held are ignored.
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
            if let Some(kid) = KeypointId::new(id, p) {
                self.keypoints.remove(p, kid.0);
            }
        }
        self.banked_points
            .write()
            .unwrap_or_else(lock_poisoned)
            .remove(&id);
    }

    /// Adds a whole start-up load: one bulk build per index, which is several times faster and
    /// leaner than inserting hash by hash.
    pub fn extend_bulk(&self, bulk: BulkLoad) {
        for (name, result) in [
            ("pdq", self.pdq.extend(bulk.pdq)),
            ("pdq_windows", self.pdq_windows.extend(bulk.pdq_windows)),
            ("phash", self.phash.extend(bulk.phash)),
            ("dhash", self.dhash.extend(bulk.dhash)),
        ] {
            if let Err(e) = result {
                tracing::error!(algorithm = name, error = %e, "hashes not indexed");
            }
        }
        self.extend_keypoints(bulk.keypoints.into_iter().map(|(p, id)| (id, p)));
        for (h, id) in bulk.md5 {
            insert_exact(&self.md5, h, id);
        }
        for (h, id) in bulk.sha256 {
            insert_exact(&self.sha256, h, id);
        }
    }

    /// Adds many entries' keypoints in one bulk build, as [`HashIndexes::extend_bulk`] does for a
    /// start-up load's, from an iterator that may make them as it goes: a caller that can produce
    /// the points entry by entry (`vigie bench keypoints`) then never holds them all a second time
    /// (24 bytes a point, 4.6 GB for a million image entries).
    pub fn extend_keypoints(&self, points: impl ExactSizeIterator<Item = (EntryId, Keypoint)>) {
        // Filtering (only the rarer points are indexed, and only ids the index can encode) hides
        // the count from the index, whose arrays would then grow by doubling and keep up to
        // twice the room (16 bytes a point): the upper bound is reserved here, and what the
        // filter left unused given back below.
        self.keypoints.0.reserve(points.len());
        // The points of each entry come together (an entry's points are made at once), so the
        // run being gathered is the only one held twice.
        let mut full: Vec<(EntryId, BankedPoints)> = Vec::new();
        let mut run: (EntryId, Vec<Keypoint>) = (0, Vec::new());
        let pairs = points
            .inspect(|&(id, p)| {
                if id != run.0 && !run.1.is_empty() {
                    full.push((run.0, BankedPoints::new(&run.1)));
                    run.1.clear();
                }
                run.0 = id;
                run.1.push(p);
            })
            .filter_map(|(id, p)| Some((p, KeypointId::new(id, &p)?.0)));
        if let Err(e) = self.keypoints.extend(pairs) {
            tracing::error!(algorithm = "keypoints", error = %e, "hashes not indexed");
        }
        self.keypoints.0.shrink_to_fit();
        if !run.1.is_empty() {
            full.push((run.0, BankedPoints::new(&run.1)));
        }
        let mut held = self.banked_points.write().unwrap_or_else(lock_poisoned);
        held.reserve(full.len());
        for (id, points) in full {
            // An entry whose points came in two runs (never made so) keeps them all.
            match held.remove(&id) {
                Some(earlier) if !earlier.is_empty() => {
                    let mut all = earlier.points();
                    all.extend(points.points());
                    held.insert(id, BankedPoints::new(&all));
                }
                _ => {
                    held.insert(id, points);
                }
            }
        }
    }

    /// Hashes held, per algorithm (crop windows and keypoints not counted).
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

    /// Whether every hash, crop window and keypoint of `hashes` is held under `id` (for checks of
    /// the index against the store).
    pub fn holds(&self, id: EntryId, hashes: &EntryHashes) -> bool {
        fn has<const W: usize>(index: &HammingIndex<W>, h: &Bits<W>, id: u64) -> bool {
            index.search(h, 0).iter().any(|(found, _)| *found == id)
        }
        fn has_exact<K: std::hash::Hash + Eq>(
            map: &RwLock<HashMap<K, Vec<EntryId>>>,
            h: &K,
            id: EntryId,
        ) -> bool {
            let map = map.read().unwrap_or_else(lock_poisoned);
            map.get(h).is_some_and(|ids| ids.contains(&id))
        }
        let values = hashes.iter().all(|value| match value {
            HashValue::Pdq(h) => has(&self.pdq, &h, id),
            HashValue::Phash(h) => has(&self.phash, &h, id),
            HashValue::Dhash(h) => has(&self.dhash, &h, id),
            HashValue::Md5(h) => has_exact(&self.md5, &h, id),
            HashValue::Sha256(h) => has_exact(&self.sha256, &h, id),
        });
        values
            && hashes.windows().all(|w| has(&self.pdq_windows, &w, id))
            && hashes
                .keypoints
                .as_slice()
                .iter()
                .all(|p| KeypointId::new(id, p).is_some_and(|kid| self.keypoints.holds(p, kid.0)))
            && (hashes.keypoints.as_slice().is_empty()
                || self
                    .banked_points
                    .read()
                    .unwrap_or_else(lock_poisoned)
                    .get(&id)
                    .is_some_and(|held| *held == BankedPoints::new(hashes.keypoints.as_slice())))
    }

    /// Which local lookups a screen can answer now (see [`LocalLookups`]): whether any crop
    /// window and any keypoint is held.
    pub fn local_lookups(&self) -> LocalLookups {
        let (windows, keypoints) = self.sub_picture_counts();
        LocalLookups {
            keypoints: keypoints > 0,
            windows: windows > 0,
        }
    }

    /// Crop-window PDQs and keypoint descriptors held.
    pub fn sub_picture_counts(&self) -> (u64, u64) {
        (self.pdq_windows.len() as u64, self.keypoints.0.len() as u64)
    }

    /// Bytes the Hamming indexes have allocated, by part (see [`IndexBytes`]): what a bank costs
    /// in memory, per kind of hash.
    pub fn heap_bytes(&self) -> IndexBytes {
        IndexBytes {
            whole: self.pdq.heap_bytes() + self.phash.heap_bytes() + self.dhash.heap_bytes(),
            windows: self.pdq_windows.heap_bytes(),
            keypoints: self.keypoints.0.heap_bytes()
                + self
                    .banked_points
                    .read()
                    .unwrap_or_else(lock_poisoned)
                    .values()
                    .map(|p| p.heap_bytes() + std::mem::size_of::<(EntryId, BankedPoints)>())
                    .sum::<usize>(),
        }
    }

    /// Every indexed hash within `radius(algorithm)` of one of the query's hashes, and every
    /// entry whose keypoints agree with the upload's (searched whenever PDQ is). `radius` returns
    /// `None` for algorithms not to search. An entry may come back several times, once per lookup
    /// that met it.
    pub fn candidates(
        &self,
        query: &QueryHashes,
        radius: impl Fn(Algorithm) -> Option<u32>,
    ) -> Vec<Candidate> {
        self.candidates_near(query, radius, |_| 0)
    }

    /// [`HashIndexes::candidates`], adding to `stats` what the keypoint search did (see
    /// [`KeypointStats`]).
    pub fn candidates_with_stats(
        &self,
        query: &QueryHashes,
        radius: impl Fn(Algorithm) -> Option<u32>,
        stats: &mut KeypointStats,
    ) -> Vec<Candidate> {
        self.candidates_counted(query, radius, |_| 0, stats)
    }

    /// [`HashIndexes::candidates`], with the upright whole-picture lookups (the upload as it is,
    /// by PDQ, pHash and dHash: what a client steering its uploads toward a banked hash moves)
    /// searched `upright_margin(algorithm)` bits wider, so that the decision can tell a query
    /// that came near an entry (probing detection, `guard`). Only those: widening every lookup
    /// (each transform, content box and crop window) made a watched key's screens search the
    /// PDQ index at 39 bits instead of 31 about a dozen times, each 3.4 times slower at a
    /// million entries (`vigie bench lookup`: p50 71 -> 243 us).
    pub fn candidates_near(
        &self,
        query: &QueryHashes,
        radius: impl Fn(Algorithm) -> Option<u32>,
        upright_margin: impl Fn(Algorithm) -> u32,
    ) -> Vec<Candidate> {
        self.candidates_counted(query, radius, upright_margin, &mut KeypointStats::default())
    }

    /// [`HashIndexes::candidates_near`], adding to `stats` what the keypoint search did.
    fn candidates_counted(
        &self,
        query: &QueryHashes,
        radius: impl Fn(Algorithm) -> Option<u32>,
        upright_margin: impl Fn(Algorithm) -> u32,
        stats: &mut KeypointStats,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        if let Some(r) = radius(Algorithm::Pdq) {
            let pdq = Algorithm::Pdq;
            // The whole upload under every transform; its content boxes; and, as a crop of a
            // banked picture (or a content box that swallowed the banked picture's margins), its
            // upright hashes, whole, of the content boxes and turned back, against the windows.
            let wide = r.saturating_add(upright_margin(pdq));
            for (t, h) in &query.pdq {
                let r = if *t == Dihedral::Original { wide } else { r };
                search(&self.pdq, h, r, pdq, MatchKind::Whole(*t), &mut out);
            }
            for (t, h) in &query.pdq_regions {
                search(&self.pdq, h, r, pdq, MatchKind::ContentBox(*t), &mut out);
            }
            let upright = query
                .pdq
                .iter()
                .chain(&query.pdq_regions)
                .filter(|(t, _)| *t == Dihedral::Original)
                .map(|(_, h)| h)
                .chain(&query.pdq_trial_turns);
            for h in upright {
                search(
                    &self.pdq_windows,
                    h,
                    r,
                    pdq,
                    MatchKind::CropWindow,
                    &mut out,
                );
            }
            // Keypoints stand in for PDQ where a crop defeats it: searched whenever PDQ is.
            let mut by_points: HashMap<EntryId, (u32, bool)> = HashMap::new();
            if !self.keypoints.0.is_empty() {
                for upload in &query.keypoints {
                    self.keypoint_matches(upload, &mut by_points, stats);
                }
            }
            out.extend(
                by_points
                    .into_iter()
                    .map(|(id, (votes, mirrored))| Candidate {
                        id,
                        algorithm: pdq,
                        distance: keypoint_vote::votes_distance(votes),
                        how: MatchKind::Keypoints { votes, mirrored },
                    }),
            );
        }
        let sixty_four = [
            (
                Algorithm::Phash,
                &self.phash,
                query.phash,
                &query.phash_turned,
            ),
            (
                Algorithm::Dhash,
                &self.dhash,
                query.dhash,
                &query.dhash_turned,
            ),
        ];
        for (algorithm, index, upright, turned) in sixty_four {
            let Some(r) = radius(algorithm) else { continue };
            if let Some(h) = upright {
                let wide = r.saturating_add(upright_margin(algorithm));
                let how = MatchKind::Whole(Dihedral::Original);
                search(index, &h, wide, algorithm, how, &mut out);
            }
            for (t, h) in turned {
                search(index, h, r, algorithm, MatchKind::Whole(*t), &mut out);
            }
        }
        // An animation's other frames, upright, against the whole pictures (after the default
        // image's lookups: the decision keeps the first of equally good matches of one entry).
        for f in &query.frames {
            let how = MatchKind::Frame(f.index);
            if let (Some(r), Some(h)) = (radius(Algorithm::Pdq), &f.pdq) {
                search(&self.pdq, h, r, Algorithm::Pdq, how, &mut out);
            }
            for (algorithm, index, hash) in [
                (Algorithm::Phash, &self.phash, &f.phash),
                (Algorithm::Dhash, &self.dhash, &f.dhash),
            ] {
                if let (Some(r), Some(h)) = (radius(algorithm), hash) {
                    search(index, h, r, algorithm, how, &mut out);
                }
            }
        }
        // Content boxes after every whole-picture lookup: the decision keeps the first of equally
        // good matches of one entry.
        let boxes = [
            (Algorithm::Phash, &self.phash, &query.phash_regions),
            (Algorithm::Dhash, &self.dhash, &query.dhash_regions),
        ];
        for (algorithm, index, regions) in boxes {
            let Some(r) = radius(algorithm) else { continue };
            let how = MatchKind::ContentBox(Dihedral::Original);
            for h in regions {
                search(index, h, r, algorithm, how, &mut out);
            }
        }
        if radius(Algorithm::Md5).is_some()
            && let Some(h) = query.md5
        {
            exact_hits(&self.md5, &h, Algorithm::Md5, &mut out);
        }
        if radius(Algorithm::Sha256).is_some()
            && let Some(h) = query.sha256
        {
            exact_hits(&self.sha256, &h, Algorithm::Sha256, &mut out);
        }
        out
    }

    /// Records in `best` each entry whose banked points, at any banked scale, agree with at least
    /// [`keypoint_vote::MIN_VOTES`] of the upload's on one displacement, with its best vote and
    /// whether the points were mirrored (the upright set wins a tie). Adds to `stats` what it did.
    fn keypoint_matches(
        &self,
        upload: &UploadKeypoints,
        best: &mut HashMap<EntryId, (u32, bool)>,
        stats: &mut KeypointStats,
    ) {
        // Three clock reads an upload (tens of nanoseconds against a search of a millisecond or
        // more), so the screen's own path and the benchmark's are one.
        let started = Instant::now();
        // The upload points that met each (entry, banked scale) group: sorted by group, each run
        // is one group, without hashing every hit into a map. Only the shortlist is read from
        // them; the pairs that vote are made again in full ([`BankedPoints::pairs_with`]).
        let mut found: Vec<(u64, u16)> = Vec::new();
        // How many banked points each upload point met: its weight in the ranking below.
        let mut hits = [0u32; MAX_KEYPOINTS];
        for (qi, q) in upload.points.iter().enumerate() {
            // The index holds only the rarer points: a plainer upload point would find none of
            // them, and it still pairs in full below.
            if !keypoint_vote::is_lookup_point(q) {
                continue;
            }
            stats.lookups += 1;
            // At most MAX_KEYPOINTS upload points, so the index fits.
            let qi = u16::try_from(qi).unwrap_or(u16::MAX);
            // A point that meets more banked points than a copy could need is a pattern many
            // pictures share: it is left out of the lookup (it still pairs in full).
            let Some(met) = self.keypoints.search_at_most(
                &q.descriptor,
                keypoint_vote::SEARCH_RADIUS,
                keypoint_vote::MAX_POINT_HITS,
            ) else {
                stats.common_points += 1;
                continue;
            };
            if let Some(h) = hits.get_mut(usize::from(qi)) {
                *h = u32::try_from(met.len()).unwrap_or(u32::MAX);
            }
            found.extend(
                met.into_iter()
                    .map(|(kid, _)| (KeypointId(kid).group(), qi)),
            );
        }
        let searched = Instant::now();
        stats.uploads += 1;
        stats.pairs += found.len() as u64;
        found.sort_unstable_by_key(|(group, _)| *group);
        // The shortlist: the groups met by enough distinct upload points, at most
        // MAX_PAIRED_GROUPS of them, those whose meeting points are rarest first.
        let indexed = self.keypoints.len();
        let mut shortlist: Vec<(f32, &[(u64, u16)])> = found
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|run| {
                run.len() >= keypoint_vote::SHORTLIST_POINTS as usize
                    && keypoint_vote::distinct_indices(run.iter().map(|&(_, qi)| qi))
                        >= keypoint_vote::SHORTLIST_POINTS
            })
            .map(|run| (keypoint_vote::group_score(run, &hits, indexed), run))
            .collect();
        if shortlist.len() > keypoint_vote::MAX_PAIRED_GROUPS {
            stats.ranked_out_groups += (shortlist.len() - keypoint_vote::MAX_PAIRED_GROUPS) as u64;
            // Best score first; a tie goes to the lower group, so the answer does not depend on
            // the order the index returned its hits in.
            let better = |a: &(f32, &[(u64, u16)]), b: &(f32, &[(u64, u16)])| {
                b.0.total_cmp(&a.0).then(a.1[0].0.cmp(&b.1[0].0))
            };
            shortlist.select_nth_unstable_by(keypoint_vote::MAX_PAIRED_GROUPS - 1, better);
            shortlist.truncate(keypoint_vote::MAX_PAIRED_GROUPS);
            // Back in group order: an entry's groups are adjacent for the counts below.
            shortlist.sort_unstable_by_key(|(_, run)| run[0].0);
        }
        let mut pairs: Vec<PointPair> = Vec::new();
        // Runs of one entry are adjacent (its scales are the group's low bits).
        let (mut last_voted, mut last_matched) = (None, None);
        // Made at the first group that reaches a vote: most uploads have none.
        let mut frames = None;
        let banked = self.banked_points.read().unwrap_or_else(lock_poisoned);
        for (_, run) in shortlist {
            let group = run[0].0;
            let Some(points) = banked.get(&KeypointId::entry_of_group(group)) else {
                continue;
            };
            pairs.clear();
            points.pairs_with(KeypointId::scale_of_group(group), upload, &mut pairs);
            stats.shortlisted_groups += 1;
            stats.verified_pairs += pairs.len() as u64;
            // Nor can fewer distinct upload points than the group's least match: each votes
            // once. Under that floor the vote skips every window that cannot reach it.
            let floor = keypoint_vote::least_votes(pairs.len()) - 1;
            if keypoint_vote::distinct_upload_points(&pairs) <= floor {
                continue;
            }
            let entry = KeypointId::entry_of_group(run[0].0);
            stats.voted_groups += 1;
            if last_voted.replace(entry) != Some(entry) {
                stats.voted_entries += 1;
            }
            let frames = frames.get_or_insert_with(|| keypoint_vote::VoteFrames::new(upload));
            let votes = keypoint_vote::best_vote_over(&pairs, upload, frames, floor);
            if keypoint_vote::is_match(votes, pairs.len()) {
                if last_matched.replace(entry) != Some(entry) {
                    stats.matched_entries += 1;
                }
                let b = best.entry(entry).or_insert((0, upload.mirrored));
                if votes > b.0 || (votes == b.0 && !upload.mirrored) {
                    *b = (votes, upload.mirrored);
                }
            }
        }
        let voted = Instant::now();
        stats.search += searched - started;
        stats.vote += voted - searched;
    }
}

/// One lookup: every hash of `index` within `radius` of `hash`, as candidates found `how`.
fn search<const W: usize>(
    index: &HammingIndex<W>,
    hash: &Bits<W>,
    radius: u32,
    algorithm: Algorithm,
    how: MatchKind,
    out: &mut Vec<Candidate>,
) {
    out.extend(
        index
            .search(hash, radius)
            .into_iter()
            .map(|(id, distance)| Candidate {
                id,
                algorithm,
                distance,
                how,
            }),
    );
}

/// The entries holding exactly `hash`.
fn exact_hits<K: std::hash::Hash + Eq>(
    map: &RwLock<HashMap<K, Vec<EntryId>>>,
    hash: &K,
    algorithm: Algorithm,
    out: &mut Vec<Candidate>,
) {
    let map = map.read().unwrap_or_else(lock_poisoned);
    out.extend(map.get(hash).into_iter().flatten().map(|&id| Candidate {
        id,
        algorithm,
        distance: 0,
        how: MatchKind::Whole(Dihedral::Original),
    }));
}

fn insert_exact<K: std::hash::Hash + Eq>(
    map: &RwLock<HashMap<K, Vec<EntryId>>>,
    key: K,
    id: EntryId,
) {
    map.write()
        .unwrap_or_else(lock_poisoned)
        .entry(key)
        .or_default()
        .push(id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::HasherBuilder;
    use crate::matcher::entry_hashes;

    fn fixture(name: &str) -> image::RgbImage {
        image::open(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
        .to_rgb8()
    }

    /// The points of `points` the keypoint index holds ([`keypoint_vote::is_lookup_point`]).
    fn lookup_points(points: &[Keypoint]) -> impl Iterator<Item = &Keypoint> {
        points.iter().filter(|p| keypoint_vote::is_lookup_point(p))
    }

    fn png(img: &image::RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn only_the_upright_whole_picture_lookups_are_searched_wider() {
        use crate::bits::Bits;
        let indexes = HashIndexes::new();
        let banked = EntryHashes {
            pdq: Some(Bits([0; 4])),
            dhash: Some(Bits([0])),
            ..EntryHashes::default()
        };
        indexes.insert(7, &banked);
        // Every lookup of the upload is 35 bits of PDQ (10 of dHash) from the entry: past the
        // thresholds (31, 8), within them plus the near margins (8, 2).
        let pdq_35 = Bits([(1 << 35) - 1, 0, 0, 0]);
        let dhash_10 = Bits([0x3FF]);
        let q = QueryHashes {
            pdq: vec![
                (Dihedral::Original, pdq_35),
                (Dihedral::FlipHorizontal, pdq_35),
            ],
            pdq_regions: vec![(Dihedral::Original, pdq_35)],
            dhash: Some(dhash_10),
            dhash_turned: vec![(Dihedral::Rotate180, dhash_10)],
            ..QueryHashes::default()
        };
        let radius = |a: Algorithm| Some(if a == Algorithm::Pdq { 31 } else { 8 });
        assert!(indexes.candidates(&q, radius).is_empty());
        let margin = |a: Algorithm| if a == Algorithm::Pdq { 8 } else { 2 };
        let mut near: Vec<(Algorithm, MatchKind, u32)> = indexes
            .candidates_near(&q, radius, margin)
            .into_iter()
            .map(|c| (c.algorithm, c.how, c.distance))
            .collect();
        near.sort_by_key(|(a, _, _)| *a as u8);
        let upright = MatchKind::Whole(Dihedral::Original);
        assert_eq!(
            near,
            vec![
                (Algorithm::Pdq, upright, 35),
                (Algorithm::Dhash, upright, 10)
            ]
        );
    }

    #[test]
    fn a_bulk_load_holds_every_keypoint_in_exactly_the_room_it_needs() {
        use crate::store::load::HashSink;
        let banked = HasherBuilder::new()
            .windows(true)
            .build()
            .hash_bytes(&png(&fixture("bridge.jpg")))
            .expect("hash");
        let hashes = entry_hashes(&banked);
        let mut bulk = BulkLoad::default();
        for value in hashes.iter() {
            bulk.insert(7, value);
        }
        for w in hashes.windows() {
            bulk.insert_window(7, w);
        }
        for p in hashes.keypoints.as_slice() {
            bulk.insert_keypoint(7, *p);
        }
        let indexes = HashIndexes::new();
        indexes.extend_bulk(bulk);
        assert!(indexes.holds(7, &hashes));
        let bytes = indexes.heap_bytes();
        assert!(bytes.whole > 0 && bytes.windows > 0, "{bytes:?}");
        // The points are filtered on the way in, which hides the count from the index: the room
        // reserved for all of them is trimmed after, so the index costs what one built from a
        // plain list of the indexed points does.
        let plain = HammingIndex::<1>::with_design_radius(keypoint_vote::SEARCH_RADIUS);
        // Only the rarer points are indexed; the bridge has plainer ones too.
        let pairs: Vec<_> = lookup_points(hashes.keypoints.as_slice())
            .filter_map(|p| Some((p.descriptor, KeypointId::new(7, p)?.0)))
            .collect();
        assert!(!pairs.is_empty() && pairs.len() < hashes.keypoints.as_slice().len());
        assert_eq!(indexes.keypoints.0.len(), pairs.len());
        plain.extend(pairs).expect("extend");
        // Beside the index, the entry's points once, in full.
        let full = BankedPoints::new(hashes.keypoints.as_slice());
        assert_eq!(full.len(), hashes.keypoints.as_slice().len());
        assert_eq!(
            bytes.keypoints,
            plain.heap_bytes() + full.heap_bytes() + std::mem::size_of::<(EntryId, BankedPoints)>()
        );
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
        assert!(hashes.keypoints.as_slice().len() >= crate::hashing::keypoints::MIN_KEYPOINTS);
        let indexes = HashIndexes::new();
        indexes.insert(7, &hashes);
        assert!(indexes.holds(7, &hashes));
        assert!(!indexes.holds(8, &hashes));
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
        let by_points: Vec<&Candidate> = found
            .iter()
            .filter(|c| matches!(c.how, MatchKind::Keypoints { .. }))
            .collect();
        assert_eq!(by_points.len(), 1, "{found:?}");
        assert_eq!(by_points[0].id, 7);
        let votes = by_points[0].how.votes().expect("votes");
        assert!(votes >= keypoint_vote::MIN_VOTES);
        assert_eq!(by_points[0].distance, keypoint_vote::votes_distance(votes));
        // What the keypoint search did: one point set, each point looked up, the entry's
        // pairs voted on and matched; the same candidates as without counting.
        let crop_query = QueryHashes::from_image(
            &HasherBuilder::new()
                .dihedral(true)
                .regions(true)
                .keypoints(true)
                .build()
                .hash_bytes(&png(&crop))
                .expect("hash"),
            &mut Vec::new(),
        );
        let radius = |a: Algorithm| Some(if a == Algorithm::Pdq { 31 } else { 8 });
        let mut stats = KeypointStats::default();
        let counted = indexes.candidates_with_stats(&crop_query, radius, &mut stats);
        assert_eq!(counted.len(), indexes.candidates(&crop_query, radius).len());
        // One search a point set (as it is, mirrored, at the crop level), each point looked up.
        assert_eq!(stats.uploads, crop_query.keypoints.len() as u64);
        assert!((2..=3).contains(&stats.uploads), "{stats:?}");
        // Each of the rarer points looked up; the plainer ones are not (they pair in full).
        let points: usize = crop_query
            .keypoints
            .iter()
            .map(|k| lookup_points(&k.points).count())
            .sum();
        assert!(points > 0);
        assert_eq!(stats.lookups, points as u64);
        // The lookup's pairs put the entry's group on the shortlist; paired again in full at the
        // descriptor radius it has at least as many pairs, enough to vote on.
        assert!(
            stats.pairs >= u64::from(keypoint_vote::SHORTLIST_POINTS),
            "{stats:?}"
        );
        assert!(stats.shortlisted_groups >= 1, "{stats:?}");
        assert!(
            stats.verified_pairs >= u64::from(keypoint_vote::MIN_VOTES),
            "{stats:?}"
        );
        assert!(stats.voted_groups >= 1, "{stats:?}");
        assert!(stats.voted_groups <= stats.shortlisted_groups, "{stats:?}");
        // Entries are counted per point set: the one entry, voted on and matched by one set or
        // more (the upright one at least).
        assert!(stats.matched_entries >= 1, "{stats:?}");
        assert!(stats.voted_entries >= stats.matched_entries, "{stats:?}");
        assert!(stats.voted_entries <= stats.uploads, "{stats:?}");
        // Another photo gathers no keypoint match.
        assert!(screen(&fixture("wine.jpg"), true).is_empty());
        // Removing the entry takes its keypoints out of the index, and its points from beside it.
        indexes.remove(7, &hashes);
        assert!(screen(&crop, true).is_empty());
        assert!(!indexes.holds(7, &hashes));
        assert!(indexes.banked_points.read().expect("lock").is_empty());
        assert_eq!(
            indexes.heap_bytes().keypoints,
            indexes.keypoints.0.heap_bytes()
        );
    }

    /// `n` descriptors of 32 set bits whose [`transitions`] lie in `range`, each more than
    /// [`keypoint_vote::DESCRIPTOR_RADIUS`] bits from every other and from `taken`: the left half
    /// of the patch bright, then random swaps of a bright and a dark cell (deterministic).
    fn descriptors_with_transitions(
        range: std::ops::Range<u32>,
        n: usize,
        taken: &mut Vec<Bits<1>>,
        seed: &mut u64,
    ) -> Vec<Bits<1>> {
        use crate::hashing::keypoints::transitions;
        let mut next = || {
            // xorshift64 (Marsaglia 2003): only needs to vary.
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let mut out = Vec::new();
        while out.len() < n {
            let mut d = 0x0F0F_0F0F_0F0F_0F0Fu64;
            while transitions(&Bits([d])) < range.start {
                let (a, b) = (next() % 64, next() % 64);
                if (d >> a) & 1 != (d >> b) & 1 {
                    d ^= (1 << a) | (1 << b);
                }
            }
            let d = Bits([d]);
            let far = taken
                .iter()
                .all(|t| t.distance(&d) > keypoint_vote::DESCRIPTOR_RADIUS);
            if range.contains(&transitions(&d)) && far {
                taken.push(d);
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn only_the_rarer_points_are_indexed_and_looked_up_yet_every_point_votes() {
        use crate::hashing::keypoints::MIN_TRANSITIONS;
        use crate::store::model::EntryKeypoints;
        let (mut taken, mut seed) = (Vec::new(), 0x9E37_79B9_7F4A_7C15u64);
        let rare = descriptors_with_transitions(
            keypoint_vote::LOOKUP_TRANSITIONS..64,
            6,
            &mut taken,
            &mut seed,
        );
        let plain = descriptors_with_transitions(
            MIN_TRANSITIONS..keypoint_vote::LOOKUP_TRANSITIONS,
            6,
            &mut taken,
            &mut seed,
        );
        // Twelve points on a 4x3 grid over a 192x192 picture, rare and plain alternating.
        let descriptors: Vec<Bits<1>> = rare
            .iter()
            .zip(&plain)
            .flat_map(|(r, p)| [*r, *p])
            .collect();
        let at = |k: usize, dx: u8, dy: u8| Keypoint {
            x: 20 + 50 * (k % 4) as u8 + dx,
            y: 30 + 60 * (k / 4) as u8 + dy,
            scale: 0,
            descriptor: descriptors[k],
        };
        let banked: Vec<Keypoint> = (0..12).map(|k| at(k, 0, 0)).collect();
        let hashes = EntryHashes {
            keypoints: EntryKeypoints::new(banked.iter().copied()),
            ..EntryHashes::default()
        };
        let indexes = HashIndexes::new();
        indexes.insert(7, &hashes);
        assert_eq!(indexes.keypoints.0.len(), 6);
        assert!(indexes.holds(7, &hashes));
        // The banked picture moved by (3, 5): every point agrees on one displacement.
        let upload = |points: Vec<Keypoint>| QueryHashes {
            keypoints: vec![UploadKeypoints {
                width: 192,
                height: 192,
                points,
                mirrored: false,
            }],
            ..QueryHashes::default()
        };
        let radius = |a: Algorithm| Some(if a == Algorithm::Pdq { 31 } else { 8 });
        let copy = upload((0..12).map(|k| at(k, 3, 5)).collect());
        let mut stats = KeypointStats::default();
        let found = indexes.candidates_with_stats(&copy, radius, &mut stats);
        // The six rare points were looked up and shortlisted the entry; all twelve voted (six
        // alone are under MIN_VOTES).
        assert_eq!(stats.lookups, 6, "{stats:?}");
        assert_eq!(stats.pairs, 6, "{stats:?}");
        assert_eq!(stats.verified_pairs, 12, "{stats:?}");
        const { assert!(6 < keypoint_vote::MIN_VOTES) };
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].id, found[0].how.votes()), (7, Some(12)));
        // The plain points alone are never looked up: no shortlist, no match.
        let plain_only = upload(
            (0..12)
                .filter(|k| k % 2 == 1)
                .map(|k| at(k, 3, 5))
                .collect(),
        );
        let mut stats = KeypointStats::default();
        assert!(
            indexes
                .candidates_with_stats(&plain_only, radius, &mut stats)
                .is_empty()
        );
        assert_eq!((stats.lookups, stats.pairs), (0, 0), "{stats:?}");
        indexes.remove(7, &hashes);
        assert!(indexes.keypoints.0.is_empty());
        assert!(indexes.candidates(&copy, radius).is_empty());
    }

    #[test]
    fn spreading_descriptor_bits_is_a_permutation_that_keeps_distances() {
        let mut seen = 0u64;
        for bit in 0..64 {
            let s = spread(&Bits([1 << bit])).0[0];
            assert_eq!(s.count_ones(), 1, "bit {bit}");
            seen |= s;
        }
        assert_eq!(seen, u64::MAX);
        // Consecutive spread bits are cells at least three apart on the 8x8 grid.
        for j in 0..63 {
            let (c, d) = (j * SPREAD_STRIDE % 64, (j + 1) * SPREAD_STRIDE % 64);
            let apart = (c % 8).abs_diff(d % 8).max((c / 8).abs_diff(d / 8));
            assert!(apart >= 3, "bits {j}, {}: cells {c}, {d}", j + 1);
            assert_eq!(spread(&Bits([1 << c])).0[0], 1 << j);
        }
        let (a, b) = (Bits([0x0123_4567_89AB_CDEF]), Bits([0xFFFF_0000_F0F0_0F0F]));
        assert_eq!(spread(&a).distance(&spread(&b)), a.distance(&b));
    }

    /// Entry 7 is the bridge banked as an image; the keypoint matches a screen of `img` finds, as
    /// (entry, transform).
    fn keypoint_entries_of(img: &image::RgbImage) -> Vec<(EntryId, Dihedral)> {
        let banked = HasherBuilder::new()
            .dihedral(true)
            .windows(true)
            .build()
            .hash_bytes(&png(&fixture("bridge.jpg")))
            .expect("hash");
        let indexes = HashIndexes::new();
        indexes.insert(7, &entry_hashes(&banked));
        let hashes = HasherBuilder::new()
            .dihedral(true)
            .regions(true)
            .keypoints(true)
            .build()
            .hash_bytes(&png(img))
            .expect("hash");
        let q = QueryHashes::from_image(&hashes, &mut Vec::new());
        indexes
            .candidates(&q, |a| Some(if a == Algorithm::Pdq { 31 } else { 8 }))
            .into_iter()
            .filter(|c| matches!(c.how, MatchKind::Keypoints { .. }))
            .map(|c| (c.id, c.how.transform()))
            .collect()
    }

    #[test]
    fn a_mirrored_crop_meets_its_entry_by_the_mirrored_points() {
        let bridge = fixture("bridge.jpg");
        let (w, h) = bridge.dimensions();
        // `vigie eval`'s combo_mirror_crop_emoji without its stickers: mirrored, then 4% off the
        // left, 12% off the top, 14% off the right and 4% off the bottom.
        let mirrored = image::imageops::flip_horizontal(&bridge);
        let crop = image::imageops::crop_imm(
            &mirrored,
            w * 4 / 100,
            h * 12 / 100,
            w * 82 / 100,
            h * 84 / 100,
        )
        .to_image();
        // Found through the mirrored points, and said so.
        assert_eq!(
            keypoint_entries_of(&crop),
            vec![(7, Dihedral::FlipHorizontal)]
        );
        // Unrelated photos, mirrored too, meet nothing.
        for other in ["wine.jpg", "tux_747.png"] {
            let flipped = image::imageops::flip_horizontal(&fixture(other));
            assert!(keypoint_entries_of(&flipped).is_empty(), "{other}");
        }
    }

    #[test]
    fn a_crop_keeping_sixty_percent_from_a_corner_meets_its_entry_at_the_crop_level() {
        let bridge = fixture("bridge.jpg");
        let (w, h) = bridge.dimensions();
        // `vigie eval`'s crop_60pc_corner: 60% of each side, from the bottom-right corner.
        let (cw, ch) = (w * 60 / 100, h * 60 / 100);
        let crop = image::imageops::crop_imm(&bridge, w - cw, h - ch, cw, ch).to_image();
        assert_eq!(keypoint_entries_of(&crop), vec![(7, Dihedral::Original)]);
        // 70% off-centre, as `vigie eval`'s crop_70pc_offcentre.
        let crop = image::imageops::crop_imm(
            &bridge,
            w * 6 / 100,
            h * 21 / 100,
            w * 70 / 100,
            h * 70 / 100,
        )
        .to_image();
        assert_eq!(keypoint_entries_of(&crop), vec![(7, Dihedral::Original)]);
    }

    /// A synthetic entry of 24 points spread over a 192 x 144 picture (random descriptors) and an
    /// upload showing the same points moved by (-9, 5), whose descriptors differ from the banked
    /// ones by `near` points at 2 bits and the rest at 6 or 7: beyond the lookup's radius, within
    /// the descriptor radius.
    fn shortlist_case(near: usize) -> (HashIndexes, UploadKeypoints) {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut banked = Vec::new();
        let mut upload = Vec::new();
        for i in 0..24u8 {
            let (x, y) = (20 + (i % 6) * 30, 20 + (i / 6) * 32);
            let d = next();
            banked.push(Keypoint {
                x,
                y,
                scale: 0,
                descriptor: Bits([d]),
            });
            let flips = if usize::from(i) < near {
                2
            } else {
                6 + u32::from(i % 2)
            };
            // Flip `flips` distinct bits, chosen from the point's own index.
            let mask = (0..flips).fold(0u64, |m, k| m | 1 << ((u32::from(i) * 7 + k * 9) % 64));
            assert_eq!(mask.count_ones(), flips);
            upload.push(Keypoint {
                x: x + 9,
                y: y - 5,
                scale: 0,
                descriptor: Bits([d ^ mask]),
            });
        }
        let indexes = HashIndexes::new();
        indexes.extend_keypoints(
            banked
                .iter()
                .map(|p| (3, *p))
                .collect::<Vec<_>>()
                .into_iter(),
        );
        let upload = UploadKeypoints {
            width: 192,
            height: 144,
            points: upload,
            mirrored: false,
        };
        (indexes, upload)
    }

    #[test]
    fn a_shortlisted_entry_is_paired_in_full_at_the_descriptor_radius() {
        // SHORTLIST_POINTS points within the lookup's radius put the entry on the shortlist;
        // then all 24 pair at the descriptor radius and agree.
        let (indexes, upload) = shortlist_case(keypoint_vote::SHORTLIST_POINTS as usize);
        let mut best = HashMap::new();
        let mut stats = KeypointStats::default();
        indexes.keypoint_matches(&upload, &mut best, &mut stats);
        assert_eq!(stats.pairs, u64::from(keypoint_vote::SHORTLIST_POINTS));
        assert_eq!(stats.shortlisted_groups, 1);
        assert_eq!(stats.verified_pairs, 24);
        assert_eq!(best.get(&3), Some(&(24, false)), "{stats:?}");
        // The same pairs as a lookup of every point at the descriptor radius: the brute-force
        // vote agrees.
        let all: Vec<Keypoint> = indexes.banked_points.read().expect("lock")[&3].points();
        assert_eq!(keypoint_vote::votes(&all, &upload), 24);

        // One fewer is not enough for the shortlist, although a lookup at the descriptor radius
        // would have found the entry: the lookup's radius decides which groups are paired.
        let (indexes, upload) = shortlist_case(keypoint_vote::SHORTLIST_POINTS as usize - 1);
        let mut best = HashMap::new();
        let mut stats = KeypointStats::default();
        indexes.keypoint_matches(&upload, &mut best, &mut stats);
        assert_eq!(stats.pairs, u64::from(keypoint_vote::SHORTLIST_POINTS) - 1);
        assert_eq!(stats.shortlisted_groups, 0);
        assert!(best.is_empty());
    }

    #[test]
    fn only_the_best_ranked_groups_are_paired_and_a_copy_outranks_groups_met_by_chance() {
        // The copy: every one of its 24 points is near an upload point. It is given the highest
        // entry id, so a cap that kept groups in id order would drop it.
        let (copy, upload) = shortlist_case(24);
        let copy_points = copy.banked_points.read().expect("lock")[&3].points();
        let copy_id: EntryId = 1_000_000;
        // Decoys: entries met by exactly SHORTLIST_POINTS upload points (their first three
        // descriptors, anywhere on the picture): each reaches the shortlist, none can match.
        let decoys = keypoint_vote::MAX_PAIRED_GROUPS + 10;
        let shortlist = keypoint_vote::SHORTLIST_POINTS as usize;
        let mut points: Vec<(EntryId, Keypoint)> = Vec::new();
        for k in 0..decoys {
            for (j, q) in upload.points.iter().take(shortlist).enumerate() {
                points.push((
                    100 + k as EntryId,
                    Keypoint {
                        x: 30 + (k % 100) as u8 + 20 * j as u8,
                        y: 40 + 30 * j as u8,
                        scale: 0,
                        descriptor: q.descriptor,
                    },
                ));
            }
        }
        points.extend(copy_points.iter().map(|p| (copy_id, *p)));
        let indexes = HashIndexes::new();
        indexes.extend_keypoints(points.into_iter());

        let mut best = HashMap::new();
        let mut stats = KeypointStats::default();
        indexes.keypoint_matches(&upload, &mut best, &mut stats);
        // Every decoy and the copy reached the shortlist; only the best ranked were paired.
        assert_eq!(
            stats.shortlisted_groups,
            keypoint_vote::MAX_PAIRED_GROUPS as u64,
            "{stats:?}"
        );
        assert_eq!(
            stats.ranked_out_groups,
            (decoys + 1 - keypoint_vote::MAX_PAIRED_GROUPS) as u64,
            "{stats:?}"
        );
        // The copy's 24 points, three of which meet every decoy too, outrank them all.
        assert_eq!(best.get(&copy_id), Some(&(24, false)), "{stats:?}");
        assert_eq!(best.len(), 1, "{best:?}");
    }

    #[test]
    fn a_group_met_by_rarer_upload_points_scores_higher_and_each_point_counts_once() {
        // Upload point 0 met a thousand banked points, 1 and 2 one each, in an index of a million.
        let mut hits = [0u32; MAX_KEYPOINTS];
        hits[0] = 1000;
        hits[1] = 1;
        hits[2] = 1;
        hits[3] = 1000;
        let rare = keypoint_vote::group_score(&[(7, 1), (7, 2)], &hits, 1_000_000);
        let common = keypoint_vote::group_score(&[(8, 0), (8, 3)], &hits, 1_000_000);
        assert!(rare > common, "{rare} {common}");
        // ln(1e6 + 1) - ln(1) for each rare point, ln(1e6 + 1) - ln(1000) for each common one.
        assert!((rare - 2.0 * 1_000_001f32.ln()).abs() < 1e-3, "{rare}");
        assert!(
            (common - 2.0 * (1_000_001f32 / 1000.0).ln()).abs() < 1e-3,
            "{common}"
        );
        // The same upload point met twice (two banked points of the group) counts once.
        let twice = keypoint_vote::group_score(&[(7, 1), (7, 1), (7, 2)], &hits, 1_000_000);
        assert_eq!(twice, rare);
    }
}

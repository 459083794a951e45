//! The start-up load: every active entry's hashes into an in-memory index, streamed in id order
//! from the store without materialising entries.

use super::model::{EntryId, HashValue, Keypoint, Md5, Sha256, Timestamp};
use super::{Store, StoreError};
use crate::bits::{Hash64, Hash256};

/// Where loaded hashes go (the in-memory index).
pub trait HashSink {
    /// One of entry `id`'s whole-picture or exact hashes (any algorithm).
    fn insert(&mut self, id: EntryId, hash: HashValue);
    /// A crop-window PDQ of the entry (kept apart from its PDQ); ignored unless the sink wants it.
    fn insert_window(&mut self, _id: EntryId, _hash: Hash256) {}
    /// A keypoint of the entry; ignored unless the sink wants it.
    fn insert_keypoint(&mut self, _id: EntryId, _point: Keypoint) {}
    /// Hashes held.
    fn len(&self) -> u64;
    /// Whether the sink holds no hash.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Active entries visited.
    pub entries: u64,
    /// Hashes inserted (an entry may carry several).
    pub hashes: u64,
}

/// Stream every entry active at `now` into `sink`, in entry id order. Errors: storage, or
/// [`StoreError::Corrupt`] for a record that does not decode; the sink may then hold part of the
/// entries.
pub fn load_into(
    store: &Store,
    now: Timestamp,
    sink: &mut dyn HashSink,
) -> Result<LoadStats, StoreError> {
    let mut hashes = 0u64;
    let entries = store.for_each_active_entry(now, &mut |id, _bank, entry_hashes| {
        for h in entry_hashes.iter() {
            sink.insert(id, h);
            hashes += 1;
        }
        for w in entry_hashes.windows() {
            sink.insert_window(id, w);
            hashes += 1;
        }
        for p in entry_hashes.keypoints.as_slice() {
            sink.insert_keypoint(id, *p);
            hashes += 1;
        }
        Ok(())
    })?;
    Ok(LoadStats { entries, hashes })
}

/// The load's hashes gathered per algorithm, for one bulk `extend` of each index afterwards.
///
/// Measured with `vigie bench store` (1M PDQ): handing the Hamming index all pairs at once lets it
/// plan its tables for the final size and build them in one pass (0.3 s, 93 MiB of index), where
/// inserting hash by hash or in chunks grows the tables incrementally (2.7 s, 180 MiB). The
/// price is the pairs held once more until the extend (40 bytes a PDQ pair).
#[derive(Debug, Default)]
pub struct BulkLoad {
    /// Whole-picture PDQs (256 bits) with their entry, in id order.
    pub pdq: Vec<(Hash256, EntryId)>,
    /// pHashes (64 bits) with their entry.
    pub phash: Vec<(Hash64, EntryId)>,
    /// dHashes (64 bits) with their entry.
    pub dhash: Vec<(Hash64, EntryId)>,
    /// MD5 digests (128 bits) with their entry.
    pub md5: Vec<(Md5, EntryId)>,
    /// SHA-256 digests (256 bits) with their entry.
    pub sha256: Vec<(Sha256, EntryId)>,
    /// Crop-window PDQs (their own index: see `matcher::HashIndexes`).
    pub pdq_windows: Vec<(Hash256, EntryId)>,
    /// Keypoints (their own index, keyed by entry and position).
    pub keypoints: Vec<(Keypoint, EntryId)>,
}

impl HashSink for BulkLoad {
    fn insert(&mut self, id: EntryId, hash: HashValue) {
        match hash {
            HashValue::Pdq(h) => self.pdq.push((h, id)),
            HashValue::Phash(h) => self.phash.push((h, id)),
            HashValue::Dhash(h) => self.dhash.push((h, id)),
            HashValue::Md5(h) => self.md5.push((h, id)),
            HashValue::Sha256(h) => self.sha256.push((h, id)),
        }
    }

    fn insert_window(&mut self, id: EntryId, hash: Hash256) {
        self.pdq_windows.push((hash, id));
    }

    fn insert_keypoint(&mut self, id: EntryId, point: Keypoint) {
        self.keypoints.push((point, id));
    }

    fn len(&self) -> u64 {
        (self.pdq.len()
            + self.phash.len()
            + self.dhash.len()
            + self.md5.len()
            + self.sha256.len()
            + self.pdq_windows.len()
            + self.keypoints.len()) as u64
    }
}

/// A plain list of (id, hash), in load order: a sink for tests and [`load_index`]. It keeps
/// what [`HashSink::insert`] gives and ignores crop windows and keypoints.
#[derive(Debug, Default)]
pub struct HashList(pub Vec<(EntryId, HashValue)>);

impl HashSink for HashList {
    fn insert(&mut self, id: EntryId, hash: HashValue) {
        self.0.push((id, hash));
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Result of [`load_index`].
#[derive(Debug)]
pub struct Loaded {
    /// Active entries visited.
    pub entries: u64,
    /// Hashes, crop windows and keypoints visited.
    pub hashes: u64,
    /// Hashes the list kept (crop windows and keypoints left out, so at most `hashes`).
    pub index_len: u64,
    /// The (id, hash) pairs.
    pub index: HashList,
}

/// Every entry active at `now` into a [`HashList`], with counts. Errors: as [`load_into`].
pub fn load_index(store: &Store, now: Timestamp) -> Result<Loaded, StoreError> {
    let mut index = HashList::default();
    let stats = load_into(store, now, &mut index)?;
    Ok(Loaded {
        entries: stats.entries,
        hashes: stats.hashes,
        index_len: index.len(),
        index,
    })
}

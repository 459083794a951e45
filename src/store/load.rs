//! The start-up load: every active entry's hashes into an in-memory index, streamed in id order
//! from the store without materialising entries.

use super::model::{EntryId, HashValue, Timestamp};
use super::{Store, StoreError};

/// Where loaded hashes go (the in-memory index).
pub trait HashSink {
    fn insert(&mut self, id: EntryId, hash: HashValue);
    /// Hashes held.
    fn len(&self) -> u64;
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

/// Stream every entry active at `now` into `sink`.
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
        Ok(())
    })?;
    Ok(LoadStats { entries, hashes })
}

/// A plain list of (id, hash): the stand-in sink until the Hamming index is wired in.
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
    pub entries: u64,
    pub hashes: u64,
    pub index_len: u64,
    pub index: HashList,
}

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

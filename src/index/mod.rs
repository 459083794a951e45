//! Exact in-memory Hamming index over (hash, entry id) pairs, for 64- and 256-bit hashes.
//!
//! Multi-index hashing (Norouzi, Punjani, Fleet, CVPR 2012; details and the exactness argument in
//! [`layout`]): the hash is cut into disjoint substrings, each with a table of buckets; a query
//! probes the buckets near each of its substrings and verifies every candidate by its full
//! distance, so results are exact — the same set a linear scan returns, never an approximation.
//! The index plans its own layout from the hash width, the bank size and a design radius, and
//! scans linearly when its cost model says that is faster (tiny banks, very large radii).
//!
//! Memory per entry: the hash (32 or 8 bytes) and its id (8) in two dense arrays, then per table
//! one u32 entry (plus the inlined 8-byte hash for 64-bit hashes) and a share of the bucket
//! directory (12 bytes a bucket, at most one bucket per 8 entries). At 10M PDQ hashes the planner
//! picks 11 tables: 32 + 8 + 11 * 4 + ~14 = ~98 bytes an entry.
//!
//! Updates happen in place ([`table`] explains how a bucket grows) and are visible to every search
//! that starts after the update returns: [`HammingIndex`] keeps the structure behind a
//! reader-writer lock, searches share it and a write holds it for the microseconds an insert takes.
//! When the bank grows or shrinks 4x past its plan, the write that crosses the line re-plans: it
//! builds the new tables (seconds at 10M entries; amortised O(1) per insert) under a read lock, so
//! searches keep running on the old tables while other writers wait, then swaps them in under the
//! write lock.

mod core;
pub mod layout;
mod table;

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use self::core::{IndexCore, MAX_ENTRIES, SearchPath, linear_scan};
pub use self::layout::{Layout, TableSpec};
use crate::bits::Bits;

/// One search result: (entry id, Hamming distance).
pub type Match = (u64, u32);

/// Radius the layout of a 256-bit (PDQ) index is planned for: PDQ's usual match threshold.
pub const PDQ_DESIGN_RADIUS: u32 = 31;
/// Radius the layout of a 64-bit (pHash/dHash) index is planned for.
pub const HASH64_DESIGN_RADIUS: u32 = 10;

/// Why an index refused an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The insert would pass the entries the index (or its current tables) can address; nothing
    /// of the batch was added.
    #[error("the index is full ({max} entries)")]
    Full {
        /// Most entries it can hold: [`MAX_ENTRIES`], or the tables' slot capacity when lower.
        max: usize,
    },
    /// A layout given to [`IndexCore::pin_layout`] does not fit the hash width (substrings not
    /// contiguous or not covering every bit, over 32 bits, too many tables or residue bits); what
    /// is wrong.
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
}

/// The least room [`reserve_gently`] adds when it must grow a vector.
const MIN_GROWTH: usize = 64;

/// Makes room in `v` for `additional` more elements, growing it by an eighth of its length (at
/// least `additional`, at least [`MIN_GROWTH`]) when it must grow, where `Vec`'s own growth
/// doubles it. Why: a bank loaded at start-up fills its arrays exactly, and the first entry a
/// trust team adds after that would otherwise double every array of the index at once (measured
/// with `vigie bench keypoints` at a million image entries, docs/PERFORMANCE.md 2026-12-02
/// (fourth): 10.6 -> 15.5 KB of keypoint index an entry for 80 entries added). Growth by a fixed
/// fraction keeps the cost of an insert amortised O(1) (each element is copied at most about
/// nine times over a bank's growth instead of twice), for at most an eighth of room unused.
/// An empty vector gets exactly `additional`: a bulk load's arrays hold what it promised.
pub(crate) fn reserve_gently<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        let grow = if v.is_empty() {
            additional
        } else {
            additional.max(v.len() / 8).max(MIN_GROWTH)
        };
        v.reserve_exact(grow);
    }
}

/// The design radius for a hash width: 31 for 256 bits, 10 for 64 bits, proportionally otherwise.
pub fn default_design_radius(hash_bits: u32) -> u32 {
    match hash_bits {
        256 => PDQ_DESIGN_RADIUS,
        64 => HASH64_DESIGN_RADIUS,
        bits => bits / 8,
    }
}

/// The shareable index: searches run concurrently with each other and with writes.
#[derive(Debug)]
pub struct HammingIndex<const W: usize> {
    core: RwLock<IndexCore<W>>,
    /// Taken by every writer for its whole update, re-plan included: while a re-plan builds
    /// tables under a read lock, no other write can slip in and make them stale.
    writers: Mutex<()>,
}

impl<const W: usize> Default for HammingIndex<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize> HammingIndex<W> {
    /// An empty index planned for the usual radius of its width.
    pub fn new() -> Self {
        Self::with_design_radius(default_design_radius(Bits::<W>::BITS))
    }

    /// An empty index planned for queries around `radius` (any radius still works exactly).
    pub fn with_design_radius(radius: u32) -> Self {
        HammingIndex {
            core: RwLock::new(IndexCore::new(radius)),
            writers: Mutex::new(()),
        }
    }

    /// An index over `entries`, built in one pass.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (Bits<W>, u64)>,
    ) -> Result<Self, IndexError> {
        let index = Self::new();
        index.extend(entries)?;
        Ok(index)
    }

    // A panic cannot happen while the lock is held for writing on any input (updates are total
    // functions of valid state), so a poisoned lock still guards a consistent structure.
    fn read(&self) -> RwLockReadGuard<'_, IndexCore<W>> {
        self.core.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, IndexCore<W>> {
        self.core.write().unwrap_or_else(|e| e.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-plans if the last write made it due: tables built under the read lock, swapped in
    /// under the write lock, old tables freed after it. The caller holds the writer gate.
    fn replan_if_due(&self) {
        let plan = {
            let core = self.read();
            if !core.replan_due() {
                return;
            }
            core.plan()
        };
        let (_, old_tables) = self.write().install(plan);
        drop(old_tables);
    }

    /// Every entry within `max_distance` of `query` (inclusive): (id, distance), sorted by
    /// distance then id. Duplicate hashes under different ids each come back.
    pub fn search(&self, query: &Bits<W>, max_distance: u32) -> Vec<Match> {
        self.read().search(query, max_distance)
    }

    /// [`HammingIndex::search`], or `None` when more than `limit` entries are within
    /// `max_distance` (see [`IndexCore::search_at_most`]: found out before their ids are read).
    pub fn search_at_most(
        &self,
        query: &Bits<W>,
        max_distance: u32,
        limit: usize,
    ) -> Option<Vec<Match>> {
        self.read().search_at_most(query, max_distance, limit)
    }

    /// Adds one (hash, id) pair; visible to every search that starts after this returns.
    pub fn insert(&self, hash: Bits<W>, id: u64) -> Result<(), IndexError> {
        self.extend(std::iter::once((hash, id)))
    }

    /// Adds many pairs under one write lock.
    pub fn extend(
        &self,
        entries: impl IntoIterator<Item = (Bits<W>, u64)>,
    ) -> Result<(), IndexError> {
        let _gate = self.writer();
        self.write().extend_with(entries, false)?;
        self.replan_if_due();
        Ok(())
    }

    /// Makes room for `additional` more pairs, exactly (see [`IndexCore::reserve`]).
    pub fn reserve(&self, additional: usize) {
        let _gate = self.writer();
        self.write().reserve(additional);
    }

    /// Gives back the room of the hash and id arrays beyond the pairs held (see
    /// [`IndexCore::shrink_to_fit`]).
    pub fn shrink_to_fit(&self) {
        let _gate = self.writer();
        self.write().shrink_to_fit();
    }

    /// Removes one copy of the pair (hash, id); false if absent. Invisible to searches that start
    /// after this returns.
    pub fn remove(&self, hash: &Bits<W>, id: u64) -> bool {
        let _gate = self.writer();
        let removed = self.write().remove_with(hash, id, false);
        self.replan_if_due();
        removed
    }

    /// Number of (hash, id) pairs held, each copy of a repeated pair counted.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the index holds no pair.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Bytes the index has allocated (see [`IndexCore::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.read().heap_bytes()
    }

    /// A copy of the current layout (its tables, and the bank size it was planned for).
    pub fn layout(&self) -> Layout {
        self.read().layout().clone()
    }

    /// Runs `f` on the unlocked structure under a read lock (benchmarks, forced search paths).
    pub fn with_core<T>(&self, f: impl FnOnce(&IndexCore<W>) -> T) -> T {
        f(&self.read())
    }

    /// Runs `f` on the structure under the write lock.
    pub fn with_core_mut<T>(&self, f: impl FnOnce(&mut IndexCore<W>) -> T) -> T {
        let _gate = self.writer();
        f(&mut self.write())
    }
}

//! The unsynchronised index: storage, updates and the two search paths.
//!
//! Storage: entry `slot` (u32) is `hashes[slot]` with id `ids[slot]`; both arrays are dense
//! (a removal moves the last entry into the hole and renames it in every table), so a linear scan
//! reads one contiguous array and the tables hold 4-byte slots instead of 8-byte ids.

use super::layout::{self, Layout, TableSpec};
use super::table::Table;
use super::{IndexError, Match};
use crate::bits::Bits;

/// Most entries one index holds: slots are u32 and a table's arena may run up to twice the
/// live entries before compaction.
pub const MAX_ENTRIES: usize = 1 << 31;

/// A layout and its tables, built off the write lock (see [`IndexCore::plan`]).
pub(super) struct Plan {
    layout: Layout,
    tables: Vec<Table>,
    entries: usize,
}

/// Which path a search takes. Only tests and benchmarks force one; [`SearchPath::Auto`] lets the
/// cost model decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPath {
    /// The cheaper path by the layout's cost model (what [`IndexCore::search`] takes).
    Auto,
    /// Probe the substring tables (a linear scan when the layout has none).
    Tables,
    /// Compare the query with every hash.
    Linear,
}

/// The index itself, unsynchronised: `W`-word (`64 * W`-bit) hashes with `u64` ids, in dense
/// arrays plus one table per substring of the layout. [`super::HammingIndex`] wraps it in a lock
/// for shared use; this type serves single-threaded builds, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct IndexCore<const W: usize> {
    hashes: Vec<Bits<W>>,
    ids: Vec<u64>,
    layout: Layout,
    tables: Vec<Table>,
    /// Radius the layout is planned for (queries may use any radius).
    design_radius: u32,
    /// A layout set by hand (tests): never re-planned.
    pinned: bool,
}

impl<const W: usize> IndexCore<W> {
    /// An empty index planned for queries around `design_radius`.
    pub fn new(design_radius: u32) -> Self {
        IndexCore {
            hashes: Vec::new(),
            ids: Vec::new(),
            layout: Layout::linear(Bits::<W>::BITS, 0),
            tables: Vec::new(),
            design_radius,
            pinned: false,
        }
    }

    /// Number of (hash, id) pairs held, each copy of a repeated pair counted.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the index holds no pair.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The current layout: the substring tables, and the bank size it was planned for.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Bytes held by the index: the capacity of every vector it owns (hash array, ids, each table's
    /// directory and entry arena). Each is one allocation, so allocator overhead is negligible.
    pub fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * size_of::<Bits<W>>()
            + self.ids.capacity() * size_of::<u64>()
            + self.tables.capacity() * size_of::<Table>()
            + self.tables.iter().map(Table::heap_bytes).sum::<usize>()
    }

    /// Makes room in the hash and id arrays for `additional` more entries, exactly (no
    /// doubling). [`IndexCore::extend`] reserves what its iterator's size hint promises; a caller
    /// whose iterator cannot promise it (one that filters) but knows the count calls this first,
    /// or the arrays grow by doubling and keep up to twice the room they need.
    pub fn reserve(&mut self, additional: usize) {
        self.hashes.reserve_exact(additional);
        self.ids.reserve_exact(additional);
    }

    /// Gives back the room of the hash and id arrays beyond the entries held: for a caller that
    /// reserved an upper bound of what its filtering iterator would add. (Shrinking a large
    /// allocation in place is cheap: the allocator returns the pages past the end.)
    pub fn shrink_to_fit(&mut self) {
        self.hashes.shrink_to_fit();
        self.ids.shrink_to_fit();
    }

    /// Adds many entries at once; the tables are rebuilt once if the bank outgrows its plan.
    /// On error nothing is added.
    pub fn extend(
        &mut self,
        entries: impl IntoIterator<Item = (Bits<W>, u64)>,
    ) -> Result<(), IndexError> {
        self.extend_with(entries, true)
    }

    /// [`IndexCore::extend`]; with `replan_now` false a due re-plan is left to the caller
    /// (unless the current tables cannot address the new slots).
    pub(super) fn extend_with(
        &mut self,
        entries: impl IntoIterator<Item = (Bits<W>, u64)>,
        replan_now: bool,
    ) -> Result<(), IndexError> {
        let entries = entries.into_iter();
        let (lower, _) = entries.size_hint();
        // Exactly what the batch promises, and never doubled (see `reserve_gently`).
        super::reserve_gently(&mut self.hashes, lower);
        super::reserve_gently(&mut self.ids, lower);
        let first_new = self.hashes.len();
        for (hash, id) in entries {
            if self.hashes.len() >= MAX_ENTRIES {
                self.hashes.truncate(first_new);
                self.ids.truncate(first_new);
                return Err(IndexError::Full { max: MAX_ENTRIES });
            }
            super::reserve_gently(&mut self.hashes, 1);
            super::reserve_gently(&mut self.ids, 1);
            self.hashes.push(hash);
            self.ids.push(id);
        }
        let over_capacity = self.hashes.len() > self.slot_capacity();
        // A batch at least as large as the bank it joins is cheaper to plan for at once than to
        // insert into tables about to be replaced (the write lock is held either way).
        let big_batch = self.hashes.len() - first_new >= first_new;
        if !self.pinned && (over_capacity || ((replan_now || big_batch) && self.needs_replan())) {
            self.replan();
        } else if over_capacity {
            self.hashes.truncate(first_new);
            self.ids.truncate(first_new);
            return Err(IndexError::Full {
                max: self.slot_capacity(),
            });
        } else {
            for slot in first_new..self.hashes.len() {
                self.insert_into_tables(slot);
            }
        }
        Ok(())
    }

    /// Entries the current tables can address (a re-plan raises it).
    fn slot_capacity(&self) -> usize {
        self.tables
            .iter()
            .map(Table::slot_capacity)
            .min()
            .unwrap_or(MAX_ENTRIES)
            .min(MAX_ENTRIES)
    }

    /// Adds one entry. The same (hash, id) pair may be added twice: the index is a multiset of
    /// pairs and returns each copy.
    pub fn insert(&mut self, hash: Bits<W>, id: u64) -> Result<(), IndexError> {
        self.extend(std::iter::once((hash, id)))
    }

    /// Removes one copy of the pair (hash, id); false if it is not in the index.
    pub fn remove(&mut self, hash: &Bits<W>, id: u64) -> bool {
        self.remove_with(hash, id, true)
    }

    /// [`IndexCore::remove`]; with `replan_now` false a due re-plan is left to the caller.
    pub(super) fn remove_with(&mut self, hash: &Bits<W>, id: u64, replan_now: bool) -> bool {
        let Some(slot) = self.find_slot(hash, id) else {
            return false;
        };
        for table in &mut self.tables {
            let sub = hash.substring(table.spec.start as usize, table.spec.bits as usize);
            let removed = table.remove(sub, slot as u32);
            debug_assert!(removed, "every slot is in every table");
        }
        let last = self.hashes.len() - 1;
        if slot != last {
            let moved = self.hashes[last];
            for table in &mut self.tables {
                let sub = moved.substring(table.spec.start as usize, table.spec.bits as usize);
                let renamed = table.rename(sub, last as u32, slot as u32);
                debug_assert!(renamed, "every slot is in every table");
            }
        }
        self.hashes.swap_remove(slot);
        self.ids.swap_remove(slot);
        if replan_now && self.needs_replan() {
            self.replan();
        }
        true
    }

    fn find_slot(&self, hash: &Bits<W>, id: u64) -> Option<usize> {
        let is_it = |slot: usize| self.ids[slot] == id && self.hashes[slot] == *hash;
        match self.tables.first() {
            Some(table) => {
                let (bucket, _) = table
                    .split(hash.substring(table.spec.start as usize, table.spec.bits as usize));
                let b = table.dir[bucket];
                table.entries[b.off as usize..(b.off + b.len) as usize]
                    .iter()
                    .map(|&e| table.slot_of(e) as usize)
                    .find(|&s| is_it(s))
            }
            None => (0..self.hashes.len()).find(|&s| is_it(s)),
        }
    }

    fn needs_replan(&self) -> bool {
        if self.pinned {
            return false;
        }
        let n = self.hashes.len();
        let design = self.layout.design_entries;
        let grew = n >= design.saturating_mul(4).max(layout::MIN_TABLE_ENTRIES);
        let shrank = design >= layout::MIN_TABLE_ENTRIES && n < design / 4;
        grew || shrank
    }

    fn replan(&mut self) {
        let layout = layout::choose(Bits::<W>::BITS, self.hashes.len(), self.design_radius);
        self.rebuild(layout);
    }

    /// Uses `layout` from now on, whatever the bank size (tests use it to reach the table path
    /// on small banks). The layout must cover every bit with substrings of at most 32 bits.
    pub fn pin_layout(&mut self, layout: Layout) -> Result<(), IndexError> {
        let bits = Bits::<W>::BITS;
        let mut next = 0;
        for t in &layout.tables {
            let residue_ok = layout.inline_full() || t.residue_bits() <= layout::MAX_RESIDUE_BITS;
            if t.start != next
                || !(1..=32).contains(&t.bits)
                || t.prefix_bits > t.bits
                || !residue_ok
            {
                return Err(IndexError::InvalidLayout(format!("bad table {t:?}")));
            }
            next += t.bits;
        }
        if layout.tables.len() > layout::MAX_TABLES {
            return Err(IndexError::InvalidLayout(format!(
                "more than {} tables",
                layout::MAX_TABLES
            )));
        }
        if layout.hash_bits != bits || (!layout.tables.is_empty() && next != bits) {
            return Err(IndexError::InvalidLayout(format!(
                "tables cover {next} of {bits} bits"
            )));
        }
        let max_residue = if layout.inline_full() {
            0
        } else {
            layout
                .tables
                .iter()
                .map(|t| t.residue_bits())
                .max()
                .unwrap_or(0)
        };
        let capacity = (1usize << (32 - max_residue)).min(MAX_ENTRIES);
        if self.hashes.len() > capacity {
            return Err(IndexError::Full { max: capacity });
        }
        self.pinned = true;
        self.rebuild(layout);
        Ok(())
    }

    /// Rebuilds every table for `layout` (counting sort per table, tables built in parallel).
    fn rebuild(&mut self, layout: Layout) {
        let tables = self.build_tables(&layout);
        self.tables = tables;
        self.layout = layout;
    }

    /// The tables of `layout` over the current entries (counting sort per table, tables built in
    /// parallel). Reads only: a re-plan builds them under a read lock while searches go on.
    fn build_tables(&self, layout: &Layout) -> Vec<Table> {
        let hashes = &self.hashes;
        let inline: Option<Vec<u64>> = layout
            .inline_full()
            .then(|| hashes.iter().map(|h| h.0[0]).collect());
        let build = |spec: TableSpec| {
            let subs: Vec<u32> = hashes
                .iter()
                .map(|h| h.substring(spec.start as usize, spec.bits as usize))
                .collect();
            Table::build(spec, &subs, inline.as_deref())
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        let specs = &layout.tables;
        let mut tables: Vec<Option<Table>> = vec![None; specs.len()];
        if workers <= 1 || specs.len() <= 1 || hashes.len() < 100_000 {
            for (slot, spec) in tables.iter_mut().zip(specs) {
                *slot = Some(build(*spec));
            }
        } else {
            std::thread::scope(|scope| {
                let chunks: Vec<_> = tables.chunks_mut(specs.len().div_ceil(workers)).collect();
                let mut first = 0;
                for chunk in chunks {
                    let start = first;
                    first += chunk.len();
                    let build = &build;
                    scope.spawn(move || {
                        for (i, slot) in chunk.iter_mut().enumerate() {
                            *slot = Some(build(specs[start + i]));
                        }
                    });
                }
            });
        }
        tables.into_iter().flatten().collect()
    }

    /// True when the bank has grown or shrunk 4x past its plan (the locked index then re-plans
    /// off the write lock with [`IndexCore::plan`] and [`IndexCore::install`]).
    pub(super) fn replan_due(&self) -> bool {
        self.needs_replan()
    }

    /// A new layout for the current bank and its tables, built without modifying the index.
    pub(super) fn plan(&self) -> Plan {
        let layout = layout::choose(Bits::<W>::BITS, self.hashes.len(), self.design_radius);
        let tables = self.build_tables(&layout);
        Plan {
            layout,
            tables,
            entries: self.hashes.len(),
        }
    }

    /// Switches to a plan made by [`IndexCore::plan`] on this very state; a plan made before
    /// some other update is refused (false). Returns the old tables for dropping off the lock.
    pub(super) fn install(&mut self, plan: Plan) -> (bool, Vec<Table>) {
        if plan.entries != self.hashes.len() || self.pinned {
            return (false, plan.tables);
        }
        self.layout = plan.layout;
        (true, std::mem::replace(&mut self.tables, plan.tables))
    }

    fn insert_into_tables(&mut self, slot: usize) {
        let hash = self.hashes[slot];
        for table in &mut self.tables {
            let sub = hash.substring(table.spec.start as usize, table.spec.bits as usize);
            table.insert(sub, slot as u32, hash.0[0]);
        }
    }

    /// Every entry within `max_distance` of `query` (inclusive), sorted by distance then id.
    pub fn search(&self, query: &Bits<W>, max_distance: u32) -> Vec<Match> {
        self.search_with(query, max_distance, SearchPath::Auto)
    }

    /// [`IndexCore::search`] through a chosen path; `Tables` without tables scans linearly.
    pub fn search_with(&self, query: &Bits<W>, max_distance: u32, path: SearchPath) -> Vec<Match> {
        let mut out = Vec::new();
        self.search_into(query, max_distance, path, usize::MAX, &mut out);
        out
    }

    /// [`IndexCore::search`], unless more than `limit` entries are within `max_distance`: then
    /// `None`, found out before the entries' ids are read (the costly part of a search with many
    /// results: one cache miss each). For 64-bit hashes the count is exact; for wider ones the
    /// tables' candidates (entries whose substring is near enough, before their full distance is
    /// checked) are counted, so `None` may come with `limit` or fewer within the distance.
    pub fn search_at_most(
        &self,
        query: &Bits<W>,
        max_distance: u32,
        limit: usize,
    ) -> Option<Vec<Match>> {
        let mut out = Vec::new();
        self.search_into(query, max_distance, SearchPath::Auto, limit, &mut out)
            .then_some(out)
    }

    /// The search behind [`IndexCore::search_with`] and [`IndexCore::search_at_most`]: fills
    /// `out` (sorted by distance then id) and returns true, or returns false once more than
    /// `limit` entries (or table candidates, see `search_at_most`) are found.
    fn search_into(
        &self,
        query: &Bits<W>,
        max_distance: u32,
        path: SearchPath,
        limit: usize,
        out: &mut Vec<Match>,
    ) -> bool {
        let use_tables = !self.tables.is_empty()
            && max_distance < Bits::<W>::BITS
            && match path {
                SearchPath::Auto => self.layout.prefers_tables(self.hashes.len(), max_distance),
                SearchPath::Tables => true,
                SearchPath::Linear => false,
            };
        #[cfg(target_arch = "x86_64")]
        let within = if std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has just been checked for the one feature the function enables.
            unsafe { self.scan_popcnt(query, max_distance, use_tables, limit, out) }
        } else {
            self.scan(query, max_distance, use_tables, limit, out)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let within = self.scan(query, max_distance, use_tables, limit, out);
        if !within {
            out.clear();
            return false;
        }
        sort_matches(out);
        true
    }

    /// [`IndexCore::scan`] compiled with the popcnt instruction.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn scan_popcnt(
        &self,
        query: &Bits<W>,
        r: u32,
        use_tables: bool,
        limit: usize,
        out: &mut Vec<Match>,
    ) -> bool {
        self.scan(query, r, use_tables, limit, out)
    }

    /// The tables' search or a linear scan, unsorted into `out`; false when more than `limit`
    /// were found (see [`IndexCore::search_tables`]).
    #[inline(always)]
    fn scan(
        &self,
        query: &Bits<W>,
        r: u32,
        use_tables: bool,
        limit: usize,
        out: &mut Vec<Match>,
    ) -> bool {
        if use_tables {
            self.search_tables(query, r, limit, out)
        } else {
            linear_scan_into(&self.hashes, &self.ids, query, r, out);
            out.len() <= limit
        }
    }

    /// Multi-index search (see `layout` for the pigeonhole bound). Each match is reported by the
    /// first table, in table order, whose probe radius covers it; a later table that meets it
    /// again recomputes the earlier tables' substring distances from the hash and stays silent.
    /// So no per-query "seen" set is needed and searches share the structure read-only.
    ///
    /// The work is a pipeline of four passes over small arrays — bucket keys, bucket runs,
    /// candidates, verification — each prefetching what the next pass reads. Every access is a
    /// likely cache miss at 10M entries; issued one pass ahead they overlap instead of queueing.
    ///
    /// Returns false, with `out` untouched, when pass 3 finds more than `limit` candidates.
    #[inline(always)]
    fn search_tables(&self, query: &Bits<W>, r: u32, limit: usize, out: &mut Vec<Match>) -> bool {
        let m = self.tables.len();
        // Pass 1: every bucket to visit, as (table, bucket, residue budget).
        let mut keys: Vec<(u16, u8, u32)> = Vec::with_capacity(1024);
        let mut query_residues = [0u8; layout::MAX_TABLES];
        for (t, table) in self.tables.iter().enumerate() {
            let Some(k) = layout::table_radius(r, m, t) else {
                continue;
            };
            let spec = table.spec;
            let (center, query_residue) =
                table.split(query.substring(spec.start as usize, spec.bits as usize));
            query_residues[t] = query_residue;
            for_each_within(
                center as u32,
                spec.prefix_bits,
                k,
                0,
                &mut |bucket, used| {
                    prefetch(table.dir.as_ptr().wrapping_add(bucket as usize));
                    keys.push((t as u16, (k - used) as u8, bucket));
                },
            );
        }
        // Pass 2: the runs of the non-empty buckets.
        let mut runs: Vec<(u16, u8, u32, u32)> = Vec::with_capacity(keys.len());
        for &(t, budget, bucket) in &keys {
            let table = &self.tables[t as usize];
            let b = table.dir[bucket as usize];
            if b.len > 0 {
                // Narrow tables read the entry (slot) only for a match.
                if W == 1 {
                    prefetch(table.inline.as_ptr().wrapping_add(b.off as usize));
                } else {
                    prefetch(table.entries.as_ptr().wrapping_add(b.off as usize));
                }
                runs.push((t, budget, b.off, b.len));
            }
        }
        // Pass 3: candidates, as (table, slot).
        let mut candidates: Vec<(u16, u32)> = Vec::with_capacity(runs.len() * 2);
        for &(t, budget, off, len) in &runs {
            let table = &self.tables[t as usize];
            let run = off as usize..(off + len) as usize;
            if W == 1 {
                // Narrow hashes: the whole hash is in the table, so the full distance and the
                // first covering table are checked here, from the table alone: each match is a
                // candidate exactly once, and pass 4 only reads its id.
                // The candidate carries its distance (under 65) where wider hashes carry the
                // table.
                let q0 = query.0[0];
                for (&h, &slot) in table.inline[run.clone()].iter().zip(&table.entries[run]) {
                    let d = (h ^ q0).count_ones();
                    if d > r {
                        continue;
                    }
                    let mut hash = Bits::<W>::zero();
                    hash.0[0] = h;
                    if self.first_table_for(&hash, query, r, t as usize) {
                        prefetch(self.ids.as_ptr().wrapping_add(slot as usize));
                        candidates.push((d as u16, slot));
                    }
                }
            } else {
                let qr = u32::from(query_residues[t as usize]);
                let shift = table.spec.residue_bits();
                let low = ((1u64 << shift) - 1) as u32;
                for &entry in &table.entries[run] {
                    if ((entry & low) ^ qr).count_ones() <= u32::from(budget) {
                        let slot = entry >> shift;
                        prefetch(self.hashes.as_ptr().wrapping_add(slot as usize));
                        candidates.push((t, slot));
                    }
                }
            }
        }
        if candidates.len() > limit {
            return false;
        }
        // Pass 4: full distance, and report from the first covering table only (for narrow
        // hashes both were checked in pass 3; only the id is read).
        for &(t, slot) in &candidates {
            if W == 1 {
                // `t` is the distance here (pass 3).
                out.push((self.ids[slot as usize], u32::from(t)));
                continue;
            }
            let hash = &self.hashes[slot as usize];
            let d = hash.distance(query);
            if d <= r && self.first_table_for(hash, query, r, t as usize) {
                out.push((self.ids[slot as usize], d));
            }
        }
        true
    }

    /// True when `t` is the first table, in table order, whose probe radius covers `hash`: its
    /// substring distance is within `t`'s radius and no earlier table's is within that table's.
    /// (Narrow tables check the full distance, not the residue, so `t` itself is checked too.)
    #[inline(always)]
    fn first_table_for(&self, hash: &Bits<W>, query: &Bits<W>, r: u32, t: usize) -> bool {
        let m = self.tables.len();
        let mut x = *hash;
        for (w, q) in x.0.iter_mut().zip(query.0) {
            *w ^= q;
        }
        let covers = |i: usize| {
            let spec = self.tables[i].spec;
            let d = x
                .substring(spec.start as usize, spec.bits as usize)
                .count_ones();
            layout::table_radius(r, m, i).is_some_and(|k| d <= k)
        };
        covers(t) && !(0..t).any(covers)
    }
}

/// Hints the CPU to start loading the cache line at `p` (no effect on results; `p` may dangle).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Calls `f(v, j)` for every `bits`-bit value `v` at distance `j <= k` from `center`, flipping
/// positions in increasing order from `from` so each value comes once.
#[inline(always)]
fn for_each_within(center: u32, bits: u32, k: u32, from: u32, f: &mut impl FnMut(u32, u32)) {
    fn flips(v: u32, bits: u32, left: u32, used: u32, from: u32, f: &mut impl FnMut(u32, u32)) {
        for pos in from..bits {
            let w = v ^ (1 << pos);
            f(w, used + 1);
            if left > 1 {
                flips(w, bits, left - 1, used + 1, pos + 1, f);
            }
        }
    }
    f(center, 0);
    if k > 0 {
        flips(center, bits, k, 0, from, f);
    }
}

fn sort_matches(out: &mut [Match]) {
    out.sort_unstable_by_key(|&(id, d)| (d, id));
}

/// Plain linear scan: every (id, distance) within `max_distance`, sorted by distance then id.
/// This is the reference the benchmark compares the index against.
pub fn linear_scan<const W: usize>(
    hashes: &[Bits<W>],
    ids: &[u64],
    query: &Bits<W>,
    max_distance: u32,
) -> Vec<Match> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has just been checked for the feature the function enables.
        unsafe { linear_scan_popcnt(hashes, ids, query, max_distance, &mut out) };
        sort_matches(&mut out);
        return out;
    }
    linear_scan_into(hashes, ids, query, max_distance, &mut out);
    sort_matches(&mut out);
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn linear_scan_popcnt<const W: usize>(
    hashes: &[Bits<W>],
    ids: &[u64],
    query: &Bits<W>,
    r: u32,
    out: &mut Vec<Match>,
) {
    linear_scan_into(hashes, ids, query, r, out)
}

#[inline(always)]
fn linear_scan_into<const W: usize>(
    hashes: &[Bits<W>],
    ids: &[u64],
    query: &Bits<W>,
    r: u32,
    out: &mut Vec<Match>,
) {
    for (h, &id) in hashes.iter().zip(ids) {
        let d = h.distance(query);
        if d <= r {
            out.push((id, d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerates_each_value_within_k_once() {
        for bits in 0..=10u32 {
            for k in 0..=4 {
                let mut seen = std::collections::HashMap::new();
                for_each_within(0b101 & ((1u32 << bits) - 1), bits, k, 0, &mut |v, j| {
                    *seen.entry(v).or_insert(0) += 1;
                    assert_eq!((v ^ (0b101 & ((1u32 << bits) - 1))).count_ones(), j);
                });
                assert!(seen.values().all(|&c| c == 1));
                assert_eq!(seen.len() as f64, layout::ball_size(bits, k));
            }
        }
    }
}

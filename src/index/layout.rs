//! Substring layout of the multi-index and the cost model that picks it.
//!
//! # Multi-index hashing
//!
//! Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index Hashing" (CVPR 2012).
//! A `B`-bit hash is cut into `m` disjoint substrings that together cover all `B` bits, so the
//! Hamming distance `d(h, q)` is the sum of the `m` substring distances `d_t(h, q)`.
//!
//! **Pigeonhole, generalised (paper, section 4).** Write the query radius as `r = a*m + b` with
//! `0 <= b < m`. If `d(h, q) <= r` then some table `t <= b` has `d_t <= a`, or some table `t > b`
//! has `d_t <= a - 1`. Proof: otherwise every `t <= b` has `d_t >= a + 1` and every other `t` has
//! `d_t >= a`, so `d = sum d_t >= (b + 1)(a + 1) + (m - b - 1)a = a*m + b + 1 > r`. The bound holds
//! for every `r` and every `m`; the search therefore probes table `t` with radius
//! [`table_radius`]`(r, m, t)` (`a` or `a - 1`, none when that is negative) and finds every hash
//! within `r`. It is sharper than the plain `floor(r/m)` per table: at `m = 11, r = 31` ten tables
//! are probed at radius 2 and one at radius 1.
//!
//! **Buckets.** Table `t` keeps every entry under the top `prefix_bits` bits of its substring
//! (a directly addressed bucket); the remaining `residue_bits` low bits are stored beside the entry
//! (for 256-bit hashes, one byte) or, for 64-bit hashes, the whole hash is stored beside the entry.
//! Probing substring radius `k` visits every prefix within `k` of the query's prefix and, within
//! a bucket whose prefix differs in `j` bits, keeps entries whose residue differs in at most
//! `k - j` bits: exactly the entries with `d_t <= k`.
//!
//! **Choosing `m` and `prefix_bits`.** [`choose`] minimises the estimated cost of one query at the
//! design size and radius (see [`Layout::search_cost_ns`]), and keeps the bucket directory small
//! (at most one bucket per 8 entries). The index re-plans when the bank grows or shrinks by 4x.

/// Hashes this narrow carry their whole value in every table, so a bucket scan is also the final
/// distance check (no random access into the hash array).
pub(crate) const INLINE_FULL_MAX_BITS: u32 = 64;
/// Residue bits stored per entry when the hash is not inlined (one byte).
pub(crate) const MAX_RESIDUE_BITS: u32 = 8;

/// Most tables a layout may have.
pub const MAX_TABLES: usize = 64;

/// One table: the substring `[start, start + bits)` of the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TableSpec {
    /// First bit of the substring (bit numbering of [`crate::bits`]).
    pub start: u32,
    /// Length of the substring in bits, 1..=32.
    pub bits: u32,
    /// Bits of the substring addressing the bucket directory (the high ones).
    pub prefix_bits: u32,
}

impl TableSpec {
    /// The low bits of the substring kept beside each entry rather than in the bucket number:
    /// `bits - prefix_bits`.
    pub fn residue_bits(&self) -> u32 {
        self.bits - self.prefix_bits
    }
}

/// The index's plan: which substrings, for how large a bank. No tables means linear scan only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    /// Width of the hashes, in bits (64 or 256 in vigie).
    pub hash_bits: u32,
    /// Bank size the layout was chosen for.
    pub design_entries: usize,
    /// The substrings in bit order, contiguous and covering `hash_bits`; empty for linear scan.
    pub tables: Vec<TableSpec>,
}

/// Radius at which table `t` of `m` is probed for query radius `r`, or `None` when the
/// generalised pigeonhole bound (module docs) says the table need not be probed.
pub fn table_radius(r: u32, m: usize, t: usize) -> Option<u32> {
    let m = m as u32;
    let (a, b) = (r / m, r % m);
    if t as u32 <= b {
        Some(a)
    } else {
        a.checked_sub(1)
    }
}

/// Number of `n`-bit strings within distance `k` of a given one: `sum_{i<=k} C(n, i)`.
pub fn ball_size(n: u32, k: u32) -> f64 {
    let mut total = 0.0;
    let mut c = 1.0;
    for i in 0..=k.min(n) {
        total += c;
        c = c * f64::from(n - i) / f64::from(i + 1);
    }
    total
}

// Cost model, in nanoseconds, fitted on this machine class (2-core VM, ~100 ns DRAM latency,
// several misses in flight): a bucket visit is two dependent misses (directory, then entries),
// a candidate verified against the hash array is one miss, scanned entries are sequential.
const NS_PER_BUCKET_VISIT: f64 = 60.0;
const NS_PER_SCANNED_ENTRY: f64 = 0.8;
const NS_PER_CANDIDATE: f64 = 25.0;

/// Estimated cost of a linear scan of `n` hashes of `hash_bits` bits (bandwidth bound).
pub fn linear_cost_ns(hash_bits: u32, n: usize) -> f64 {
    let bytes = f64::from(hash_bits / 8);
    n as f64 * (0.4 + bytes * 0.07)
}

impl Layout {
    /// A layout without tables: every search is a linear scan.
    pub fn linear(hash_bits: u32, design_entries: usize) -> Self {
        Layout {
            hash_bits,
            design_entries,
            tables: Vec::new(),
        }
    }

    /// `m` substrings covering all bits, lengths differing by at most one, each with
    /// `prefix_for(substring bits)` prefix bits. [`choose`] picks among these; tests pin one.
    pub fn even(
        hash_bits: u32,
        m: u32,
        design_entries: usize,
        prefix_for: impl Fn(u32) -> u32,
    ) -> Self {
        let base = hash_bits / m;
        let extra = hash_bits % m;
        let mut start = 0;
        let tables = (0..m)
            .map(|t| {
                let bits = base + u32::from(t < extra);
                let spec = TableSpec {
                    start,
                    bits,
                    prefix_bits: prefix_for(bits),
                };
                start += bits;
                spec
            })
            .collect();
        Layout {
            hash_bits,
            design_entries,
            tables,
        }
    }

    /// Whether the tables store each entry's whole hash (hashes of at most 64 bits) instead of
    /// a residue of at most 8 bits.
    pub fn inline_full(&self) -> bool {
        self.hash_bits <= INLINE_FULL_MAX_BITS
    }

    /// Estimated nanoseconds of one query at radius `r` over `n` entries with this layout;
    /// infinite for a layout without tables.
    pub fn search_cost_ns(&self, n: usize, r: u32) -> f64 {
        if self.tables.is_empty() {
            return f64::INFINITY;
        }
        let m = self.tables.len();
        let n = n as f64;
        let mut cost = 0.0;
        for (t, spec) in self.tables.iter().enumerate() {
            let Some(k) = table_radius(r, m, t) else {
                continue;
            };
            let visits = ball_size(spec.prefix_bits, k);
            let per_bucket = n / 2f64.powi(spec.prefix_bits as i32);
            // Entries whose substring lies within k: the candidates of this table.
            let candidates = n * ball_size(spec.bits, k) / 2f64.powi(spec.bits as i32);
            let scan_weight = if self.inline_full() { 1.5 } else { 1.0 };
            cost += visits * NS_PER_BUCKET_VISIT
                + visits * per_bucket * NS_PER_SCANNED_ENTRY * scan_weight;
            if !self.inline_full() {
                cost += candidates * NS_PER_CANDIDATE;
            }
        }
        cost
    }

    /// Whether a query at radius `r` over `n` entries is cheaper through the tables than by a scan.
    pub fn prefers_tables(&self, n: usize, r: u32) -> bool {
        r < self.hash_bits && self.search_cost_ns(n, r) < linear_cost_ns(self.hash_bits, n)
    }
}

/// Bank sizes below this are always scanned linearly (a scan of 2k hashes takes a few microseconds).
pub const MIN_TABLE_ENTRIES: usize = 2048;

/// The layout for a bank of about `design_entries` hashes of `hash_bits` bits searched at about
/// `design_radius`.
pub fn choose(hash_bits: u32, design_entries: usize, design_radius: u32) -> Layout {
    if design_entries < MIN_TABLE_ENTRIES {
        return Layout::linear(hash_bits, design_entries);
    }
    // At most one bucket per 8 entries keeps the directories (12 bytes a bucket) near 1.5 bytes
    // per entry per table.
    let max_prefix = (design_entries / 8).max(1).ilog2();
    let inline = hash_bits <= INLINE_FULL_MAX_BITS;
    // Wide entries pack `slot << residue | residue` into a u32: leave room for the slots of a bank
    // 4x the design size (the index re-plans before it grows past that).
    let slot_bits = (design_entries.saturating_mul(4) + 1)
        .next_power_of_two()
        .ilog2();
    let max_residue = MAX_RESIDUE_BITS.min(32u32.saturating_sub(slot_bits));
    let prefix_for = |bits: u32| {
        let p = bits.min(max_prefix);
        if inline {
            p
        } else {
            p.max(bits.saturating_sub(max_residue))
        }
    };
    let min_m = hash_bits.div_ceil(32);
    let mut best: Option<(f64, Layout)> = None;
    for m in min_m..=hash_bits.min(MAX_TABLES as u32) {
        let layout = Layout::even(hash_bits, m, design_entries, prefix_for);
        // Directory memory: reject layouts whose residue rule forces more buckets than entries/2.
        let dir_buckets: f64 = layout
            .tables
            .iter()
            .map(|t| 2f64.powi(t.prefix_bits as i32))
            .sum();
        if dir_buckets > design_entries as f64 * m as f64 / 2.0 {
            continue;
        }
        let cost = layout.search_cost_ns(design_entries, design_radius);
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, layout));
        }
    }
    match best {
        Some((cost, layout)) if cost < linear_cost_ns(hash_bits, design_entries) => layout,
        _ => Layout::linear(hash_bits, design_entries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pigeonhole_radii_sum_below_r_plus_one() {
        // The bound is tight: (radius+1) summed over probed tables plus the unprobed tables'
        // minimum of 0 must exceed r, for every r and m.
        for m in 1..=40usize {
            for r in 0..=256u32 {
                let sum: u32 = (0..m)
                    .map(|t| table_radius(r, m, t).map_or(0, |k| k + 1))
                    .sum();
                assert_eq!(sum, r + 1, "m={m} r={r}");
            }
        }
    }

    #[test]
    fn layouts_cover_all_bits() {
        for (bits, n, r) in [
            (256, 10_000_000, 31),
            (256, 100_000, 31),
            (64, 10_000_000, 10),
            (64, 5000, 3),
        ] {
            let l = choose(bits, n, r);
            let mut next = 0;
            for t in &l.tables {
                assert_eq!(t.start, next);
                assert!(t.bits <= 32 && t.prefix_bits <= t.bits);
                if bits > INLINE_FULL_MAX_BITS {
                    assert!(t.residue_bits() <= MAX_RESIDUE_BITS);
                }
                next += t.bits;
            }
            assert!(l.tables.is_empty() || next == bits);
        }
    }

    #[test]
    fn ball_sizes() {
        assert_eq!(ball_size(16, 1), 17.0);
        assert_eq!(ball_size(23, 2), 277.0);
        assert_eq!(ball_size(3, 10), 8.0);
        assert_eq!(ball_size(0, 0), 1.0);
    }
}

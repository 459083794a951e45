//! The index against brute force: uniform banks, clustered near-duplicate families, many copies of
//! one hash, every radius from 0 to the full width, and interleaved inserts, deletes and searches.
//! Small banks reach the multi-index path through pinned layouts (the planner would scan them
//! linearly); larger ones go through the planner's own choice.

use proptest::prelude::*;
use vigie::bench::synth::{self, BankKind, SplitMix64};
use vigie::bits::Bits;
use vigie::index::{HammingIndex, IndexCore, Layout, SearchPath};

/// Reference: every (id, distance) within `r`, sorted like the index sorts.
fn brute<const W: usize>(bank: &[(Bits<W>, u64)], q: &Bits<W>, r: u32) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = bank
        .iter()
        .map(|(h, id)| {
            (
                *id,
                h.0.iter()
                    .zip(q.0)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum::<u32>(),
            )
        })
        .filter(|&(_, d)| d <= r)
        .collect();
    out.sort_unstable_by_key(|&(id, d)| (d, id));
    out
}

/// A layout with `m` substrings and about `prefix` prefix bits per table (wide hashes keep at
/// most 8 residue bits).
fn layout(hash_bits: u32, m: u32, prefix: u32) -> Layout {
    Layout::even(hash_bits, m, 0, |bits| {
        let p = prefix.min(bits);
        if hash_bits > 64 {
            p.max(bits.saturating_sub(8))
        } else {
            p
        }
    })
}

fn check_all_paths<const W: usize>(
    index: &IndexCore<W>,
    bank: &[(Bits<W>, u64)],
    q: &Bits<W>,
    r: u32,
) {
    let want = brute(bank, q, r);
    for path in [SearchPath::Tables, SearchPath::Auto, SearchPath::Linear] {
        let got = index.search_with(q, r, path);
        assert_eq!(
            got,
            want,
            "path {path:?}, radius {r}, query {q}, layout {:?}",
            index.layout()
        );
    }
    // The limited search: the same answer when the limit allows it, none when fewer than the
    // entries within the radius are allowed; for 64-bit hashes the limit counts them exactly.
    assert_eq!(index.search_at_most(q, r, usize::MAX).as_ref(), Some(&want));
    if let Some(fewer) = want.len().checked_sub(1) {
        assert_eq!(index.search_at_most(q, r, fewer), None, "radius {r}");
    }
    if W == 1 {
        assert_eq!(index.search_at_most(q, r, want.len()).as_ref(), Some(&want));
    }
}

/// A bank of `n` hashes of the given kind, with ids 1000.. and a few queries near it.
fn bank_and_queries<const W: usize>(
    kind: BankKind,
    n: usize,
    seed: u64,
    radius: u32,
) -> (Vec<(Bits<W>, u64)>, Vec<Bits<W>>) {
    let mut rng = SplitMix64::new(seed);
    let hashes: Vec<Bits<W>> = synth::bank(kind, n, &mut rng);
    let queries = synth::queries(&hashes, 12, radius, &mut rng);
    (hashes.into_iter().zip(1000..).collect(), queries)
}

fn wide_layouts() -> impl Strategy<Value = (u32, u32)> {
    (prop::sample::select(vec![11u32, 12, 16, 21, 32]), 0u32..=16)
}

fn narrow_layouts() -> impl Strategy<Value = (u32, u32)> {
    (2u32..=8, 0u32..=12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn wide_uniform_and_families(
        seed in any::<u64>(),
        n in 0usize..400,
        families in any::<bool>(),
        (m, prefix) in wide_layouts(),
        radius in prop_oneof![0u32..=40, 0u32..=256],
    ) {
        let kind = if families { BankKind::NearDuplicates } else { BankKind::Uniform };
        let (bank, queries) = bank_and_queries::<4>(kind, n, seed, radius);
        let mut index = IndexCore::<4>::new(31);
        index.extend(bank.iter().copied()).unwrap();
        index.pin_layout(layout(256, m, prefix)).unwrap();
        for q in &queries {
            check_all_paths(&index, &bank, q, radius);
        }
    }

    #[test]
    fn narrow_uniform_and_families(
        seed in any::<u64>(),
        n in 0usize..400,
        families in any::<bool>(),
        (m, prefix) in narrow_layouts(),
        radius in prop_oneof![0u32..=16, 0u32..=64],
    ) {
        let kind = if families { BankKind::NearDuplicates } else { BankKind::Uniform };
        let (bank, queries) = bank_and_queries::<1>(kind, n, seed, radius);
        let mut index = IndexCore::<1>::new(10);
        index.extend(bank.iter().copied()).unwrap();
        index.pin_layout(layout(64, m, prefix)).unwrap();
        for q in &queries {
            check_all_paths(&index, &bank, q, radius);
        }
    }

    #[test]
    fn many_copies_of_one_hash(
        seed in any::<u64>(),
        copies in 1usize..300,
        others in 0usize..50,
        (m, prefix) in wide_layouts(),
        radius in prop_oneof![0u32..=3, 0u32..=256],
    ) {
        let mut rng = SplitMix64::new(seed);
        let one: Bits<4> = rng.hash();
        let mut bank: Vec<(Bits<4>, u64)> = (0..copies as u64).map(|id| (one, id)).collect();
        bank.extend((0..others as u64).map(|i| (rng.flip(&one, (i % 40) as u32), 10_000 + i)));
        let mut index = IndexCore::<4>::new(31);
        index.extend(bank.iter().copied()).unwrap();
        index.pin_layout(layout(256, m, prefix)).unwrap();
        let near = rng.flip(&one, radius.min(5));
        for q in [one, near, rng.hash()] {
            check_all_paths(&index, &bank, &q, radius);
        }
    }

    /// Inserts, deletes and searches in any order, with the planner free to re-plan (unpinned) or
    /// a pinned layout whose small prefixes make buckets grow, move and compact.
    #[test]
    fn interleaved_updates(
        seed in any::<u64>(),
        ops in prop::collection::vec((0u8..10, any::<u64>()), 1..600),
        pinned in prop::option::of((prop::sample::select(vec![11u32, 16, 32]), 0u32..=4)),
    ) {
        let mut rng = SplitMix64::new(seed);
        let pool: Vec<Bits<4>> = synth::bank(BankKind::NearDuplicates, 64, &mut rng);
        let mut index = IndexCore::<4>::new(31);
        if let Some((m, prefix)) = pinned {
            index.pin_layout(layout(256, m, prefix)).unwrap();
        }
        let mut model: Vec<(Bits<4>, u64)> = Vec::new();
        for (op, x) in ops {
            match op {
                0..=5 => {
                    let entry = (pool[(x % 64) as usize], x % 97);
                    index.insert(entry.0, entry.1).unwrap();
                    model.push(entry);
                }
                6..=7 if !model.is_empty() => {
                    let (hash, id) = model.swap_remove((x % model.len() as u64) as usize);
                    prop_assert!(index.remove(&hash, id));
                }
                6..=7 => prop_assert!(!index.remove(&pool[0], 5)),
                _ => {
                    let q = rng.flip(&pool[(x % 64) as usize], (x % 24) as u32);
                    check_all_paths(&index, &model, &q, (x % 40) as u32);
                }
            }
            prop_assert_eq!(index.len(), model.len());
        }
        // Removing a pair that is not there changes nothing.
        let absent: Bits<4> = rng.hash();
        prop_assert!(!index.remove(&absent, 1));
        for q in pool.iter().take(8) {
            check_all_paths(&index, &model, q, 31);
        }
    }
}

/// Banks large enough for the planner to build tables on its own, both widths, both bank kinds,
/// radii across the whole range.
#[test]
fn planner_layouts_match_brute_force() {
    for (kind, n) in [
        (BankKind::Uniform, 20_000),
        (BankKind::NearDuplicates, 20_000),
    ] {
        let (bank, queries) = bank_and_queries::<4>(kind, n, 7, 31);
        let mut index = IndexCore::<4>::new(31);
        index.extend(bank.iter().copied()).unwrap();
        assert!(
            !index.layout().tables.is_empty(),
            "20k PDQ hashes should get tables"
        );
        for (i, q) in queries.iter().enumerate() {
            for r in [0, 1, 15, 31, 32, 47, 64, 100, 255, 256] {
                if i < 3 || r <= 47 {
                    check_all_paths(&index, &bank, q, r);
                }
            }
        }

        let (bank, queries) = bank_and_queries::<1>(kind, n, 8, 10);
        let mut index = IndexCore::<1>::new(10);
        index.extend(bank.iter().copied()).unwrap();
        assert!(
            !index.layout().tables.is_empty(),
            "20k 64-bit hashes should get tables"
        );
        for q in &queries {
            for r in [0, 1, 5, 10, 11, 16, 24, 63, 64] {
                check_all_paths(&index, &bank, q, r);
            }
        }
    }
}

/// Growing one insert at a time through several re-plans, then shrinking by removal through
/// re-plans the other way, stays exact.
#[test]
fn replanning_while_growing_and_shrinking() {
    let mut rng = SplitMix64::new(3);
    let hashes: Vec<Bits<4>> = synth::bank(BankKind::NearDuplicates, 12_000, &mut rng);
    let mut index = IndexCore::<4>::new(31);
    let mut model = Vec::new();
    let mut layouts = Vec::new();
    for (id, h) in hashes.iter().enumerate() {
        index.insert(*h, id as u64).unwrap();
        model.push((*h, id as u64));
        if layouts.last() != Some(&index.layout().tables.len()) {
            layouts.push(index.layout().tables.len());
        }
        if id.is_multiple_of(1500) {
            check_all_paths(&index, &model, h, 31);
        }
    }
    assert!(
        layouts.len() >= 2,
        "expected re-plans while growing, saw {layouts:?}"
    );
    while model.len() > 100 {
        let (h, id) = model.swap_remove(model.len() / 2);
        assert!(index.remove(&h, id));
        if model.len().is_multiple_of(997) {
            check_all_paths(&index, &model, &h, 31);
        }
    }
    assert!(
        index.layout().tables.is_empty(),
        "a 100-entry bank is scanned linearly"
    );
    check_all_paths(&index, &model, &hashes[0], 40);
}

#[test]
fn an_entry_added_after_a_bulk_load_grows_the_index_by_an_eighth_at_most() {
    // A bank loaded at start-up fills its arrays exactly; the first entry a trust team adds
    // must not double them (a million image entries' keypoint index is gigabytes).
    let mut rng = SplitMix64::new(7);
    let bank: Vec<Bits<1>> = synth::bank(BankKind::Uniform, 100_000, &mut rng);
    let index = HammingIndex::<1>::from_entries(bank.iter().copied().zip(0..)).unwrap();
    let loaded = index.heap_bytes();
    let added = Bits([0x0123_4567_89AB_CDEF]);
    index.insert(added, 1_000_000).unwrap();
    let grown = index.heap_bytes();
    assert!(
        grown as f64 <= loaded as f64 * 1.15,
        "{loaded} -> {grown} bytes for one entry"
    );
    // Found at once, and the bank is still all there.
    assert!(index.search(&added, 0).contains(&(1_000_000, 0)));
    assert_eq!(index.search(&bank[4321], 0).first(), Some(&(4321, 0)));
}

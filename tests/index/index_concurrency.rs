//! Concurrency semantics of `HammingIndex`: a write is visible to every search that starts after
//! the write returns, and searches running during writes see consistent results.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;

use vigie::bench::synth::{self, BankKind, SplitMix64};
use vigie::bits::{Bits, Hash256};
use vigie::index::HammingIndex;

/// A writer inserts, then hands each (hash, id) to a reader only after `insert` returned: the
/// reader's search, started afterwards, must find it — across the re-plans at 2k and 8k entries.
#[test]
fn insert_is_visible_to_searches_started_after_it_returns() {
    let index = Arc::new(HammingIndex::<4>::new());
    let (tx, rx) = mpsc::channel::<(Hash256, u64)>();
    let writer = {
        let index = Arc::clone(&index);
        thread::spawn(move || {
            let mut rng = SplitMix64::new(11);
            for id in 0..10_000u64 {
                let h: Hash256 = rng.hash();
                index.insert(h, id).unwrap();
                tx.send((h, id)).unwrap();
            }
        })
    };
    let mut seen = 0;
    for (h, id) in rx {
        let found = index.search(&h, 0);
        assert!(
            found.contains(&(id, 0)),
            "entry {id} inserted but not found"
        );
        seen += 1;
    }
    writer.join().unwrap();
    assert_eq!(seen, 10_000);
    assert_eq!(index.len(), 10_000);
    assert!(!index.layout().tables.is_empty());
}

/// Same for removal: once `remove` returned, no search finds the pair.
#[test]
fn removal_is_visible_to_searches_started_after_it_returns() {
    let mut rng = SplitMix64::new(12);
    let bank: Vec<Bits<1>> = synth::bank(BankKind::NearDuplicates, 6000, &mut rng);
    let index = Arc::new(HammingIndex::<1>::from_entries(bank.iter().copied().zip(0..)).unwrap());
    let (tx, rx) = mpsc::channel::<(Bits<1>, u64)>();
    let writer = {
        let index = Arc::clone(&index);
        let bank = bank.clone();
        thread::spawn(move || {
            for (id, h) in bank.iter().enumerate().step_by(3) {
                assert!(index.remove(h, id as u64));
                tx.send((*h, id as u64)).unwrap();
            }
        })
    };
    for (h, id) in rx {
        let found = index.search(&h, 3);
        assert!(
            found.iter().all(|&(i, _)| i != id),
            "entry {id} removed but still found"
        );
    }
    writer.join().unwrap();
    assert_eq!(index.len(), 6000 - 2000);
}

/// Readers hammer the index while a writer inserts and removes; every answer a reader gets is
/// exact for some state: the fixed entries are always there with their true distance, and any
/// other result is a real entry at its true distance.
#[test]
fn searches_during_writes_stay_consistent() {
    let mut rng = SplitMix64::new(13);
    let fixed: Vec<Hash256> = synth::bank(BankKind::Uniform, 3000, &mut rng);
    let churn: Vec<Hash256> = (0..3000)
        .map(|i| rng.flip(&fixed[i % 50], 1 + (i % 20) as u32))
        .collect();
    let index = Arc::new(HammingIndex::<4>::from_entries(fixed.iter().copied().zip(0..)).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (index, done, fixed, churn) = (
                Arc::clone(&index),
                Arc::clone(&done),
                fixed.clone(),
                churn.clone(),
            );
            thread::spawn(move || {
                let mut rounds = 0;
                while !done.load(Ordering::Acquire) || rounds < 50 {
                    let q = fixed[(rounds * 7 + r) % 50];
                    for (id, d) in index.search(&q, 31) {
                        let stored = if id < 3000 {
                            fixed[id as usize]
                        } else {
                            churn[(id - 3000) as usize]
                        };
                        assert_eq!(stored.distance(&q), d);
                    }
                    assert!(
                        index
                            .search(&q, 0)
                            .contains(&(((rounds * 7 + r) % 50) as u64, 0))
                    );
                    rounds += 1;
                }
            })
        })
        .collect();
    for (i, h) in churn.iter().enumerate() {
        index.insert(*h, 3000 + i as u64).unwrap();
        if !i.is_multiple_of(2) {
            assert!(index.remove(&churn[i - 1], 3000 + i as u64 - 1));
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(index.len(), 3000 + 1500);
}

/// Growing one insert at a time through re-plans (built off the write lock) keeps every entry
/// findable, and the layout does change on the way.
#[test]
fn replans_through_the_locked_index_stay_exact() {
    let index = HammingIndex::<1>::new();
    let mut rng = SplitMix64::new(14);
    let bank: Vec<Bits<1>> = synth::bank(BankKind::Uniform, 40_000, &mut rng);
    let mut layouts = vec![index.layout().tables.len()];
    for (id, h) in bank.iter().enumerate() {
        index.insert(*h, id as u64).unwrap();
        let m = index.layout().tables.len();
        if layouts.last() != Some(&m) {
            layouts.push(m);
        }
    }
    assert!(layouts.len() >= 2, "no re-plan seen: {layouts:?}");
    for (id, h) in bank.iter().enumerate().step_by(97) {
        assert!(index.search(h, 0).contains(&(id as u64, 0)));
    }
    for (id, h) in bank.iter().enumerate().skip(100) {
        assert!(index.remove(h, id as u64));
    }
    assert!(
        index.layout().tables.is_empty(),
        "100 entries are scanned linearly"
    );
    for (id, h) in bank.iter().enumerate().take(100) {
        assert_eq!(index.search(h, 0), vec![(id as u64, 0)]);
    }
}

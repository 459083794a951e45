//! The bank store's behaviour, on both backends (in-memory and RocksDB).

use vigie::store::load::{HashList, load_into};
use vigie::store::{
    Algorithm, AuditAction, AuditFilter, BankKind, BankUpdate, EntryHashes, HashValue,
    MaxDistances, NewBank, NewEntry, RocksOptions, Store, StoreError, Timestamp,
};

fn pdq(seed: u64) -> HashValue {
    HashValue::parse(
        Algorithm::Pdq,
        &format!(
            "{seed:016x}{:016x}{:016x}{:016x}",
            seed ^ 1,
            seed ^ 2,
            seed ^ 3
        ),
    )
    .unwrap()
}

fn entry(external_id: &str, hash: HashValue) -> NewEntry {
    let mut hashes = EntryHashes::default();
    hashes.set(hash);
    NewEntry {
        external_id: external_id.into(),
        hashes,
        label: "l".into(),
        source: "internal".into(),
        ..NewEntry::default()
    }
}

/// Run `check` on a fresh in-memory store and a fresh RocksDB store.
fn on_both(check: impl Fn(&Store)) {
    check(&Store::in_memory());
    let dir = tempfile::tempdir().unwrap();
    check(&Store::open(dir.path(), &RocksOptions::default()).unwrap());
}

fn bank(store: &Store, name: &str) {
    store
        .create_bank(
            NewBank {
                name: name.into(),
                ..NewBank::default()
            },
            "tester",
        )
        .unwrap();
}

#[test]
fn bank_lifecycle_and_validation() {
    on_both(|s| {
        let b = s
            .create_bank(
                NewBank {
                    name: "ads-1".into(),
                    kind: BankKind::Allow,
                    ..NewBank::default()
                },
                "alice",
            )
            .unwrap();
        assert_eq!(b.kind, BankKind::Allow);
        assert!(b.enabled);
        assert_eq!(
            b.max_distance,
            MaxDistances {
                pdq: 31,
                phash: 8,
                dhash: 8,
                md5: 0,
                sha256: 0
            }
        );
        assert!(matches!(
            s.create_bank(
                NewBank {
                    name: "ads-1".into(),
                    ..NewBank::default()
                },
                "alice"
            ),
            Err(StoreError::BankExists(_))
        ));
        for bad in ["", "has space", "é", &"x".repeat(65), "a/b"] {
            assert!(
                matches!(
                    s.create_bank(
                        NewBank {
                            name: bad.into(),
                            ..NewBank::default()
                        },
                        "a"
                    ),
                    Err(StoreError::Invalid(_))
                ),
                "{bad:?} accepted"
            );
        }
        let too_far = MaxDistances {
            pdq: 257,
            ..MaxDistances::default()
        };
        assert!(
            s.create_bank(
                NewBank {
                    name: "x".into(),
                    max_distance: Some(too_far),
                    ..NewBank::default()
                },
                "a"
            )
            .is_err()
        );
        let exact_fuzzy = MaxDistances {
            md5: 1,
            ..MaxDistances::default()
        };
        assert!(
            s.update_bank(
                "ads-1",
                BankUpdate {
                    max_distance: Some(exact_fuzzy),
                    ..BankUpdate::default()
                },
                "a"
            )
            .is_err()
        );

        let updated = s
            .update_bank(
                "ads-1",
                BankUpdate {
                    description: Some("d".into()),
                    enabled: Some(false),
                    ..BankUpdate::default()
                },
                "bob",
            )
            .unwrap();
        assert_eq!(updated.description, "d");
        assert!(!updated.enabled);
        assert!(updated.updated_at >= b.updated_at);
        assert_eq!(s.get_bank("ads-1").unwrap().unwrap(), updated);
        assert_eq!(s.list_banks().unwrap().len(), 1);
        assert!(matches!(
            s.update_bank("nope", BankUpdate::default(), "a"),
            Err(StoreError::BankNotFound(_))
        ));
    });
}

#[test]
fn adding_an_external_id_again_updates_it() {
    on_both(|s| {
        bank(s, "b");
        let first = s
            .upsert_entries("b", vec![entry("x1", pdq(1)), entry("x2", pdq(2))], "alice")
            .unwrap();
        assert!(first.iter().all(|u| u.added));
        assert_ne!(first[0].id, first[1].id);
        let mut changed = entry("x1", pdq(3));
        changed.label = "new".into();
        let again = s.upsert_entries("b", vec![changed], "bob").unwrap();
        assert_eq!(again[0].id, first[0].id);
        assert!(!again[0].added);
        assert_eq!(
            again[0].previous.as_ref().and_then(|h| h.pdq),
            Some(match pdq(1) {
                HashValue::Pdq(h) => h,
                _ => unreachable!(),
            })
        );
        let e = s.get_entry(first[0].id).unwrap().unwrap();
        assert_eq!(e.label, "new");
        assert_eq!(e.hashes.get(Algorithm::Pdq), Some(pdq(3)));
        // Provenance of the first add is kept on update.
        assert_eq!(e.added_by, "alice");
        assert_eq!(s.count_entries("b").unwrap(), 2);
        // The same external id twice in one batch: one entry, the later one wins.
        let dup = s
            .upsert_entries("b", vec![entry("x3", pdq(4)), entry("x3", pdq(5))], "a")
            .unwrap();
        assert_eq!(dup[0].id, dup[1].id);
        assert!(dup[0].added && !dup[1].added);
        assert_eq!(
            s.find_entry("b", "x3")
                .unwrap()
                .unwrap()
                .hashes
                .get(Algorithm::Pdq),
            Some(pdq(5))
        );
        assert_eq!(s.count_entries("b").unwrap(), 3);
        // Same external id in another bank is another entry.
        bank(s, "c");
        let other = s
            .upsert_entries("c", vec![entry("x1", pdq(1))], "a")
            .unwrap();
        assert!(other[0].added);
        assert_ne!(other[0].id, first[0].id);
    });
}

#[test]
fn invalid_entries_are_refused_whole() {
    on_both(|s| {
        bank(s, "b");
        let no_hash = NewEntry {
            external_id: "x".into(),
            ..NewEntry::default()
        };
        assert!(matches!(
            s.upsert_entries("b", vec![entry("ok", pdq(1)), no_hash], "a"),
            Err(StoreError::Invalid(_))
        ));
        assert!(s.upsert_entries("b", vec![entry("", pdq(1))], "a").is_err());
        assert!(
            s.upsert_entries("b", vec![entry(&"x".repeat(600), pdq(1))], "a")
                .is_err()
        );
        assert!(
            s.upsert_entries("b", vec![entry("ok", pdq(1))], "")
                .is_err()
        );
        assert!(matches!(
            s.upsert_entries("zz", vec![entry("ok", pdq(1))], "a"),
            Err(StoreError::BankNotFound(_))
        ));
        assert_eq!(s.count_entries("b").unwrap(), 0);
    });
}

#[test]
fn remove_disable_and_the_load_see_the_same_entries() {
    on_both(|s| {
        bank(s, "b");
        bank(s, "off");
        let ids: Vec<u64> = s
            .upsert_entries(
                "b",
                (0..10).map(|i| entry(&format!("e{i}"), pdq(i))).collect(),
                "a",
            )
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect();
        s.upsert_entries("off", vec![entry("o", pdq(99))], "a")
            .unwrap();
        s.update_bank(
            "off",
            BankUpdate {
                enabled: Some(false),
                ..BankUpdate::default()
            },
            "a",
        )
        .unwrap();
        let removed = s.remove_entries("b", &ids[..2], "a").unwrap();
        assert_eq!(removed.len(), 2);
        assert!(s.get_entry(ids[0]).unwrap().is_none());
        assert!(s.find_entry("b", "e0").unwrap().is_none());
        // Removing an id that is not in the bank refuses the whole call.
        assert!(matches!(
            s.remove_entries("b", &[ids[2], ids[0]], "a"),
            Err(StoreError::EntryNotFound(_))
        ));
        assert!(s.get_entry(ids[2]).unwrap().is_some());
        let now = Timestamp::now();
        s.set_entries_disabled("b", &[ids[2]], Some(Timestamp(now.0 + 3_600_000_000)), "a")
            .unwrap();
        s.set_entries_disabled("b", &[ids[3]], Some(Timestamp(now.0 - 1)), "a")
            .unwrap(); // already expired
        let mut list = HashList::default();
        let stats = load_into(s, now, &mut list).unwrap();
        let loaded: Vec<u64> = list.0.iter().map(|(id, _)| *id).collect();
        let expected: Vec<u64> = ids[3..].to_vec();
        assert_eq!(
            loaded, expected,
            "id order, without removed, disabled or disabled-bank entries"
        );
        assert_eq!(stats.entries, 7);
        assert_eq!(list.0[0].1, pdq(3));
        s.set_entries_disabled("b", &[ids[2]], None, "a").unwrap();
        let mut list = HashList::default();
        assert_eq!(load_into(s, now, &mut list).unwrap().entries, 8);
        // Deleting a bank removes its entries and reports them.
        let gone = s.delete_bank("b", "a").unwrap();
        assert_eq!(gone.len(), 8);
        assert!(s.get_entry(ids[5]).unwrap().is_none());
        assert!(s.get_bank("b").unwrap().is_none());
        // Ids are never reused, even after the newest entry is deleted.
        bank(s, "b");
        let fresh = s
            .upsert_entries("b", vec![entry("n", pdq(7))], "a")
            .unwrap();
        assert!(fresh[0].id > *ids.iter().max().unwrap());
    });
}

#[test]
fn listing_pages_in_external_id_order_and_filters_by_label() {
    on_both(|s| {
        bank(s, "b");
        let mut batch: Vec<NewEntry> = (0..25)
            .map(|i| entry(&format!("k{i:02}"), pdq(i)))
            .collect();
        batch[3].label = "special".into();
        batch[17].label = "special".into();
        s.upsert_entries("b", batch, "a").unwrap();
        let page1 = s.list_entries("b", None, None, 10).unwrap();
        let page2 = s
            .list_entries("b", None, Some(&page1[9].external_id), 10)
            .unwrap();
        let page3 = s
            .list_entries("b", None, Some(&page2[9].external_id), 10)
            .unwrap();
        let all: Vec<String> = page1
            .iter()
            .chain(&page2)
            .chain(&page3)
            .map(|e| e.external_id.clone())
            .collect();
        let expected: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        assert_eq!(all, expected);
        let special: Vec<String> = s
            .list_entries("b", Some("special"), None, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.external_id)
            .collect();
        assert_eq!(special, ["k03", "k17"]);
    });
}

#[test]
fn every_change_is_audited_and_filterable() {
    on_both(|s| {
        let t0 = Timestamp::now();
        bank(s, "b");
        bank(s, "c");
        let added = s
            .upsert_entries("b", vec![entry("x", pdq(1)), entry("y", pdq(2))], "alice")
            .unwrap();
        s.upsert_entries("b", vec![entry("x", pdq(3))], "bob")
            .unwrap();
        s.set_entries_disabled("b", &[added[1].id], Some(Timestamp::MAX), "carol")
            .unwrap();
        s.remove_entries("b", &[added[0].id], "dave").unwrap();
        s.update_bank(
            "c",
            BankUpdate {
                description: Some("d".into()),
                ..BankUpdate::default()
            },
            "erin",
        )
        .unwrap();
        s.delete_bank("c", "erin").unwrap();
        let all = s.audit_events(&AuditFilter::default()).unwrap();
        let actions: Vec<(AuditAction, &str, &str)> = all
            .iter()
            .map(|e| (e.action, e.bank.as_str(), e.actor.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                (AuditAction::BankCreate, "b", "tester"),
                (AuditAction::BankCreate, "c", "tester"),
                (AuditAction::EntryAdd, "b", "alice"),
                (AuditAction::EntryUpdate, "b", "bob"),
                (AuditAction::EntryDisable, "b", "carol"),
                (AuditAction::EntryRemove, "b", "dave"),
                (AuditAction::BankUpdate, "c", "erin"),
                (AuditAction::BankDelete, "c", "erin"),
            ]
        );
        assert_eq!(all[2].entry_ids, [added[0].id, added[1].id]);
        assert_eq!(all[3].entry_ids, [added[0].id]);
        assert_eq!(all[5].entry_ids, [added[0].id]);
        assert!(
            all.windows(2)
                .all(|w| w[0].seq < w[1].seq && w[0].time <= w[1].time)
        );
        assert!(all[0].time >= t0);
        let only_c = s
            .audit_events(&AuditFilter {
                bank: Some("c".into()),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(only_c.len(), 3);
        let future = Timestamp(Timestamp::now().0 + 10_000_000);
        assert!(
            s.audit_events(&AuditFilter {
                since: Some(future),
                ..AuditFilter::default()
            })
            .unwrap()
            .is_empty()
        );
        let before = s
            .audit_events(&AuditFilter {
                until: Some(Timestamp(t0.0 - 1)),
                ..AuditFilter::default()
            })
            .unwrap();
        assert!(before.is_empty());
        let window = AuditFilter {
            since: Some(all[2].time),
            until: Some(all[3].time),
            ..AuditFilter::default()
        };
        let in_window = s.audit_events(&window).unwrap();
        assert!(
            in_window.iter().any(|e| e.seq == all[2].seq)
                && in_window.iter().any(|e| e.seq == all[3].seq)
        );
        assert!(
            in_window
                .iter()
                .all(|e| e.time >= all[2].time && e.time <= all[3].time)
        );
        assert_eq!(
            s.audit_events(&AuditFilter {
                limit: Some(2),
                ..AuditFilter::default()
            })
            .unwrap()
            .len(),
            2
        );
    });
}

/// Found by the `proto_requests` fuzz target (fixture
/// `tests/fixtures/fuzz/proto_requests/list-audit-events-since-after-until`): a `since` after the
/// `until` panicked in the in-memory backend's range scan (the handler answered INTERNAL). It is
/// the caller's mistake: a typed `Invalid` error naming both times, on either backend.
#[test]
fn an_audit_window_that_ends_before_it_starts_is_refused() {
    on_both(|s| {
        bank(s, "b");
        let filter = AuditFilter {
            since: Some(Timestamp::parse("2023-01-01T00:00:00Z").unwrap()),
            until: Some(Timestamp::parse("1399999999").unwrap()),
            ..AuditFilter::default()
        };
        match s.audit_events(&filter) {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains("2023-01-01T00:00:00Z"), "{message}");
                assert!(message.contains("2014-05-13T16:53:19Z"), "{message}");
            }
            other => panic!("expected an Invalid error, got {other:?}"),
        }
        // One instant is a window: since == until is not refused.
        let now = Timestamp::now();
        let instant = AuditFilter {
            since: Some(now),
            until: Some(now),
            ..AuditFilter::default()
        };
        assert!(s.audit_events(&instant).is_ok());
    });
}

#[test]
fn rocksdb_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, seq) = {
        let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
        bank(&s, "b");
        let mut e = entry("x", pdq(1));
        e.hashes
            .set(HashValue::parse(Algorithm::Md5, "00112233445566778899aabbccddeeff").unwrap());
        e.hashes
            .set(HashValue::parse(Algorithm::Phash, "0123456789abcdef").unwrap());
        e.note = "ü note".into();
        e.disabled_until = Some(Timestamp(1_800_000_000_000_000));
        let ids: Vec<u64> = s
            .upsert_entries("b", vec![e, entry("y", pdq(2))], "alice")
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect();
        let seq = s
            .audit_events(&AuditFilter::default())
            .unwrap()
            .last()
            .unwrap()
            .seq;
        (ids, seq)
    };
    let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
    let e = s.get_entry(ids[0]).unwrap().unwrap();
    assert_eq!(e.note, "ü note");
    assert_eq!(e.hashes.iter().count(), 3);
    assert_eq!(e.disabled_until, Some(Timestamp(1_800_000_000_000_000)));
    assert_eq!(s.get_bank("b").unwrap().unwrap().name, "b");
    // Counters continue where they were.
    let next = s
        .upsert_entries("b", vec![entry("z", pdq(3))], "a")
        .unwrap();
    assert_eq!(next[0].id, ids[1] + 1);
    assert_eq!(
        s.audit_events(&AuditFilter::default())
            .unwrap()
            .last()
            .unwrap()
            .seq,
        seq + 1
    );
}

#[test]
fn a_second_open_of_a_held_store_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path(), &RocksOptions::default()).unwrap();
    let started = std::time::Instant::now();
    let err = Store::open(dir.path(), &RocksOptions::default())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Write a raw meta value through RocksDB itself, as an older or newer vigie would have.
fn raw_db(dir: &std::path::Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    rocksdb::DB::open_cf(
        &opts,
        dir,
        ["banks", "entries", "external", "meta", "audit"],
    )
    .unwrap()
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), &RocksOptions::default()).unwrap());
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema_version", 99u32.to_be_bytes())
            .unwrap();
    }
    let err = Store::open(dir.path(), &RocksOptions::default())
        .err()
        .expect("newer schema must be refused");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: vigie::store::SCHEMA_VERSION
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade vigie"));
}

#[test]
fn a_version_1_store_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    // Build a store, then strip it down to schema 1: no counters in meta.
    let ids: Vec<u64> = {
        let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
        bank(&s, "b");
        s.upsert_entries(
            "b",
            (0..5).map(|i| entry(&format!("e{i}"), pdq(i))).collect(),
            "a",
        )
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect()
    };
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        for k in [&b"next_entry_id"[..], b"next_bank_id", b"next_audit_seq"] {
            db.delete_cf(meta, k).unwrap();
        }
        db.put_cf(meta, b"schema_version", 1u32.to_be_bytes())
            .unwrap();
    }
    let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
    {
        let db_version = {
            drop(s);
            let db = raw_db(dir.path());
            let meta = db.cf_handle("meta").unwrap();
            let v = db.get_cf(meta, b"schema_version").unwrap().unwrap();
            assert!(db.get_cf(meta, b"next_entry_id").unwrap().is_some());
            u32::from_be_bytes(v.try_into().unwrap())
        };
        assert_eq!(db_version, vigie::store::SCHEMA_VERSION);
    }
    let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
    let next = s
        .upsert_entries("b", vec![entry("new", pdq(50))], "a")
        .unwrap();
    assert_eq!(next[0].id, ids[4] + 1, "counter derived from the last key");
    bank(&s, "c");
    assert_eq!(s.list_banks().unwrap().len(), 2);
    let events = s.audit_events(&AuditFilter::default()).unwrap();
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "audit sequence continues after migration"
    );
}

/// Schema 5 (issue 15): 64-bit hashes are held in Python `imagehash`'s bit order. A version 4
/// store is migrated on open: every stored pHash and dHash gets the bits of each byte reversed
/// (so it keeps matching the pictures it matched), other hashes and records are untouched, and
/// opening again changes nothing more.
#[test]
fn a_version_4_store_gets_its_64_bit_hashes_in_imagehash_order() {
    let dir = tempfile::tempdir().unwrap();
    let old_phash = "0123456789abcdef"; // as schema 4 held it
    let old_dhash = "8000000000000001";
    let (with_64, pdq_only) = {
        let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
        bank(&s, "b");
        let mut e = entry("photo", pdq(1));
        e.hashes
            .set(HashValue::parse(Algorithm::Phash, old_phash).unwrap());
        e.hashes
            .set(HashValue::parse(Algorithm::Dhash, old_dhash).unwrap());
        let up = s
            .upsert_entries("b", vec![e, entry("list", pdq(2))], "a")
            .unwrap();
        (up[0].id, up[1].id)
    };
    let raw_record = |id: u64| {
        let db = raw_db(dir.path());
        let entries = db.cf_handle("entries").unwrap();
        db.get_cf(entries, id.to_be_bytes()).unwrap().unwrap()
    };
    let untouched = raw_record(pdq_only);
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema_version", 4u32.to_be_bytes())
            .unwrap();
    }
    for _ in 0..2 {
        let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
        let e = s.get_entry(with_64).unwrap().unwrap();
        // 0x01 0x23 0x45 ... with each byte's bits reversed: 0x80 0xc4 0xa2 ...
        assert_eq!(e.hashes.phash.unwrap().to_hex(), "80c4a2e691d5b3f7");
        assert_eq!(e.hashes.dhash.unwrap().to_hex(), "0100000000000080");
        assert_eq!(
            e.hashes.pdq,
            match pdq(1) {
                HashValue::Pdq(h) => Some(h),
                _ => None,
            }
        );
        assert_eq!(e.external_id, "photo");
        drop(s);
        assert_eq!(raw_record(pdq_only), untouched);
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        let v = db.get_cf(meta, b"schema_version").unwrap().unwrap();
        assert_eq!(u32::from_be_bytes(v.try_into().unwrap()), 5);
    }
}

/// An entry with several hashes of one algorithm (schema 5, record version 2) survives a reopen
/// of the RocksDB store, and every hash is loaded for matching.
#[test]
fn an_entry_with_several_hashes_of_one_algorithm_is_stored_and_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
        bank(&s, "b");
        let mut e = entry("ad-1042", pdq(1));
        e.hashes.add(pdq(2)).unwrap();
        e.hashes.add(pdq(3)).unwrap();
        e.hashes.add(pdq(2)).unwrap(); // already held: no change
        assert_eq!(e.hashes.iter().count(), 3);
        s.upsert_entries("b", vec![e], "a").unwrap()[0].id
    };
    let s = Store::open(dir.path(), &RocksOptions::default()).unwrap();
    let e = s.get_entry(id).unwrap().unwrap();
    assert_eq!(
        e.hashes.iter().collect::<Vec<_>>(),
        vec![pdq(1), pdq(2), pdq(3)]
    );
    let mut loaded = HashList::default();
    load_into(&s, Timestamp::now(), &mut loaded).unwrap();
    let mut got: Vec<HashValue> = loaded
        .0
        .iter()
        .map(|(i, h)| {
            assert_eq!(*i, id);
            *h
        })
        .collect();
    got.sort_by_key(|h| h.to_hex());
    let mut want = vec![pdq(1), pdq(2), pdq(3)];
    want.sort_by_key(|h| h.to_hex());
    assert_eq!(got, want);
}

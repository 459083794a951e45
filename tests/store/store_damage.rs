//! A damaged, missing or full store, as an operator meets one: a write-ahead log damaged in the
//! middle, a damaged table file, a `--data-dir` that is mistyped or lost its `CURRENT`, a disk that
//! fills up. Nothing acknowledged may disappear in silence, nothing may be created over a store,
//! and every start-up failure exits non-zero.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vigie::store::{
    Algorithm, EntryHashes, HashValue, NewBank, NewEntry, RocksOptions, Store, StoreError,
    WalRecovery,
};

fn vigie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
}

/// Runs `command` to its end, or kills it after `limit`: `None` then (it was still running).
fn run_for(command: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigie");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve(dir: &Path) -> Option<Output> {
    run_for(
        vigie().args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().expect("path"),
        ]),
        Duration::from_secs(60),
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pdq(seed: u64) -> HashValue {
    HashValue::parse(
        Algorithm::Pdq,
        &format!(
            "{seed:016x}{:016x}{:016x}{:016x}",
            seed.rotate_left(17) ^ 1,
            seed.rotate_left(31) ^ 2,
            seed.rotate_left(47) ^ 3
        ),
    )
    .expect("hash")
}

fn entries(from: u64, n: u64) -> Vec<NewEntry> {
    (from..from + n)
        .map(|i| {
            let mut hashes = EntryHashes::default();
            hashes.set(pdq(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            NewEntry {
                external_id: format!("e{i}"),
                hashes,
                label: "l".into(),
                source: "internal".into(),
                ..NewEntry::default()
            }
        })
        .collect()
}

fn create_bank(store: &Store) {
    store
        .create_bank(
            NewBank {
                name: "b".into(),
                ..NewBank::default()
            },
            "tester",
        )
        .expect("bank");
}

/// `batches` batches of `per_batch` entries, each one atomic write (one log record).
fn fill(store: &Store, batches: u64, per_batch: u64) {
    for b in 0..batches {
        store
            .upsert_entries("b", entries(b * per_batch, per_batch), "tester")
            .expect("upsert");
    }
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Flips `len` bytes in the middle of `file`.
fn damage_middle(file: &Path, len: usize) {
    let mut bytes = std::fs::read(file).expect("read");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + len] {
        *b ^= 0x5a;
    }
    std::fs::write(file, bytes).expect("write");
}

#[test]
fn a_log_damaged_mid_way_is_refused_naming_it_and_recovered_only_on_request() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("store");
    {
        let store = Store::open(&dir, &RocksOptions::default()).expect("create");
        create_bank(&store);
        // 200 acknowledged batches of 10 entries, all still in the log (no flush at 64 MiB).
        fill(&store, 200, 10);
    }
    let logs = files_ending(&dir, ".log");
    assert_eq!(logs.len(), 1, "{logs:?}");
    damage_middle(&logs[0], 16);

    // A strict open refuses, naming the log.
    let err = Store::open(&dir, &RocksOptions::default())
        .err()
        .expect("a damaged log is refused");
    let message = err.to_string();
    assert!(message.contains("write-ahead log"), "{message}");
    let log_name = logs[0].file_name().expect("name").to_string_lossy();
    assert!(message.contains(log_name.as_ref()), "{message}");
    // `vigie serve` exits non-zero with the same reason instead of serving part of the store.
    let out = serve(&dir).expect("serve exits instead of serving a damaged store");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("write-ahead log"), "{}", stderr(&out));

    // Recovery only on request, and it says what it dropped.
    let dir_arg = dir.to_str().expect("path");
    let refused = vigie()
        .args(["recover-wal", "--data-dir", dir_arg])
        .output()
        .expect("recover-wal");
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--accept-wal-loss"));
    let out = vigie()
        .args(["recover-wal", "--accept-wal-loss", "--data-dir", dir_arg])
        .output()
        .expect("recover-wal");
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON report on stdout");
    assert_eq!(report["recovered"], true, "{report}");
    let kept = report["batches_kept"].as_u64().expect("kept");
    let dropped = report["batches_dropped"].as_u64().expect("dropped");
    assert!(dropped > 0, "{report}");
    assert_eq!(
        kept + dropped,
        report["batches_in_log"].as_u64().expect("in log"),
        "{report}"
    );
    // Operations are counted from readable records only: a batch of 10 entries is a few dozen
    // operations, never the billions a damaged count field reads as.
    let operations = report["operations_dropped"].as_u64().expect("operations");
    assert!(operations > 0 && operations <= 50 * dropped, "{report}");
    assert!(Path::new(report["wal_copy"].as_str().expect("copy")).is_dir());
    // The store is whole again (a strict open works) and holds exactly the kept batches: the
    // schema version, the bank, then 10 entries each.
    let store = Store::open(&dir, &RocksOptions::default()).expect("strict open after recovery");
    let count = store.count_entries("b").expect("count");
    assert_eq!(count, 10 * (kept - 2), "{report}");
    assert!(count < 2000);
    println!("recover-wal: {report}");
}

#[test]
fn a_point_in_time_open_of_a_whole_log_drops_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("store");
    {
        let store = Store::open(&dir, &RocksOptions::default()).expect("create");
        create_bank(&store);
        fill(&store, 20, 10);
    }
    let (store, report) = Store::open_reporting(
        &dir,
        &RocksOptions {
            wal_recovery: WalRecovery::PointInTime,
            ..RocksOptions::default()
        },
    )
    .expect("open");
    let report = report.expect("report");
    assert_eq!(report.batches_dropped, 0, "{report}");
    assert_eq!(report.batches_kept, 22, "{report}");
    assert_eq!(store.count_entries("b").expect("count"), 200);
}

#[test]
fn a_damaged_table_makes_serve_exit_non_zero() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("store");
    {
        let store = Store::open(&dir, &RocksOptions::default()).expect("create");
        create_bank(&store);
        fill(&store, 20, 1000);
        store.compact().expect("compact");
    }
    let largest = files_ending(&dir, ".sst")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a table file");
    damage_middle(&largest, 64);
    let started = Instant::now();
    let out = serve(&dir).expect("serve exits instead of staying NOT_SERVING");
    assert!(!out.status.success());
    let log = stderr(&out);
    assert!(log.contains(".sst"), "{log}");
    println!(
        "serve on a damaged table exited with {:?} after {} ms",
        out.status.code(),
        started.elapsed().as_millis()
    );
}

#[test]
fn serve_refuses_a_missing_or_empty_data_dir_and_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("mistyped");
    let out = serve(&missing).expect("serve exits");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no vigie store"), "{}", stderr(&out));
    assert!(!missing.exists(), "serve created {}", missing.display());

    let empty = tmp.path().join("unmounted");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = serve(&empty).expect("serve exits");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no vigie store"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&empty).expect("dir").count(), 0);
}

#[test]
fn admin_commands_that_write_create_a_store_in_a_new_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let keys_dir = tmp.path().join("new-keys");
    let out = vigie()
        .args(["keys", "create", "--role", "screen", "--name", "p"])
        .args(["--data-dir", keys_dir.to_str().expect("path")])
        .output()
        .expect("keys create");
    assert!(out.status.success(), "{}", stderr(&out));
    let bank_dir = tmp.path().join("new-bank");
    let out = vigie()
        .args(["bank", "create", "b"])
        .args(["--data-dir", bank_dir.to_str().expect("path")])
        .output()
        .expect("bank create");
    assert!(out.status.success(), "{}", stderr(&out));
    // Listing keys needs a store: none is made for it.
    let absent = tmp.path().join("absent");
    let out = vigie()
        .args(["keys", "list", "--data-dir", absent.to_str().expect("path")])
        .output()
        .expect("keys list");
    assert!(!out.status.success());
    assert!(!absent.exists());
}

#[test]
fn a_store_that_lost_current_is_refused_and_its_tables_untouched() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("store");
    {
        let store = Store::open(&dir, &RocksOptions::default()).expect("create");
        create_bank(&store);
        fill(&store, 10, 100);
        store.compact().expect("compact");
    }
    std::fs::remove_file(dir.join("CURRENT")).expect("remove CURRENT");
    let tables: Vec<(PathBuf, Vec<u8>)> = files_ending(&dir, ".sst")
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    assert!(!tables.is_empty());
    let d = dir.to_str().expect("path");
    for args in [
        vec!["bank", "create", "c", "--data-dir", d],
        vec![
            "keys",
            "create",
            "--role",
            "admin",
            "--name",
            "a",
            "--data-dir",
            d,
        ],
        vec!["bank", "list", "--data-dir", d],
    ] {
        let out = vigie().args(&args).output().expect("vigie");
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains("CURRENT"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = serve(&dir).expect("serve exits");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("CURRENT"), "{}", stderr(&out));
    let err = Store::open(&dir, &RocksOptions::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("CURRENT"), "{err}");
    assert!(!dir.join("CURRENT").exists(), "CURRENT was re-created");
    for (path, bytes) in &tables {
        assert_eq!(
            &std::fs::read(path).expect("table still there"),
            bytes,
            "{} changed",
            path.display()
        );
    }
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The disk-full refusal: its own error, which says so.
fn is_full(e: &StoreError) -> bool {
    e.to_string().contains("disk is full")
}

/// Fills the file system under `dir` with a file until `ENOSPC`.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn writes_resume_by_themselves_once_disk_space_is_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(mount) = Tmpfs::mount(&tmp.path().join("mnt"), "24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); see docs for the manual check");
        return;
    };
    let dir = mount.0.join("store");
    let store = Store::open(&dir, &RocksOptions::default()).expect("create");
    create_bank(&store);
    let filler = mount.0.join("filler");
    fill_disk(&filler);
    let mut acknowledged = 0u64;
    let err = loop {
        match store.upsert_entries("b", entries(acknowledged, 10), "tester") {
            Ok(_) => acknowledged += 10,
            Err(e) => break e,
        }
        assert!(acknowledged < 1_000_000, "the disk never filled");
    };
    assert!(is_full(&err), "{err:?}");
    // Reads go on; writes keep being refused while the disk is full.
    assert_eq!(store.count_entries("b").expect("reads go on"), acknowledged);
    std::thread::sleep(Duration::from_millis(1100));
    let again = store.upsert_entries("b", entries(acknowledged, 10), "tester");
    assert!(again.as_ref().is_err_and(is_full), "{again:?}");

    std::fs::remove_file(&filler).expect("free space");
    let freed = Instant::now();
    loop {
        match store.upsert_entries("b", entries(acknowledged, 10), "tester") {
            Ok(_) => {
                acknowledged += 10;
                break;
            }
            Err(e) if is_full(&e) => {
                assert!(
                    freed.elapsed() < Duration::from_secs(30),
                    "writes never resumed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    println!(
        "writes resumed {} ms after space was freed ({acknowledged} entries acknowledged)",
        freed.elapsed().as_millis()
    );
    drop(store);
    // Nothing acknowledged was lost, and the store opens strictly.
    let store = Store::open(&dir, &RocksOptions::default()).expect("reopen");
    assert_eq!(store.count_entries("b").expect("count"), acknowledged);
    drop(store);
    drop(mount);
}

/// A cluster replica's store: batches written without a synced log and made durable by one
/// `sync_wal` per group, snapshots read from one point-in-time view (`write_snapshot`). On a full
/// disk its group syncs are refused as a full disk too (not reported done while RocksDB still
/// refuses writes), reads and snapshots go on, and syncs and writes resume by themselves once
/// space is back, through the same reopen as a write; nothing synced is lost.
#[test]
fn a_replicas_group_syncs_and_snapshots_follow_a_full_disk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(mount) = Tmpfs::mount(&tmp.path().join("mnt"), "24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); see docs for the manual check");
        return;
    };
    let dir = mount.0.join("store");
    let unsynced = RocksOptions {
        sync_writes: false,
        ..RocksOptions::default()
    };
    let store = Store::open(&dir, &unsynced).expect("create");
    create_bank(&store);
    store.sync_wal().expect("first sync");
    let filler = mount.0.join("filler");
    fill_disk(&filler);
    let mut written = 0u64;
    let mut synced = 0u64;
    let err = loop {
        let step = store
            .upsert_entries("b", entries(written, 10), "tester")
            .map(|_| written += 10)
            .and_then(|()| store.sync_wal());
        match step {
            Ok(()) => synced = written,
            Err(e) => break e,
        }
        assert!(written < 1_000_000, "the disk never filled");
    };
    assert!(is_full(&err), "{err:?}");
    // While the disk is full: syncs refused, reads and snapshots go on.
    std::thread::sleep(Duration::from_millis(1100));
    let again = store.sync_wal();
    assert!(again.as_ref().is_err_and(is_full), "{again:?}");
    assert_eq!(store.count_entries("b").expect("reads go on"), written);
    let mut snapshot = Vec::new();
    store
        .write_snapshot(&mut snapshot)
        .expect("a snapshot reads a full store");
    assert!(!snapshot.is_empty());

    std::fs::remove_file(&filler).expect("free space");
    let freed = Instant::now();
    loop {
        match store.sync_wal() {
            Ok(()) => break,
            Err(e) if is_full(&e) => {
                assert!(
                    freed.elapsed() < Duration::from_secs(30),
                    "syncs never resumed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    store
        .upsert_entries("b", entries(written, 10), "tester")
        .expect("writes resume");
    written += 10;
    store.sync_wal().expect("sync after resume");
    println!(
        "group syncs resumed {} ms after space was freed ({written} entries written, {synced} \
         synced before the disk filled)",
        freed.elapsed().as_millis()
    );
    drop(store);
    let store = Store::open(&dir, &RocksOptions::default()).expect("reopen");
    let kept = store.count_entries("b").expect("count");
    assert_eq!(
        kept, written,
        "every write synced after space came back is kept"
    );
    assert!(kept >= synced + 10);
    drop(store);
    drop(mount);
}

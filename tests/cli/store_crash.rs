//! Nothing acknowledged is lost: an import in a child process prints each committed batch and is
//! killed with SIGKILL at random moments; after every kill the store opens cleanly, holds every
//! acknowledged entry, and the start-up load sees exactly the stored entries.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vigie::index::HammingIndex;
use vigie::store::load::{BulkLoad, load_into};
use vigie::store::{RocksOptions, Store, Timestamp};

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators", 2016).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn write_input(path: &Path, cycle: u64, lines: u64, rng: &mut u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..lines {
        let words: Vec<String> = (0..4).map(|_| format!("{:016x}", next(rng))).collect();
        // external id, algorithm, hash: csv with explicit ids so ids differ per cycle.
        writeln!(f, "c{cycle}-{i},pdq,{}", words.concat()).unwrap();
    }
}

/// The external ids of a `{"committed":[...]}` line.
fn committed(line: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let ids = v["committed"].as_array()?;
    Some(
        ids.iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect(),
    )
}

#[test]
fn sigkilled_imports_lose_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = seed;
    {
        let s = Store::open(&dir, &RocksOptions::default()).unwrap();
        s.create_bank(
            vigie::store::NewBank {
                name: "crash".into(),
                ..Default::default()
            },
            "test",
        )
        .unwrap();
    }
    let mut acknowledged: Vec<String> = Vec::new();
    let mut killed_mid_import = 0;
    for cycle in 0..6u64 {
        let input = tmp.path().join(format!("in{cycle}.csv"));
        let mut body = String::from("external_id,algorithm,hash\n");
        write_input(&tmp.path().join("rows"), cycle, 20_000, &mut rng);
        body.push_str(&std::fs::read_to_string(tmp.path().join("rows")).unwrap());
        std::fs::write(&input, body).unwrap();

        let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args([
                "import",
                "--bank",
                "crash",
                "--format",
                "csv",
                "--batch-size",
                "50",
                "--print-commits",
                "--data-dir",
            ])
            .arg(&dir)
            .arg(&input)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // Kill after a random number of acknowledged batches, plus a random few milliseconds, so
        // the kill lands anywhere in the write path (mid-batch, mid-fsync, between batches).
        let batches_before_kill = 1 + next(&mut rng) % 60;
        let mut seen = 0;
        let mut line = String::new();
        while seen < batches_before_kill {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(ids) = committed(&line) {
                acknowledged.extend(ids);
                seen += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(next(&mut rng) % 20_000));
        child.kill().unwrap(); // SIGKILL on Unix
        // Lines already printed were acknowledged too: drain them.
        let mut rest = String::new();
        while stdout.read_line(&mut rest).unwrap_or(0) > 0 {
            // A torn last line (no newline) was not fully printed: not counted.
            if rest.ends_with('\n')
                && let Some(ids) = committed(&rest)
            {
                acknowledged.extend(ids);
            }
            rest.clear();
        }
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_import += 1;
        }

        // The store opens cleanly and holds every acknowledged entry.
        let s = Store::open(&dir, &RocksOptions::default()).expect("store opens after SIGKILL");
        for id in &acknowledged {
            assert!(
                s.find_entry("crash", id).unwrap().is_some(),
                "acknowledged entry {id} lost (seed {seed})"
            );
        }
        let stored = s.count_entries("crash").unwrap();
        assert!(stored >= acknowledged.len() as u64);
        let mut bulk = BulkLoad::default();
        let stats = load_into(&s, Timestamp::now(), &mut bulk).unwrap();
        assert_eq!(
            stats.entries, stored,
            "load count == stored count (seed {seed})"
        );
        let index = HammingIndex::<4>::from_entries(bulk.pdq).unwrap();
        assert_eq!(
            index.len() as u64,
            stored,
            "index count == stored count (seed {seed})"
        );
    }
    assert!(
        killed_mid_import >= 3,
        "the kills should land during imports (only {killed_mid_import})"
    );
    assert!(!acknowledged.is_empty());
}

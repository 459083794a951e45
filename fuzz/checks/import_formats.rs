//! Every import format, as `vigie import` and `ImportEntries` read a hash list: `jsonl`, `csv`
//! (python-threatexchange's `dataset --csv`, HMA and vigie exports), `signal-lines`
//! (python-threatexchange's `<signal_type> <hash>`), and `hex` (one hash per line: Meta's PDQ
//! tools, NCMEC and StopNCII hash lists, Python `imagehash` output), in UTF-8 or UTF-16, with
//! CRLF ends. The first byte picks the format, the algorithm, strictness and the batch size;
//! the rest is the file. Each input is checked (`formats::check`, the strict pre-pass), imported
//! into an in-memory store (`formats::import`, the same code a RocksDB store runs), exported as
//! `jsonl`, and that export is imported into a second bank, whose export must be identical: an
//! import keeps everything an export writes.
//!
//! Any input must give a summary or a typed `FormatError`; a panic is a bug.
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/import_formats.rs`) and the regression tests
//! (`tests/fuzz/main.rs`), so that a crash found here is replayed by the same code.
use vigie::store::formats::{self, ExportOptions, Format, ImportOptions};
use vigie::store::{Algorithm, NewBank, Store};

const FORMATS: [Format; 4] = [Format::Jsonl, Format::Csv, Format::SignalLines, Format::Hex];
const ALGORITHMS: [Option<Algorithm>; 6] = [
    None,
    Some(Algorithm::Pdq),
    Some(Algorithm::Phash),
    Some(Algorithm::Dhash),
    Some(Algorithm::Md5),
    Some(Algorithm::Sha256),
];

fn bank(store: &Store, name: &str) {
    let new = NewBank {
        name: name.to_string(),
        ..NewBank::default()
    };
    store
        .create_bank(new, "fuzz")
        .expect("create a bank in memory");
}

fn export_jsonl(store: &Store, bank: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let options = ExportOptions {
        format: Format::Jsonl,
        label: None,
        algorithm: None,
    };
    formats::export(store, bank, &options, &mut out).expect("export from memory");
    out
}

/// The exported entries without what the store assigns (`id`) or where they are (`bank`).
fn entries(jsonl: &[u8]) -> Vec<serde_json::Value> {
    jsonl
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_slice(line).expect("exported JSON");
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
                o.remove("bank");
            }
            v
        })
        .collect()
}

/// Runs one input; panics on a bug (see the module doc).
pub fn check(data: &[u8]) {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let mut options = ImportOptions::new(FORMATS[usize::from(selector & 3)]);
    options.algorithm = ALGORITHMS[usize::from(selector >> 2 & 7) % ALGORITHMS.len()];
    options.strict = selector & 0x20 != 0;
    options.batch_size = if selector & 0x40 != 0 { 1 } else { 1000 };
    if selector & 0x80 != 0 {
        options.default_label = Some("fuzz-label".into());
        options.default_source = Some("fuzz-source".into());
    }

    let _ = formats::check(file, &options);

    let store = Store::in_memory();
    bank(&store, "a");
    let imported = formats::import(
        &store,
        "a",
        file,
        &options,
        "fuzz",
        &mut |_| {},
        &mut |_| {},
    );
    if options.strict && imported.is_err() {
        assert!(
            export_jsonl(&store, "a").is_empty(),
            "a strict import that failed committed entries: {imported:?}"
        );
    }

    // What was imported comes back whole through its own export.
    let first = export_jsonl(&store, "a");
    bank(&store, "b");
    let mut again = ImportOptions::new(Format::Jsonl);
    again.strict = true;
    let reimported = formats::import(
        &store,
        "b",
        &first[..],
        &again,
        "fuzz",
        &mut |_| {},
        &mut |_| {},
    );
    if let Err(e) = reimported {
        panic!(
            "vigie's own jsonl export does not import: {e}\n{}",
            String::from_utf8_lossy(&first)
        );
    }
    let second = export_jsonl(&store, "b");
    assert!(
        entries(&first) == entries(&second),
        "export -> import -> export changed the entries:\n{}\n---\n{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
}

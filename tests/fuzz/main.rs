//! The fuzz targets' checks (fuzz/checks/, the code `cargo fuzz run` runs on each input), run by
//! the normal test suite on stable Rust without a sanitizer:
//! - on every input a fuzzer crashed on, kept as a fixture in `tests/fixtures/fuzz/<target>/`
//!   (see docs/FUZZING.md: a crash becomes a fixture here and a test of its fix);
//! - on the committed seed corpus, `fuzz/seeds/<target>/`, so that a check that no longer builds
//!   against the library, or a seed that no longer passes, fails here first.

#[path = "../../fuzz/checks/decode_image.rs"]
mod decode_image;
#[path = "../../fuzz/checks/hash_text.rs"]
mod hash_text;
#[path = "../../fuzz/checks/import_formats.rs"]
mod import_formats;
#[path = "../../fuzz/checks/proto_requests.rs"]
mod proto_requests;

use std::path::{Path, PathBuf};

/// Every file under `tests/fixtures/fuzz/<target>` and `fuzz/seeds/<target>`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        root.join("tests/fixtures/fuzz").join(target),
        root.join("fuzz/seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read a fuzz input directory").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target`; at least `min` inputs must exist (the seeds).
fn replay(target: &str, min: usize, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        files.len() >= min,
        "{target}: {} inputs, expected at least {min}",
        files.len()
    );
    for path in files {
        let bytes = std::fs::read(&path).expect("read a fuzz input");
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn decode_image_inputs_hash_or_give_a_typed_error() {
    replay("decode_image", 20, decode_image::check);
}

#[test]
fn hash_text_inputs_parse_or_give_a_typed_error() {
    replay("hash_text", 10, hash_text::check);
}

#[test]
fn import_formats_inputs_import_or_give_a_typed_error() {
    replay("import_formats", 10, import_formats::check);
}

#[test]
fn proto_requests_inputs_answer_without_internal_errors() {
    replay("proto_requests", 10, proto_requests::check);
}

//! `vigie hash` as other programs use it: one JSON object per file per line, in argument order.

use crate::common;

use std::process::Command;

use common::*;
use serde_json::Value;
use vigie::bits::Hash256;

fn run_hash(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .arg("hash")
        .args(args)
        .output()
        .expect("run vigie");
    let lines = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn default_output_has_every_hash_in_the_documented_shape() {
    let bridge = fixture("bridge.jpg");
    let (code, lines, _) = run_hash(&[bridge.to_str().expect("path")]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1);
    let o = &lines[0];
    assert_eq!(o["file"], bridge.to_str().expect("path"));
    assert_eq!(
        (o["width"].as_u64(), o["height"].as_u64()),
        (Some(1024), Some(576))
    );
    let h = &o["hashes"];
    // Meta's PDQ of this file (pdq-reference.tsv). By default the 1024x576 JPEG is decoded at half
    // scale (luma only), which here lands on Meta's hash too (other files move a few bits: the
    // measured trade, see `DEFAULT_DECODE_MIN_SIDE`); at full size vigie gives Meta's hash bit for
    // bit on every reference JPEG.
    let meta =
        Hash256::from_hex("3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2")
            .expect("hex");
    let default_pdq = Hash256::from_hex(h["pdq"]["hex"].as_str().expect("hex")).expect("hex");
    assert_eq!(default_pdq.distance(&meta), 0, "{default_pdq}");
    let (code, full, _) = run_hash(&["--decode-min-side", "0", bridge.to_str().expect("path")]);
    assert_eq!(code, 0);
    assert_eq!(full[0]["hashes"]["pdq"]["hex"], meta.to_hex());
    assert_eq!(h["pdq"]["quality"], 100);
    assert_eq!(h["phash"]["hex"].as_str().map(str::len), Some(16));
    assert_eq!(h["dhash"]["hex"].as_str().map(str::len), Some(16));
    assert_eq!(h["md5"]["hex"], "ffa33026ffc4c0d7f871846ce3701222");
    assert_eq!(
        h["sha256"]["hex"],
        "fb4079546b5a63382a23d2ee9d6e6299c4bff846ea001fcf1b9f5b5d00ba95d6"
    );
    assert!(o.get("pdq_dihedral").is_none());
    assert!(
        o.get("pdq_meta").is_none(),
        "an opaque, upright file has no second PDQ"
    );
}

#[test]
fn files_keep_argument_order_and_failures_do_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.jpg");
    let mut bytes = read_fixture("bridge.jpg");
    bytes.truncate(300);
    std::fs::write(&bad, &bytes).expect("write");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an image").expect("write");
    let missing = dir.path().join("missing.png");
    let files = [
        fixture("wine.jpg"),
        bad.clone(),
        fixture("tux_747.png"),
        text.clone(),
        missing.clone(),
        fixture("formats/reference.png"),
    ];
    let args: Vec<&str> = files.iter().map(|p| p.to_str().expect("path")).collect();
    let (code, lines, _) = run_hash(&[&["--threads", "2"], args.as_slice()].concat());
    assert_eq!(code, 1, "a failed file makes the exit code 1");
    assert_eq!(lines.len(), files.len());
    for (line, file) in lines.iter().zip(&args) {
        assert_eq!(line["file"], *file);
    }
    assert_eq!(lines[1]["error"]["kind"], "corrupt");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(lines[3]["error"]["kind"], "unsupported_format");
    assert_eq!(lines[4]["error"]["kind"], "io");
    assert!(lines[0]["hashes"]["pdq"]["hex"].is_string());
    assert!(lines[5]["hashes"]["pdq"]["hex"].is_string());
    // The transparent file also carries the hash under Meta's rule.
    assert_eq!(
        lines[2]["pdq_meta"]["hex"],
        "9d2cbb14e6c70df97b58f686952b055bafc4ba3442070485bdb8655a51569ab5"
    );
    assert_eq!(lines[2]["pdq_meta"]["quality"], 100);
}

#[test]
fn algorithms_and_dihedral_flags() {
    let bridge = fixture("bridge.jpg");
    let (code, lines, _) = run_hash(&[
        "--algorithms",
        "md5,pdq",
        "--dihedral",
        bridge.to_str().expect("path"),
    ]);
    assert_eq!(code, 0);
    let o = &lines[0];
    let keys: Vec<&String> = o["hashes"].as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(o["hashes"]["md5"].is_object() && o["hashes"]["pdq"].is_object());
    let dihedral = o["pdq_dihedral"].as_array().expect("array");
    let names: Vec<&str> = dihedral
        .iter()
        .map(|d| d["transform"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "rotate90",
            "rotate180",
            "rotate270",
            "flip_horizontal",
            "flip_vertical",
            "transpose",
            "transverse"
        ]
    );
    assert!(
        dihedral
            .iter()
            .all(|d| d["hex"].as_str().map(str::len) == Some(64))
    );

    // Exact hashes only still report dimensions (from the header) and refuse non-images.
    let (code, lines, _) = run_hash(&["--algorithms", "sha256", bridge.to_str().expect("path")]);
    assert_eq!(code, 0);
    assert_eq!(lines[0]["width"], 1024);
    assert_eq!(lines[0]["hashes"].as_object().expect("object").len(), 1);

    // An unknown algorithm is a usage error, not a per-file failure.
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args([
            "hash",
            "--algorithms",
            "sha1",
            bridge.to_str().expect("path"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha1"));
}

#[test]
fn oversized_files_are_refused_before_reading_them_whole() {
    let bridge = fixture("bridge.jpg");
    let (code, lines, _) = run_hash(&["--max-bytes", "1000", bridge.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["error"]["kind"], "too_large");
}

//! The benchmark commands run end to end on a few fixtures and write the reports they promise
//! (the figures themselves are measured in release builds, see docs/PERFORMANCE.md).

use crate::common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn vigie(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
        .output()
        .expect("run vigie")
}

/// A directory of three fixture photos (the benches read a whole directory).
fn picture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["bridge.jpg", "wine.jpg", "tux_747.png"] {
        std::fs::copy(fixture(name), dir.path().join(name)).expect("copy");
    }
    dir
}

#[test]
fn bench_hash_reports_every_stage_at_every_size() {
    let pictures = picture_dir();
    let out = tempfile::tempdir().expect("tempdir");
    let o = vigie(&[
        "bench",
        "hash",
        "--dir",
        pictures.path().to_str().expect("path"),
        "--images",
        "2",
        "--repeat",
        "1",
        "--out",
        out.path().to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("bench-hash.json")).expect("json"),
    )
    .expect("parse");
    let sizes = report["sizes"].as_array().expect("sizes");
    // 512x512, 0.5, 2 and 12 MP re-encodes, then the directory as stored.
    assert_eq!(sizes.len(), 5, "{report}");
    for size in sizes {
        let stages: Vec<&str> = size["median_ms"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| s[0].as_str().expect("name"))
            .collect();
        assert_eq!(
            stages,
            [
                "decode",
                "pdq",
                "phash",
                "dhash",
                "md5",
                "sha256",
                "md5_sha256",
                "all",
                "all_full_decode",
                "screen"
            ]
        );
        for stage in size["median_ms"].as_array().expect("stages") {
            let ms = stage[1].as_f64().expect("number");
            assert!(ms.is_finite() && ms >= 0.0, "{size}");
        }
        assert!(size["images_per_second_one_core"].as_f64().expect("rate") > 0.0);
    }
    let png = image::open(out.path().join("bench-hash.png")).expect("png");
    assert!(png.width() > 100);
}

#[test]
fn bench_service_runs_rounds_against_a_bank_and_refuses_other_hosts() {
    let pictures = picture_dir();
    let out = tempfile::tempdir().expect("tempdir");
    let store = tempfile::tempdir().expect("tempdir");
    let o = vigie(&[
        "bench",
        "service",
        "--dir",
        pictures.path().to_str().expect("path"),
        "--data-dir",
        store.path().to_str().expect("path"),
        "--entries",
        "2000",
        "--megapixels",
        "0.3",
        "--concurrency",
        "1,4",
        "--round-secs",
        "0.5",
        "--max-requests",
        "400",
        "--p99-target-ms",
        "10000",
        "--out",
        out.path().to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("bench-service.json")).expect("json"),
    )
    .expect("parse");
    assert_eq!(report["entries"], 2000);
    let rounds = report["rounds"].as_array().expect("rounds");
    // Two closed-loop rounds, then the open-loop round at twice the sustainable rate.
    assert_eq!(rounds.len(), 3, "{report}");
    assert_eq!(rounds[0]["kind"], "closed");
    assert_eq!(rounds[1]["concurrency"], 4);
    assert_eq!(rounds[2]["kind"], "open");
    let total: u64 = rounds
        .iter()
        .map(|r| r["requests"].as_u64().expect("requests"))
        .sum();
    assert!(total <= 400, "the request budget holds: {total}");
    assert!(rounds[0]["ok"].as_u64().expect("ok") > 0, "{report}");
    assert!(report["sustainable_ok_per_second"].as_f64().expect("rate") > 0.0);
    assert!(out.path().join("bench-service.png").exists());

    // Nonsense durations are refused, not a panic.
    let o = vigie(&["bench", "service", "--round-secs=-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--round-secs"));

    // The load generator only targets loopback.
    let o = vigie(&[
        "bench",
        "service",
        "--addr",
        "192.0.2.1:50051",
        "--dir",
        pictures.path().to_str().expect("path"),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

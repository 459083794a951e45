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

#[test]
fn bench_keypoints_screens_half_a_corpus_against_synthetic_image_entries() {
    // Named so that, in name order, the two photos' neighbours differ: the even pictures (the
    // bridge, Tux) give the bank its points, the odd one (the wine photo) is screened.
    let pictures = tempfile::tempdir().expect("tempdir");
    for (name, copy) in [
        ("bridge.jpg", "a_bridge.jpg"),
        ("wine.jpg", "b_wine.jpg"),
        ("tux_747.png", "c_tux.png"),
    ] {
        std::fs::copy(fixture(name), pictures.path().join(copy)).expect("copy");
    }
    let out = tempfile::tempdir().expect("tempdir");
    let json = out.path().join("bench-keypoints.json");
    let o = vigie(&[
        "bench",
        "keypoints",
        "--image-entries",
        "50,200",
        "--corpus",
        pictures.path().to_str().expect("path"),
        "--rounds",
        "2",
        "--out",
        json.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(report["uploads"], 1, "{report}");
    assert_eq!(report["bank_pictures"], 2, "{report}");
    assert!(
        report["real_points"].as_u64().expect("points") > 0,
        "{report}"
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    let number = |run: &Value, field: &str| {
        let v = run[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {run}"));
        assert!(v.is_finite() && v >= 0.0, "{field}: {run}");
        v
    };
    for (run, n) in runs.iter().zip([50u64, 200]) {
        assert_eq!(run["image_entries"], n, "{run}");
        assert_eq!(run["uploads"], 1, "{run}");
        // The photo has points, so it was searched by them, and the bank holds real-looking ones.
        assert_eq!(run["uploads_with_keypoints"], 1, "{run}");
        assert!(run["keypoints"].as_u64().expect("count") > 0, "{run}");
        // Its rarer points were looked up.
        assert!(
            run["lookups_per_upload"].as_f64().expect("lookups") > 0.0,
            "{run}"
        );
        for field in [
            "index_bytes_per_entry",
            "keypoint_bytes_per_entry",
            "window_bytes_per_entry",
            "whole_bytes_per_entry",
        ] {
            assert!(number(run, field) > 0.0, "{field}: {run}");
        }
        let (kp, win) = (
            number(run, "keypoint_bytes_per_entry"),
            number(run, "window_bytes_per_entry"),
        );
        assert!((number(run, "index_bytes_per_entry") - (kp + win)).abs() < 1e-6);
        let (p50, p99, max) = (
            number(run, "screen_p50_ms"),
            number(run, "screen_p99_ms"),
            number(run, "screen_max_ms"),
        );
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{run}");
        assert!(number(run, "hashes_only_p50_ms") <= number(run, "hashes_only_p99_ms"));
        for field in [
            "resident_bytes_per_entry",
            "lookups_per_upload",
            "chance_pairs_per_upload",
            "voted_groups_per_upload",
            "voted_entries_per_upload",
            "keypoint_search_mean_ms",
            "keypoint_vote_mean_ms",
        ] {
            number(run, field);
        }
        assert!(number(run, "voted_entries_per_upload") <= number(run, "voted_groups_per_upload"));
        // Every false-match count is there; an (upload, entry) pair met both ways counts once.
        let count = |field: &str| {
            run[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{field}: {run}"))
        };
        let (all, by_points, by_hash) = (
            count("false_matches"),
            count("false_keypoint_matches"),
            count("false_hash_matches"),
        );
        assert!(
            all >= by_points.max(by_hash) && all <= by_points + by_hash,
            "{run}"
        );
        // The screened photo is banked as it is too: found (it is its own PDQ), and not a false
        // match.
        assert_eq!(run["uploads_found"], 1, "{run}");
        // Its four default copies (heavy crops and a turn) were screened once each, and those
        // found were found as the photo's own entry; nothing else was met.
        assert_eq!(run["copies"], 4, "{run}");
        let by_edit = run["copies_by_edit"].as_array().expect("by edit");
        assert_eq!(by_edit.len(), 4, "{run}");
        for e in by_edit {
            assert_eq!(e["copies"], 1, "{e}");
            assert!(e["found"].as_u64() <= Some(1), "{e}");
            assert!(
                e["found_by_keypoints"].as_u64() <= e["found"].as_u64(),
                "{e}"
            );
        }
        let found = count("copies_found");
        assert!((1..=4).contains(&found), "{run}");
        assert!(count("copies_found_by_keypoints") <= found, "{run}");
        assert_eq!(count("copy_false_matches"), 0, "{run}");
        assert!(number(run, "copy_screen_p50_ms") <= number(run, "copy_screen_p99_ms"));
        assert!(number(run, "keypoint_search_p99_ms") > 0.0, "{run}");
        for field in [
            "keypoint_vote_p99_ms",
            "ranked_out_groups_per_upload",
            "copy_keypoint_search_p99_ms",
            "copy_keypoint_vote_p99_ms",
        ] {
            number(run, field);
        }
        // The screened pictures joined a loaded bank: its keypoint index grew, by a fraction.
        let (loaded, added) = (
            number(run, "keypoint_bytes_per_entry"),
            number(run, "keypoint_bytes_per_entry_after_adds"),
        );
        assert!(added > loaded, "{run}");
    }
    // Four times the entries, drawn from the same pictures: about four times the points.
    let points = |i: usize| runs[i]["keypoints"].as_f64().expect("count");
    assert!(points(1) > 2.0 * points(0), "{report}");
    let png = image::open(out.path().join("bench-keypoints.png")).expect("png");
    assert!(png.width() > 100);

    // A bank of no entries is refused, by name.
    let o = vigie(&["bench", "keypoints", "--image-entries", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--image-entries"));
    // So is an edit the catalogue does not have, before any picture is read.
    let o = vigie(&[
        "bench",
        "keypoints",
        "--image-entries",
        "10",
        "--copy-edits",
        "crop_60pc_corner,no_such_edit",
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("no_such_edit") && stderr.contains("crop_60pc_corner"),
        "{stderr}"
    );
}

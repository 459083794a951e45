//! The admin CLI as a user runs it: the binary on a temporary data directory.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const PDQ_A: &str = "3679ec0db4a3d9e5e6a1b3a3c8e4d8d1a7d9e5f6a1b3a3c8e4d8d1a7d9e5f6a1";
const PDQ_B: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

fn vigie(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bank_import_export_audit_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let created = json_lines(&ok(&vigie(
        &dir,
        &["bank", "create", "ads", "--kind", "allow"],
        None,
    )));
    assert_eq!(created[0]["name"], "ads");
    assert_eq!(created[0]["kind"], "allow");
    assert_eq!(created[0]["max_distance"]["pdq"], 31);
    ok(&vigie(&dir, &["bank", "create", "blocked"], None));

    // Import from stdin: the last stdout line is the summary.
    let input = format!(
        "pdq {PDQ_A} collab cat\nurl http://x.invalid\npdq nothex\nmd5 d41d8cd98f00b204e9800998ecf8427e\n"
    );
    let out = vigie(
        &dir,
        &["import", "--bank", "ads", "--format", "signal-lines", "-"],
        Some(&input),
    );
    let stdout = ok(&out);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with(r#"{"added":2,"updated":0,"skipped":1,"failed":1"#),
        "{last}"
    );
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(summary["added"], 2);
    assert_eq!(summary["updated"], 0);
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["failed"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3:"));

    // From a file, as jsonl; again: updates.
    let file = tmp.path().join("in.jsonl");
    std::fs::write(
        &file,
        format!("{{\"external_id\":\"x1\",\"hashes\":{{\"pdq\":\"{PDQ_B}\"}},\"label\":\"t\"}}\n"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    for expected_updated in [0, 1] {
        let stdout = ok(&vigie(
            &dir,
            &["import", "--bank", "ads", "--format", "jsonl", f],
            None,
        ));
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(summary["updated"], expected_updated);
    }

    let exported = ok(&vigie(
        &dir,
        &["export", "--bank", "ads", "--format", "signal-lines"],
        None,
    ));
    assert_eq!(
        exported,
        format!("md5 d41d8cd98f00b204e9800998ecf8427e\npdq {PDQ_A}\npdq {PDQ_B}\n")
    );
    let only_t = ok(&vigie(
        &dir,
        &[
            "export", "--bank", "ads", "--format", "jsonl", "--label", "t",
        ],
        None,
    ));
    assert_eq!(json_lines(&only_t)[0]["external_id"], "x1");

    // Strict: one bad line and nothing is imported.
    let out = vigie(
        &dir,
        &[
            "import",
            "--bank",
            "blocked",
            "--format",
            "hex",
            "--algorithm",
            "pdq",
            "--strict",
            "-",
        ],
        Some(&format!("{PDQ_A}\nbad\n")),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let banks = json_lines(&ok(&vigie(&dir, &["bank", "list"], None)));
    let blocked = banks.iter().find(|b| b["name"] == "blocked").unwrap();
    assert_eq!(blocked["entries"], 0);

    let audit = json_lines(&ok(&vigie(&dir, &["audit", "--bank", "ads"], None)));
    assert_eq!(audit[0]["action"], "bank_create");
    assert_eq!(audit[0]["actor"], "cli:tester");
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "import" && e["detail"]["added"] == 2)
    );
    assert!(audit.iter().all(|e| e["bank"] == "ads"));
    let none = json_lines(&ok(&vigie(
        &dir,
        &["audit", "--since", "2999-01-01T00:00:00Z"],
        None,
    )));
    assert!(none.is_empty());
}

#[test]
fn entries_and_bank_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&vigie(
        dir,
        &["bank", "create", "b", "--pdq-max-distance", "20"],
        None,
    ));
    let added = json_lines(&ok(&vigie(
        dir,
        &[
            "entries",
            "add",
            "--bank",
            "b",
            "--pdq",
            PDQ_A,
            "--md5",
            "d41d8cd98f00b204e9800998ecf8427e",
            "--external-id",
            "case-7",
            "--label",
            "trafficking",
            "--actor",
            "alice",
        ],
        None,
    )));
    let id = added[0]["id"].as_u64().unwrap();
    assert_eq!(added[0]["added"], true);
    let shown = json_lines(&ok(&vigie(
        dir,
        &["entries", "show", &id.to_string()],
        None,
    )));
    assert_eq!(shown[0]["external_id"], "case-7");
    assert_eq!(shown[0]["hashes"]["pdq"], PDQ_A);
    assert_eq!(shown[0]["added_by"], "alice");
    let by_ext = json_lines(&ok(&vigie(
        dir,
        &["entries", "show", "--bank", "b", "--external-id", "case-7"],
        None,
    )));
    assert_eq!(by_ext[0]["id"], id);
    let bad = vigie(
        dir,
        &["entries", "add", "--bank", "b", "--pdq", "abc"],
        None,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--pdq"));
    let disabled = json_lines(&ok(&vigie(
        dir,
        &[
            "entries",
            "disable",
            "--bank",
            "b",
            &id.to_string(),
            "--until",
            "2030-01-01T00:00:00Z",
        ],
        None,
    )));
    assert_eq!(disabled[0]["disabled_until"], "2030-01-01T00:00:00Z");
    let listed = json_lines(&ok(&vigie(dir, &["entries", "list", "--bank", "b"], None)));
    assert_eq!(listed.len(), 1);
    ok(&vigie(
        dir,
        &[
            "entries",
            "remove",
            "--bank",
            "b",
            "--external-id",
            "case-7",
        ],
        None,
    ));
    assert!(json_lines(&ok(&vigie(dir, &["entries", "list", "--bank", "b"], None))).is_empty());
    let updated = json_lines(&ok(&vigie(
        dir,
        &[
            "bank",
            "update",
            "b",
            "--disable",
            "--phash-max-distance",
            "4",
        ],
        None,
    )));
    assert_eq!(updated[0]["enabled"], false);
    assert_eq!(updated[0]["max_distance"]["pdq"], 20);
    assert_eq!(updated[0]["max_distance"]["phash"], 4);
    let shown = json_lines(&ok(&vigie(dir, &["bank", "show", "b"], None)));
    assert_eq!(shown[0]["entries"], 0);
    ok(&vigie(dir, &["bank", "delete", "b"], None));
    let missing = vigie(dir, &["bank", "show", "b"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no bank named"));
}

#[test]
fn entries_add_from_an_image_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&vigie(dir, &["bank", "create", "b"], None));
    let image = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/store/opencv_data_box.jpg"
    );
    let added = json_lines(&ok(&vigie(
        dir,
        &["entries", "add", "--bank", "b", image, "--label", "x"],
        None,
    )));
    assert_eq!(added.len(), 1);
    let shown = json_lines(&ok(&vigie(
        dir,
        &["entries", "show", &added[0]["id"].to_string()],
        None,
    )));
    let hashes = &shown[0]["hashes"];
    // The SHA-256 of the file names the entry; every algorithm is stored.
    let sha = hashes["sha256"].as_str().unwrap();
    assert_eq!(shown[0]["external_id"], sha);
    for (name, len) in [
        ("pdq", 64),
        ("phash", 16),
        ("dhash", 16),
        ("md5", 32),
        ("sha256", 64),
    ] {
        assert_eq!(hashes[name].as_str().unwrap().len(), len, "{name}");
    }
    // Adding the same file again updates the same entry.
    let again = json_lines(&ok(&vigie(
        dir,
        &["entries", "add", "--bank", "b", image],
        None,
    )));
    assert_eq!(again[0]["id"], added[0]["id"]);
    assert_eq!(again[0]["added"], false);
    let quiet = vigie(dir, &["entries", "add", "--bank", "b", image], None);
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("warning"),
        "a photo banks without a warning"
    );
    // A featureless picture (issue 15): banked, but never silently; its pHash/dHash not kept.
    let flat = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/field-cases/featureless-64bit/banked-pink-card.png"
    );
    let out = vigie(dir, &["entries", "add", "--bank", "b", flat], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("PDQ quality"),
        "{stderr}"
    );
    assert!(stderr.contains("pHash/dHash quality"), "{stderr}");
    let card = json_lines(&ok(&out));
    let shown = json_lines(&ok(&vigie(
        dir,
        &["entries", "show", &card[0]["id"].to_string()],
        None,
    )));
    assert!(shown[0]["hashes"]["pdq"].is_string());
    assert!(shown[0]["hashes"]["phash"].is_null() && shown[0]["hashes"]["dhash"].is_null());
    // Not an image: a clear error, nothing stored.
    let not_image = tmp.path().join("x.jpg");
    std::fs::write(&not_image, b"not an image").unwrap();
    let out = vigie(
        dir,
        &["entries", "add", "--bank", "b", not_image.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.jpg"));
}

#[test]
fn a_held_data_dir_is_a_clear_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&vigie(dir, &["bank", "create", "b"], None));
    let _held = vigie::store::Store::open(dir, &vigie::store::RocksOptions::default()).unwrap();
    let started = std::time::Instant::now();
    let out = vigie(dir, &["bank", "list"], None);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another vigie process"),
        "{stderr}"
    );
}

#[test]
fn reading_commands_do_not_create_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("absent");
    let out = vigie(&dir, &["bank", "list"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no vigie store"));
    assert!(!dir.exists());
}

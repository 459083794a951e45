//! `vigie match` end to end: the binary on small files.

use std::path::Path;
use std::process::{Command, Output};

use vigie::bits::{Bits, Hash256};

fn vigie_match(index: &Path, queries: &Path, r: u32, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .arg("match")
        .arg("--index")
        .arg(index)
        .arg("--queries")
        .arg(queries)
        .args(["--max-distance", &r.to_string()])
        .args(extra)
        .output()
        .expect("run vigie")
}

fn with_bits<const W: usize>(bits: &[usize]) -> Bits<W> {
    let mut h = Bits::<W>::zero();
    for &b in bits {
        h.set_bit(b);
    }
    h
}

fn summary(stderr: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().last().expect("a summary line");
    serde_json::from_str(last).expect("the summary is JSON")
}

#[test]
fn matches_256_bit_lists_with_comments_blanks_and_tabs() {
    let dir = tempfile::tempdir().unwrap();
    let zero = Hash256::zero();
    let near = with_bits::<4>(&[0, 100, 255]); // distance 3 from zero
    let far = with_bits::<4>(&(0..40).collect::<Vec<_>>()); // distance 40 from zero
    let index = dir.path().join("bank.txt");
    let queries = dir.path().join("queries.txt");
    std::fs::write(
        &index,
        format!(
            "# bank export\n{zero}\tad 1\n\n{far}\tad 2\n{near}\n{}\r\n",
            zero.to_hex().to_uppercase()
        ),
    )
    .unwrap();
    std::fs::write(&queries, format!("{near}\tupload 9\n# nothing\n{far}\n")).unwrap();

    let out = vigie_match(&index, &queries, 31, &[]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Query line 0 (`near`) is 0 from index line 4, 3 from lines 1 and 5 (zero twice), 37 from line 3.
    // Query line 2 (`far`) is 0 from line 3 only.
    assert_eq!(
        stdout,
        "{\"query\":0,\"matches\":[{\"index\":4,\"distance\":0},{\"index\":1,\"distance\":3},{\"index\":5,\"distance\":3}]}\n\
         {\"query\":2,\"matches\":[{\"index\":3,\"distance\":0}]}\n"
    );
    let s = summary(&out.stderr);
    assert_eq!(s["entries"], 4);
    assert_eq!(s["queries"], 2);
    assert_eq!(s["threads"], 1);
    for key in ["build_ms", "query_total_ms", "query_us_p50", "query_us_p99"] {
        assert!(
            s[key].as_f64().is_some_and(|v| v >= 0.0),
            "{key} missing in {s}"
        );
    }
}

#[test]
fn matches_64_bit_lists_and_threads_do_not_change_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("bank.txt");
    let queries = dir.path().join("queries.txt");
    let bank: Vec<Bits<1>> = (0..300u64)
        .map(|i| Bits([i.wrapping_mul(0x9E37_79B9_7F4A_7C15)]))
        .collect();
    let text: String = bank.iter().map(|h| format!("{h}\n")).collect();
    std::fs::write(&index, text).unwrap();
    let qs: String = bank
        .iter()
        .step_by(7)
        .map(|h| format!("{}\n", Bits([h.0[0] ^ 0b1011])))
        .collect();
    std::fs::write(&queries, qs).unwrap();

    let one = vigie_match(&index, &queries, 10, &[]);
    let four = vigie_match(&index, &queries, 10, &["--threads", "4"]);
    assert!(one.status.success() && four.status.success());
    assert_eq!(one.stdout, four.stdout);
    assert_eq!(summary(&four.stderr)["threads"], 4);
    let lines: Vec<&str> = std::str::from_utf8(&one.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 300usize.div_ceil(7));
    for (q, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["query"], q);
        // Each query is its bank hash with 3 bits flipped.
        assert!(
            v["matches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["index"] == q * 7 && m["distance"] == 3),
            "{line}"
        );
        for m in v["matches"].as_array().unwrap() {
            let i = m["index"].as_u64().unwrap() as usize;
            let d = bank[i].distance(&Bits([bank[q * 7].0[0] ^ 0b1011]));
            assert_eq!(m["distance"], d);
            assert!(d <= 10);
        }
    }
}

#[test]
fn malformed_lines_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("bank.txt");
    let queries = dir.path().join("queries.txt");
    let good = Hash256::zero().to_hex();
    std::fs::write(&queries, format!("{good}\n")).unwrap();

    let cases = [
        (
            format!("{good}\n# ok\n{}zz\n", &good[..62]),
            3,
            "not a hex digit",
        ),
        (format!("{good}\n\n{}\n", &good[..16]), 3, "hex digits"), // a 64-bit hash in a 256-bit list
        (format!("{good}\n\tno hash\n"), 2, "no hash"),
        ("abc\n".to_string(), 1, "64 hex digits"),
    ];
    for (text, line, reason) in cases {
        std::fs::write(&index, text).unwrap();
        let out = vigie_match(&index, &queries, 31, &[]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}:{line}:", index.display())),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{stderr}");
        assert!(out.stdout.is_empty());
    }

    // A 64-bit query against a 256-bit bank: the query file's line is named.
    std::fs::write(&index, format!("{good}\n")).unwrap();
    std::fs::write(&queries, format!("# q\n{}\n", &good[..16])).unwrap();
    let out = vigie_match(&index, &queries, 31, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", queries.display())),
        "{stderr}"
    );

    // A missing file is named too.
    let missing = dir.path().join("missing.txt");
    let out = vigie_match(&missing, &queries, 31, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.txt"));
}

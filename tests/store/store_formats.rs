//! Import and export formats: parsing, bad lines, idempotent re-import, lossless jsonl round trip.

use vigie::store::formats::{
    self, ExportOptions, Format, FormatError, ImportOptions, ImportSummary, LineError,
};
use vigie::store::{Algorithm, NewBank, Store};

const PDQ_A: &str = "3679ec0db4a3d9e5e6a1b3a3c8e4d8d1a7d9e5f6a1b3a3c8e4d8d1a7d9e5f6a1";
const PDQ_B: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

fn store_with_bank() -> Store {
    let s = Store::in_memory();
    s.create_bank(
        NewBank {
            name: "b".into(),
            ..NewBank::default()
        },
        "t",
    )
    .unwrap();
    s
}

fn import(s: &Store, text: &str, options: &ImportOptions) -> (ImportSummary, Vec<LineError>) {
    let mut bad = Vec::new();
    let summary = formats::import(
        s,
        "b",
        text.as_bytes(),
        options,
        "tester",
        &mut |_| {},
        &mut |e| bad.push(e.clone()),
    )
    .unwrap();
    (summary, bad)
}

fn export(s: &Store, format: Format, label: Option<&str>, algorithm: Option<Algorithm>) -> String {
    let mut out = Vec::new();
    let options = ExportOptions {
        format,
        label: label.map(str::to_string),
        algorithm,
    };
    formats::export(s, "b", &options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn threatexchange_csv_imports_as_it_is() {
    // The columns `threatexchange dataset -P --csv` writes; rows of other signal types are skipped.
    let csv = format!(
        "signal_type,signal_str,collab,category,tags\n\
         pdq,{PDQ_A},ncmec-hotline,trafficking,ad repost\n\
         url,https://example.invalid/x,ncmec-hotline,trafficking,\n\
         video_md5,d41d8cd98f00b204e9800998ecf8427e,ncmec-hotline,trafficking,\n\
         pdq,{PDQ_B},other-collab,exploitation,\n\
         raw_text,\"some, text\",c,d,\n\
         url,https://example.invalid/y,c,d,\n"
    );
    let s = store_with_bank();
    let (summary, bad) = import(&s, &csv, &ImportOptions::new(Format::Csv));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        (
            summary.added,
            summary.updated,
            summary.skipped,
            summary.failed
        ),
        (2, 0, 4, 0)
    );
    assert_eq!(summary.skipped_by_type.get("url"), Some(&2));
    assert_eq!(summary.skipped_by_type.get("video_md5"), Some(&1));
    assert_eq!(summary.skipped_by_type.get("raw_text"), Some(&1));
    let e = s.find_entry("b", &format!("pdq:{PDQ_A}")).unwrap().unwrap();
    assert_eq!(e.label, "trafficking");
    assert_eq!(e.source, "ncmec-hotline");
    assert_eq!(e.note, "tags: ad repost");
    // Importing the same file again updates instead of duplicating.
    let (again, _) = import(&s, &csv, &ImportOptions::new(Format::Csv));
    assert_eq!((again.added, again.updated, again.skipped), (0, 2, 4));
    assert_eq!(s.count_entries("b").unwrap(), 2);
}

#[test]
fn bad_lines_are_reported_with_numbers_and_the_rest_imports() {
    let text = format!(
        "pdq {PDQ_A} collab category\n\
         pdq 12345\n\
         \n\
         pdq {}\n\
         sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709\n\
         url http://x.invalid\n\
         pdq\n\
         md5 d41d8cd98f00b204e9800998ecf8427e trailing fields ignored\n",
        "z".repeat(64)
    );
    let s = store_with_bank();
    let (summary, bad) = import(&s, &text, &ImportOptions::new(Format::SignalLines));
    assert_eq!((summary.added, summary.skipped, summary.failed), (2, 1, 4));
    let lines: Vec<u64> = bad.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 4, 5, 7]);
    assert!(
        bad[0].reason.contains("expected 64 hex digits"),
        "{}",
        bad[0].reason
    );
    assert!(
        bad[1].reason.contains("not a hex digit"),
        "{}",
        bad[1].reason
    );
    assert!(
        bad[2].reason.contains("unknown algorithm"),
        "{}",
        bad[2].reason
    );
    assert_eq!(summary.errors, bad);
    assert!(
        s.find_entry("b", "md5:d41d8cd98f00b204e9800998ecf8427e")
            .unwrap()
            .is_some()
    );
}

#[test]
fn strict_stops_at_the_first_bad_line_and_check_finds_them_all() {
    let text = format!("{PDQ_A}\nnot-a-hash\n{PDQ_B}\nzz\n");
    let mut options = ImportOptions::new(Format::Hex);
    options.algorithm = Some(Algorithm::Pdq);
    let checked = formats::check(text.as_bytes(), &options).unwrap();
    assert_eq!((checked.added, checked.failed), (2, 2));
    assert_eq!(
        checked.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [2, 4]
    );
    options.strict = true;
    let s = store_with_bank();
    let err = formats::import(
        &s,
        "b",
        text.as_bytes(),
        &options,
        "t",
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(&err, FormatError::BadLine(LineError { line: 2, .. })),
        "{err}"
    );
    // hex without --algorithm is refused up front.
    let err = formats::check(text.as_bytes(), &ImportOptions::new(Format::Hex)).unwrap_err();
    assert!(err.to_string().contains("--algorithm"));
}

#[test]
fn broken_csv_records_are_failures_not_aborts() {
    let csv = format!(
        "external_id,algorithm,hash,label\na,pdq,{PDQ_A},x\nb,pdq\nc,nosuch,{PDQ_B},y\nd,pdq,{PDQ_B},y\n"
    );
    let s = store_with_bank();
    let (summary, bad) = import(&s, &csv, &ImportOptions::new(Format::Csv));
    assert_eq!((summary.added, summary.failed), (2, 2));
    assert_eq!(bad.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4]);
    assert!(bad[0].reason.contains("broken CSV"));
    assert!(bad[1].reason.contains("unknown algorithm"));
    // A header without a hash column is refused as a whole.
    let err =
        formats::check("a,b\n1,2\n".as_bytes(), &ImportOptions::new(Format::Csv)).unwrap_err();
    assert!(err.to_string().contains("hash"));
}

#[test]
fn jsonl_round_trip_is_lossless() {
    let s = store_with_bank();
    let jsonl = format!(
        concat!(
            r#"{{"external_id":"a","hashes":{{"pdq":"{a}","md5":"d41d8cd98f00b204e9800998ecf8427e"}},"label":"x","source":"ncmec","note":"n, with \"quotes\"","added_by":"hotline","added_at":"2024-01-02T03:04:05Z"}}"#,
            "\n",
            r#"{{"external_id":"b","hashes":{{"dhash":"0123456789abcdef","phash":"fedcba9876543210","sha256":"{b}"}},"label":"y","disabled_until":"2030-01-01T00:00:00Z"}}"#,
            "\n"
        ),
        a = PDQ_A,
        b = PDQ_B
    );
    let (summary, bad) = import(&s, &jsonl, &ImportOptions::new(Format::Jsonl));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(summary.added, 2);
    let first = export(&s, Format::Jsonl, None, None);
    // Into a fresh store and out again: identical but for the vigie-assigned ids.
    let s2 = store_with_bank();
    s2.upsert_entries(
        "b",
        vec![vigie::store::NewEntry {
            external_id: "filler".into(),
            hashes: s.find_entry("b", "a").unwrap().unwrap().hashes,
            ..Default::default()
        }],
        "t",
    )
    .unwrap();
    s2.remove_entries(
        "b",
        &[s2.find_entry("b", "filler").unwrap().unwrap().id],
        "t",
    )
    .unwrap();
    import(&s2, &first, &ImportOptions::new(Format::Jsonl));
    let second = export(&s2, Format::Jsonl, None, None);
    let strip = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("id");
                v
            })
            .collect()
    };
    assert_eq!(strip(&first), strip(&second));
    let a = s2.find_entry("b", "a").unwrap().unwrap();
    assert_eq!(a.added_by, "hotline");
    assert_eq!(a.added_at.to_string(), "2024-01-02T03:04:05Z");
    assert_eq!(a.note, "n, with \"quotes\"");
    let b = s2.find_entry("b", "b").unwrap().unwrap();
    assert_eq!(
        b.disabled_until.unwrap().to_string(),
        "2030-01-01T00:00:00Z"
    );
    assert_eq!(b.hashes.iter().count(), 3);
}

#[test]
fn csv_and_line_exports_reimport_and_filter() {
    let s = store_with_bank();
    let jsonl = format!(
        "{{\"external_id\":\"a\",\"hashes\":{{\"pdq\":\"{PDQ_A}\",\"md5\":\"d41d8cd98f00b204e9800998ecf8427e\"}},\"label\":\"x\",\"note\":\"has, comma\"}}\n\
         {{\"external_id\":\"b\",\"hashes\":{{\"pdq\":\"{PDQ_B}\"}},\"label\":\"y\"}}\n"
    );
    import(&s, &jsonl, &ImportOptions::new(Format::Jsonl));
    let csv = export(&s, Format::Csv, None, None);
    assert_eq!(
        csv,
        format!(
            "external_id,algorithm,hash,label,source,note\n\
             a,pdq,{PDQ_A},x,,\"has, comma\"\n\
             a,md5,d41d8cd98f00b204e9800998ecf8427e,x,,\"has, comma\"\n\
             b,pdq,{PDQ_B},y,,\n"
        )
    );
    // CSV rows of one external id merge back into one entry.
    let s2 = store_with_bank();
    let (summary, _) = import(&s2, &csv, &ImportOptions::new(Format::Csv));
    assert_eq!(summary.added, 2);
    assert_eq!(
        s2.find_entry("b", "a").unwrap().unwrap().hashes,
        s.find_entry("b", "a").unwrap().unwrap().hashes
    );
    assert_eq!(
        export(&s, Format::SignalLines, Some("y"), None),
        format!("pdq {PDQ_B}\n")
    );
    assert_eq!(
        export(&s, Format::Hex, None, Some(Algorithm::Md5)),
        "d41d8cd98f00b204e9800998ecf8427e\n"
    );
    assert_eq!(
        export(&s, Format::Hex, None, Some(Algorithm::Pdq)),
        format!("{PDQ_A}\n{PDQ_B}\n")
    );
    let only_x = export(&s, Format::Jsonl, Some("x"), None);
    assert_eq!(only_x.lines().count(), 1);
    assert!(only_x.contains("\"external_id\":\"a\""));
}

#[test]
fn hostile_lines_do_not_panic_or_exhaust_memory() {
    let s = store_with_bank();
    let long = "a".repeat(formats::MAX_LINE_BYTES + 10);
    let text = format!(
        "{long}\n\u{feff}pdq {PDQ_A}\n\u{0}\u{1}\n{}\n",
        "é".repeat(40)
    );
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe pdq\n");
    let mut bad = Vec::new();
    let summary = formats::import(
        &s,
        "b",
        &bytes[..],
        &ImportOptions::new(Format::SignalLines),
        "t",
        &mut |_| {},
        &mut |e| bad.push(e.clone()),
    )
    .unwrap();
    assert_eq!(summary.added, 1);
    assert_eq!(bad[0].line, 1);
    assert!(bad[0].reason.contains("longer than"));
    assert!(
        bad.iter()
            .any(|e| e.line == 5 && e.reason.contains("UTF-8"))
    );
    for format in [Format::Jsonl, Format::Csv, Format::Hex] {
        let mut options = ImportOptions::new(format);
        options.algorithm = Some(Algorithm::Pdq);
        let _ = formats::check(&bytes[..], &options);
    }
}

#[test]
fn imports_are_audited_with_counts() {
    let s = store_with_bank();
    let mut options = ImportOptions::new(Format::Hex);
    options.algorithm = Some(Algorithm::Pdq);
    options.batch_size = 1;
    let mut commits = 0;
    formats::import(
        &s,
        "b",
        format!("{PDQ_A}\nbad\n{PDQ_B}\n").as_bytes(),
        &options,
        "importer",
        &mut |done| {
            commits += 1;
            assert_eq!(done.len(), 1);
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(commits, 2);
    let events = s.audit_events(&Default::default()).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.action, vigie::store::AuditAction::Import);
    assert_eq!(last.actor, "importer");
    assert_eq!(last.detail["added"], 2);
    assert_eq!(last.detail["failed"], 1);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == vigie::store::AuditAction::EntryAdd)
            .count(),
        2
    );
}

//! Import and export of bank entries in the industry's exchange formats, streaming in constant
//! memory (one line or record at a time, entries committed in batches).
//!
//! - `jsonl`: vigie's own, one [`Entry`] per line; lossless (everything but the vigie-assigned id).
//! - `csv`: a header row names the columns, among `external_id`, `algorithm`/`signal_type`,
//!   `hash`/`signal_str`, `label`/`category`, `source`/`collab`, `note`, `tags`; this covers the CSV
//!   of python-threatexchange's `threatexchange dataset -P --csv`
//!   (`signal_type,signal_str,collab,category,tags`).
//! - `signal-lines`: python-threatexchange's `<signal_type> <hash>` lines; fields after the hash
//!   (its `dataset -P` appends collaboration and category) are ignored.
//! - `hex`: one hash per line, the algorithm given separately; the line may go on after the hash
//!   as Meta's PDQ tools write it (see [`hash_in_line`]); `#` lines are comments.
//!
//! Every format reads files as they are saved on Windows too: UTF-8 with or without a byte-order
//! mark, UTF-16 (little or big endian, with its mark: PowerShell 5's `>` and Notepad's "Unicode"),
//! CRLF line ends, spaces around fields. 64-bit pHash and dHash hex is read (and written) in the
//! bit order Python `imagehash` writes, where most such lists come from (see
//! `hashing::perceptual64`).
//!
//! Rows without an external id get `<algorithm>:<hex>`, so importing the same list twice
//! updates instead of duplicating.
//!
//! ## Several rows for one external id (an ad with several photos)
//! The rows of one external id make one entry holding every hash they carry (see
//! `EntryHashes::more`): each is searchable, a match names the external id, and every export
//! gives each hash back. An import is an upsert per external id: the entry becomes what the file
//! says of it (its rows' hashes replace the stored ones, so a photo dropped from the ad is
//! dropped from the bank, and importing the same file again changes nothing). Rows of one id are
//! expected together, as `export` writes them; rows of an id met again later in the same import
//! are added to what the import already wrote for it. One entry has one label and one source:
//! a row that gives its id another label or source is reported as failed (by line), as is a row
//! past `MAX_ENTRY_HASHES`; distinct notes are kept, joined by ` | `.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::str::FromStr;

use serde::Serialize;

use super::model::{Algorithm, Entry, EntryHashes, HashValue, MAX_TEXT_LEN, NewEntry, Upserted};
use super::{Applied, Change, Origin, Store, StoreError};

/// An exchange format for import and export (names as in the CLI: `jsonl`, `csv`,
/// `signal-lines`, `hex`); see the module doc for each one's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `jsonl`: one vigie entry as a JSON object per line; lossless.
    Jsonl,
    /// `csv`: a header row naming the columns, then one record per hash.
    Csv,
    /// `signal-lines`: python-threatexchange's `<signal_type> <hash>` lines.
    SignalLines,
    /// `hex`: one hash per line, of the algorithm given in the options.
    Hex,
}

impl FromStr for Format {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "signal-lines" => Ok(Format::SignalLines),
            "hex" => Ok(Format::Hex),
            _ => Err(FormatError::Invalid(format!(
                "unknown format {} (expected jsonl, csv, signal-lines or hex)",
                super::quote(s)
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::SignalLines => "signal-lines",
            Format::Hex => "hex",
        })
    }
}

/// Why an import, check or export failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The store refused or failed (unknown bank, storage error).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the input or writing the output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A bad request: unknown format, a missing `--algorithm`, an unusable CSV header or writer.
    #[error("{0}")]
    Invalid(String),
    /// `--strict` and a line was bad.
    #[error("line {}: {}", .0.line, .0.reason)]
    BadLine(LineError),
    /// A non-strict import that stopped before the end of its input (a read error, the client
    /// going away): what was committed before it stays, and is named.
    #[error(
        "{cause}; the import stopped there, and the {added} entries added and {updated} updated \
         before it stay committed"
    )]
    Incomplete {
        /// Why the import stopped.
        cause: Box<FormatError>,
        /// Entries added before it stopped, committed.
        added: u64,
        /// Entries updated before it stopped, committed.
        updated: u64,
    },
}

/// Most entries a strict import holds before committing them, all at once, as one atomic batch.
pub const MAX_STRICT_ENTRIES: usize = 1_000_000;

/// A line (or CSV record) that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number in the input.
    pub line: u64,
    /// Why the line was refused, for people.
    pub reason: String,
}

/// Signal types of python-threatexchange / ThreatExchange that are not image hashes vigie holds:
/// counted as skipped, not as failures.
const FOREIGN_SIGNAL_TYPES: &[&str] = &[
    "url",
    "url_md5",
    "raw_text",
    "text",
    "trend_query",
    "video_md5",
    "vpdq",
    "video_tmk_pdqf",
    "tmk",
    "video_pdq",
];

fn is_foreign_signal_type(name: &str) -> bool {
    FOREIGN_SIGNAL_TYPES.contains(&name.trim().to_ascii_lowercase().as_str())
}

/// One parsed input unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A line that yields an entry to add or replace.
    Entry {
        /// 1-based line number in the input.
        line: u64,
        /// The validated entry (external id defaulted to `<algorithm>:<hex>` when absent).
        entry: Box<NewEntry>,
    },
    /// A signal type vigie does not hold.
    Skipped {
        /// 1-based line number in the input.
        line: u64,
        /// The signal type, trimmed and lowercase (`url`, `video_md5`, ...).
        signal_type: String,
    },
    /// A line that cannot be imported.
    Bad(LineError),
}

/// Longest accepted input line; longer ones are reported and skipped without being held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The hash in a line of a hash list, as the field writes them: the line's first field (up to a
/// tab, a comma or a space), spaces around it trimmed, or the value of a `hash=` field. Covers
/// Meta's PDQ tools (`pdq-photo-hasher`: `<hash>,<quality>,<path>`; their hash I/O:
/// `hash=<hex>,norm=…,quality=…,<path>`), `<hash>\t<anything>`, `<hash>  <path>` (the
/// `sha256sum` layout) and a bare hash, with or without a UTF-8 byte-order mark in front. The
/// caller strips the line end. What it returns is all that an error about the hash counts or
/// quotes. On bytes: the rest of a line (a path in a Windows code page) need not be UTF-8.
pub fn hash_field(line: &[u8]) -> &[u8] {
    // Spaces around the line are padding; a tab or comma in front is a separator: the first
    // field, the hash, is then empty.
    let line = line.trim_ascii_end();
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = &line[line.iter().take_while(|&&b| b == b' ').count()..];
    let fields = || {
        line.split(|&b| b == b'\t' || b == b',')
            .map(<[u8]>::trim_ascii)
    };
    let first = fields().next().unwrap_or(b"");
    // A line of key=value fields (Meta's hash I/O) carries its hash in the `hash=` field; any
    // other line starts with its hash (a path further on may well contain `hash=`).
    if first.contains(&b'=') {
        return fields()
            .find_map(|f| {
                (f.len() >= 5 && f[..5].eq_ignore_ascii_case(b"hash=")).then(|| f[5..].trim_ascii())
            })
            .unwrap_or(first);
    }
    first
        .split(u8::is_ascii_whitespace)
        .find(|t| !t.is_empty())
        .unwrap_or(b"")
}

/// [`hash_field`] of a line of text.
pub fn hash_in_line(line: &str) -> &str {
    // The field is cut at ASCII bytes, so it is UTF-8 whenever the line is.
    std::str::from_utf8(hash_field(line.as_bytes())).unwrap_or("")
}

/// `reader` as UTF-8 text: a UTF-8 byte-order mark is skipped, UTF-16 with its mark (little or
/// big endian) is transcoded as it streams (unpaired surrogates become U+FFFD, which no hash
/// contains, so such a line fails as a bad hash). Anything else passes through unchanged.
pub fn text_reader<'a>(mut reader: impl BufRead + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    // The mark is at most 3 bytes; a reader may hand them over in pieces.
    let mut head = Vec::with_capacity(3);
    while head.len() < 3 {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let n = available.len().min(3 - head.len());
        head.extend_from_slice(&available[..n]);
        reader.consume(n);
        if head.len() >= 2 && matches!(head[..2], [0xFF, 0xFE] | [0xFE, 0xFF]) {
            break;
        }
    }
    match head.as_slice() {
        [0xEF, 0xBB, 0xBF] => Ok(Box::new(reader)),
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => {
            let big_endian = head[0] == 0xFE;
            let rest = std::io::Cursor::new(head[2..].to_vec()).chain(reader);
            Ok(Box::new(std::io::BufReader::new(Utf16Reader {
                inner: rest,
                big_endian,
                pending: Vec::new(),
                high: None,
                done: false,
            })))
        }
        _ => Ok(Box::new(std::io::Cursor::new(head).chain(reader))),
    }
}

/// UTF-16 in, UTF-8 out (see [`text_reader`]).
struct Utf16Reader<R> {
    inner: R,
    big_endian: bool,
    /// Transcoded bytes not yet handed out.
    pending: Vec<u8>,
    /// A high surrogate waiting for its pair.
    high: Option<u16>,
    done: bool,
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() && !self.done {
            let mut units = [0u8; 8192];
            let mut n = self.inner.read(&mut units)?;
            if n == 0 {
                self.done = true;
                if self.high.take().is_some() {
                    self.pending.extend_from_slice("\u{fffd}".as_bytes());
                }
                break;
            }
            // Whole code units only: an odd byte waits for its partner.
            while n % 2 == 1 {
                let m = self.inner.read(&mut units[n..n + 1])?;
                if m == 0 {
                    // A dangling byte at the end: not text.
                    self.pending.extend_from_slice("\u{fffd}".as_bytes());
                    break;
                }
                n += m;
            }
            let mut buf = [0u8; 4];
            for pair in units[..n - n % 2].chunks_exact(2) {
                let unit = if self.big_endian {
                    u16::from_be_bytes([pair[0], pair[1]])
                } else {
                    u16::from_le_bytes([pair[0], pair[1]])
                };
                let c = match (self.high.take(), unit) {
                    (None, 0xD800..=0xDBFF) => {
                        self.high = Some(unit);
                        continue;
                    }
                    (Some(h), 0xDC00..=0xDFFF) => char::decode_utf16([h, unit])
                        .next()
                        .and_then(Result::ok)
                        .unwrap_or('\u{fffd}'),
                    (Some(_), _) => {
                        self.pending.extend_from_slice("\u{fffd}".as_bytes());
                        match unit {
                            0xD800..=0xDBFF => {
                                self.high = Some(unit);
                                continue;
                            }
                            0xDC00..=0xDFFF => '\u{fffd}',
                            u => char::from_u32(u32::from(u)).unwrap_or('\u{fffd}'),
                        }
                    }
                    (None, 0xDC00..=0xDFFF) => '\u{fffd}',
                    (None, u) => char::from_u32(u32::from(u)).unwrap_or('\u{fffd}'),
                };
                self.pending
                    .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

fn default_external_id(hash: &HashValue) -> String {
    format!("{}:{}", hash.algorithm(), hash.to_hex())
}

fn bad(line: u64, reason: impl Into<String>) -> Parsed {
    Parsed::Bad(LineError {
        line,
        reason: reason.into(),
    })
}

/// Visitor of input lines: the line number and its text, or why it is unreadable.
type LineVisit<'a> = dyn FnMut(u64, Result<&str, String>) -> Result<bool, FormatError> + 'a;

/// Read lines of at most `MAX_LINE_BYTES`, calling `each(line_number, Result<text, reason>)`.
fn for_each_line(mut reader: impl BufRead, each: &mut LineVisit<'_>) -> Result<(), FormatError> {
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            // Discard the rest of the over-long line.
            loop {
                let available = reader.fill_buf()?;
                if available.is_empty() {
                    break;
                }
                match available.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        reader.consume(i + 1);
                        break;
                    }
                    None => {
                        let len = available.len();
                        reader.consume(len);
                    }
                }
            }
            if !each(
                number,
                Err(format!("line longer than {MAX_LINE_BYTES} bytes")),
            )? {
                return Ok(());
            }
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => Ok(t
                .strip_prefix('\u{feff}')
                .unwrap_or(t)
                .trim_end_matches(['\n', '\r'])),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        if !each(number, text)? {
            return Ok(());
        }
    }
}

/// Parse `reader` in `format`, calling `each` with every unit in input order; `each` returns
/// `Ok(false)` to stop. `algorithm` is required for `hex` and used by `csv` when it has no
/// algorithm column.
pub fn parse(
    reader: impl BufRead,
    format: Format,
    algorithm: Option<Algorithm>,
    each: &mut dyn FnMut(Parsed) -> Result<bool, FormatError>,
) -> Result<(), FormatError> {
    let reader = text_reader(reader)?;
    match format {
        Format::Jsonl => for_each_line(reader, &mut |line, text| {
            let parsed = match text {
                Err(reason) => bad(line, reason),
                Ok(t) if t.trim().is_empty() => return Ok(true),
                Ok(t) => match serde_json::from_str::<NewEntry>(t) {
                    Err(e) => bad(line, format!("invalid JSON entry: {e}")),
                    Ok(entry) => match entry.validate() {
                        Err(e) => bad(line, e.to_string()),
                        Ok(()) => Parsed::Entry {
                            line,
                            entry: Box::new(entry),
                        },
                    },
                },
            };
            each(parsed)
        }),
        Format::SignalLines => for_each_line(reader, &mut |line, text| {
            let parsed = match text {
                Err(reason) => bad(line, reason),
                Ok(t) if t.trim().is_empty() || t.trim_start().starts_with('#') => return Ok(true),
                Ok(t) => {
                    let mut fields = t.split_whitespace();
                    let (Some(signal_type), Some(rest)) = (fields.next(), fields.next()) else {
                        return each(bad(line, "expected `<signal_type> <hash>`"));
                    };
                    parse_signal(line, signal_type, hash_in_line(rest))
                }
            };
            each(parsed)
        }),
        Format::Hex => {
            let algorithm = algorithm
                .ok_or_else(|| FormatError::Invalid("the hex format needs --algorithm".into()))?;
            for_each_line(reader, &mut |line, text| {
                let parsed = match text {
                    Err(reason) => bad(line, reason),
                    Ok(t) if t.trim().is_empty() || t.trim_start().starts_with('#') => {
                        return Ok(true);
                    }
                    Ok(t) => match HashValue::parse(algorithm, hash_in_line(t)) {
                        Err(e) => bad(
                            line,
                            format!("{algorithm} hash {}: {e}", quoted(hash_in_line(t))),
                        ),
                        Ok(hash) => Parsed::Entry {
                            line,
                            entry: Box::new(entry_of_hash(hash)),
                        },
                    },
                };
                each(parsed)
            })
        }
        Format::Csv => parse_csv(reader, algorithm, each),
    }
}

fn entry_of_hash(hash: HashValue) -> NewEntry {
    let mut hashes = EntryHashes::default();
    hashes.set(hash);
    NewEntry {
        external_id: default_external_id(&hash),
        hashes,
        ..NewEntry::default()
    }
}

/// `text` quoted for an error message, cut at 80 characters (a hostile line may be 1 MiB).
fn quoted(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

fn parse_signal(line: u64, signal_type: &str, hex: &str) -> Parsed {
    match Algorithm::from_signal_type(signal_type) {
        Some(algorithm) => match HashValue::parse(algorithm, hex) {
            Ok(hash) => Parsed::Entry {
                line,
                entry: Box::new(entry_of_hash(hash)),
            },
            Err(e) => bad(line, format!("{algorithm} hash {}: {e}", quoted(hex))),
        },
        None if is_foreign_signal_type(signal_type) => Parsed::Skipped {
            line,
            signal_type: signal_type.trim().to_ascii_lowercase(),
        },
        None => bad(
            line,
            format!("unknown algorithm {}", super::quote(signal_type.trim())),
        ),
    }
}

/// Column positions found in a CSV header.
#[derive(Debug, Default)]
struct CsvColumns {
    external_id: Option<usize>,
    algorithm: Option<usize>,
    hash: Option<usize>,
    label: Option<usize>,
    source: Option<usize>,
    note: Option<usize>,
    tags: Option<usize>,
}

fn parse_csv(
    reader: impl BufRead,
    default_algorithm: Option<Algorithm>,
    each: &mut dyn FnMut(Parsed) -> Result<bool, FormatError>,
) -> Result<(), FormatError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::StringRecord::new();
    // The header row.
    let header = match csv.read_record(&mut record) {
        Ok(false) => return Ok(()),
        Ok(true) => record.clone(),
        Err(e) => return Err(FormatError::Invalid(format!("CSV header: {e}"))),
    };
    let mut columns = CsvColumns::default();
    for (i, name) in header.iter().enumerate() {
        let slot = match name
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase()
            .as_str()
        {
            "external_id" => &mut columns.external_id,
            "algorithm" | "signal_type" => &mut columns.algorithm,
            "hash" | "signal_str" => &mut columns.hash,
            "label" | "category" => &mut columns.label,
            "source" | "collab" => &mut columns.source,
            "note" => &mut columns.note,
            "tags" => &mut columns.tags,
            _ => continue, // Unknown columns are ignored: exports of other tools carry extras.
        };
        if slot.is_some() {
            return Err(FormatError::Invalid(format!(
                "CSV header names column {} twice",
                super::quote(name)
            )));
        }
        *slot = Some(i);
    }
    let hash_column = columns.hash.ok_or_else(|| {
        FormatError::Invalid("CSV header has no hash or signal_str column".into())
    })?;
    if columns.algorithm.is_none() && default_algorithm.is_none() {
        return Err(FormatError::Invalid(
            "CSV header has no algorithm or signal_type column; give --algorithm".into(),
        ));
    }
    let width = header.len();
    // Rows of one external id come out consecutively from `export`: merge them into one entry.
    let mut pending: Option<(u64, NewEntry)> = None;
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Err(e) => {
                // A broken record (e.g. an unterminated quote): report it and go on.
                if !each(bad(line, format!("broken CSV: {e}")))? {
                    return Ok(());
                }
                continue;
            }
            Ok(true) => {}
        }
        let line = record.position().map_or(line, csv::Position::line);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue;
        }
        if record.len() != width {
            if !each(bad(
                line,
                format!("broken CSV: {} fields, header has {width}", record.len()),
            ))? {
                return Ok(());
            }
            continue;
        }
        let field = |c: Option<usize>| {
            c.and_then(|i| record.get(i))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let hex = field(Some(hash_column));
        let algorithm = match columns.algorithm {
            Some(i) => {
                let name = record.get(i).unwrap_or("").trim();
                match Algorithm::from_signal_type(name) {
                    Some(a) => a,
                    None if is_foreign_signal_type(name) => {
                        let unit = Parsed::Skipped {
                            line,
                            signal_type: name.to_ascii_lowercase(),
                        };
                        if !each(unit)? {
                            return Ok(());
                        }
                        continue;
                    }
                    None => {
                        if !each(bad(
                            line,
                            format!("unknown algorithm {}", super::quote(name)),
                        ))? {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            // Invariant: checked above that one of the two is present.
            None => default_algorithm.unwrap_or(Algorithm::Pdq),
        };
        let hash = match HashValue::parse(algorithm, &hex) {
            Ok(h) => h,
            Err(e) => {
                if !each(bad(line, format!("{algorithm} hash {}: {e}", quoted(&hex))))? {
                    return Ok(());
                }
                continue;
            }
        };
        let mut note = field(columns.note);
        let tags = field(columns.tags);
        if !tags.is_empty() {
            if !note.is_empty() {
                note.push(' ');
            }
            note.push_str("tags: ");
            note.push_str(&tags);
        }
        let external_id = match field(columns.external_id) {
            id if id.is_empty() => default_external_id(&hash),
            id => id,
        };
        let mut hashes = EntryHashes::default();
        hashes.set(hash);
        let entry = NewEntry {
            external_id,
            hashes,
            label: field(columns.label),
            source: field(columns.source),
            note,
            ..NewEntry::default()
        };
        // Rows of one external id come together (an ad and its photos; `export` writes an
        // entry's hashes so): one entry holding every hash. A row that cannot join it (another
        // label, too many hashes) is reported by its line, never dropped.
        if let Some((_, p)) = &mut pending
            && p.external_id == entry.external_id
        {
            if let Err(reason) = merge_into(p, &entry)
                && !each(bad(line, reason))?
            {
                return Ok(());
            }
            continue;
        }
        if let Some((l, p)) = pending.replace((line, entry))
            && !each(validated(l, p))?
        {
            return Ok(());
        }
    }
    if let Some((l, p)) = pending {
        each(validated(l, p))?;
    }
    Ok(())
}

/// Add `row` (rows or a line of the same external id) to `base`: its hashes, its note when
/// `base` lacks it (joined by ` | `, as long as the note stays within [`MAX_TEXT_LEN`]), its
/// label and source where `base` has none. Refused, with the reason, when the label or source
/// differs (an entry has one of each) or the entry would pass `MAX_ENTRY_HASHES`; `base` is then
/// unchanged.
fn merge_into(base: &mut NewEntry, row: &NewEntry) -> Result<(), String> {
    for (what, mine, theirs) in [
        ("label", &base.label, &row.label),
        ("source", &base.source, &row.source),
    ] {
        if !mine.is_empty() && !theirs.is_empty() && mine != theirs {
            return Err(format!(
                "external id {:?}: {what} {theirs:?} differs from {mine:?} of its other rows (an entry has one {what}; give this row its own external id)",
                base.external_id
            ));
        }
    }
    let mut hashes = base.hashes.clone();
    for h in row.hashes.iter() {
        hashes
            .add(h)
            .map_err(|e| format!("external id {:?}: {e}", base.external_id))?;
    }
    base.hashes = hashes;
    if base.label.is_empty() {
        base.label.clone_from(&row.label);
    }
    if base.source.is_empty() {
        base.source.clone_from(&row.source);
    }
    let known = base.note == row.note || base.note.split(" | ").any(|part| part == row.note);
    if !row.note.is_empty() && !known {
        if base.note.is_empty() {
            base.note.clone_from(&row.note);
        } else if base.note.len() + 3 + row.note.len() <= MAX_TEXT_LEN {
            base.note.push_str(" | ");
            base.note.push_str(&row.note);
        }
    }
    if row.disabled_until.is_some() {
        base.disabled_until = row.disabled_until;
    }
    Ok(())
}

fn validated(line: u64, entry: NewEntry) -> Parsed {
    match entry.validate() {
        Ok(()) => Parsed::Entry {
            line,
            entry: Box::new(entry),
        },
        Err(e) => bad(line, e.to_string()),
    }
}

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The input's format.
    pub format: Format,
    /// The algorithm of `hex` lines, and of `csv` rows when the header has no algorithm column.
    pub algorithm: Option<Algorithm>,
    /// All or nothing: nothing is committed unless every line is good and the input ends
    /// cleanly; then every entry is committed in one atomic batch (at most
    /// [`MAX_STRICT_ENTRIES`]). Without it, good lines are committed batch by batch.
    pub strict: bool,
    /// Entries per atomic batch.
    pub batch_size: usize,
    /// Label and source for entries whose line carries none.
    pub default_label: Option<String>,
    /// Source for entries whose line carries none.
    pub default_source: Option<String>,
}

impl ImportOptions {
    /// Defaults for `format`: no algorithm, not strict, batches of 1000 entries, no default label
    /// or source.
    pub fn new(format: Format) -> ImportOptions {
        ImportOptions {
            format,
            algorithm: None,
            strict: false,
            batch_size: 1000,
            default_label: None,
            default_source: None,
        }
    }
}

/// Outcome of an import. The CLI prints it as the last line (`added`, `updated`, `skipped`,
/// `failed` are the contract).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Entries new to the bank.
    pub added: u64,
    /// Entries that replaced one with the same external id.
    pub updated: u64,
    /// Rows of signal types vigie does not hold (URLs, videos, text).
    pub skipped: u64,
    /// Bad lines, all of them (not only those in `errors`).
    pub failed: u64,
    /// Skipped rows by signal type (`url`, `video_md5`, ...).
    pub skipped_by_type: BTreeMap<String, u64>,
    /// The first bad lines (at most `MAX_REPORTED_ERRORS`); `failed` counts them all.
    pub errors: Vec<LineError>,
}

/// How many bad lines an [`ImportSummary`] lists in `errors`.
pub const MAX_REPORTED_ERRORS: usize = 100;

impl ImportSummary {
    fn count_skip(&mut self, signal_type: String) {
        self.skipped += 1;
        *self.skipped_by_type.entry(signal_type).or_default() += 1;
    }

    fn count_failure(&mut self, error: LineError) {
        self.failed += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        }
    }
}

/// Parse without storing anything: the summary of what an import would skip and fail
/// (`added` counts the entries that would be written).
///
/// Rows of one external id met again later in the input must not give it another label or
/// source, as [`import`] refuses them; that is checked here too (on fingerprints of the ids,
/// labels and sources: 24 bytes an id), so `--strict` refuses such a file before writing anything.
/// (The 256-hash limit across such rows is left to the import: counting it here would need every
/// hash.)
pub fn check(reader: impl BufRead, options: &ImportOptions) -> Result<ImportSummary, FormatError> {
    let mut summary = ImportSummary::default();
    let fingerprints = std::collections::hash_map::RandomState::new();
    let fingerprint = |text: &str| {
        (!text.is_empty()).then(|| std::hash::BuildHasher::hash_one(&fingerprints, text))
    };
    // External id -> (label, source) of what the import would have written for it so far.
    type Seen = (Option<u64>, Option<u64>);
    let mut seen: std::collections::HashMap<u64, Seen> = std::collections::HashMap::new();
    parse(reader, options.format, options.algorithm, &mut |unit| {
        match unit {
            Parsed::Entry { line, entry } => {
                let or_default = |text: &str, default: &Option<String>| {
                    if text.is_empty() {
                        default.clone().unwrap_or_default()
                    } else {
                        text.to_string()
                    }
                };
                let label = fingerprint(&or_default(&entry.label, &options.default_label));
                let source = fingerprint(&or_default(&entry.source, &options.default_source));
                let id = std::hash::BuildHasher::hash_one(&fingerprints, &entry.external_id);
                let slot = seen.entry(id).or_insert((None, None));
                let clash = |mine: Option<u64>, theirs: Option<u64>| matches!((mine, theirs), (Some(a), Some(b)) if a != b);
                if clash(slot.0, label) || clash(slot.1, source) {
                    summary.count_failure(LineError {
                        line,
                        reason: format!(
                            "external id {:?}: another label or source than its rows before (an entry has one of each; give this row its own external id)",
                            entry.external_id
                        ),
                    });
                } else {
                    slot.0 = slot.0.or(label);
                    slot.1 = slot.1.or(source);
                    summary.added += 1;
                }
            }
            Parsed::Skipped { signal_type, .. } => summary.count_skip(signal_type),
            Parsed::Bad(e) => summary.count_failure(e),
        }
        Ok(true)
    })?;
    Ok(summary)
}

/// Import into `bank` straight into `store` (no live index: the offline CLI, tests). `on_commit`
/// sees each committed batch (the entries are durable when it runs) and `on_bad_line` each bad
/// line as it is met. Ends with an `import` audit event carrying the counts. See [`import_with`].
pub fn import(
    store: &Store,
    bank: &str,
    reader: impl BufRead,
    options: &ImportOptions,
    actor: &str,
    on_commit: &mut dyn FnMut(&[Upserted]),
    on_bad_line: &mut dyn FnMut(&LineError),
) -> Result<ImportSummary, FormatError> {
    let origin = Origin::now(actor);
    import_with(
        &mut |change| {
            let applied = store.apply(change, &origin)?;
            if let Applied::Upserted(done) = &applied {
                on_commit(done);
            }
            Ok(applied)
        },
        store,
        bank,
        reader,
        options,
        on_bad_line,
    )
}

/// Import into `bank`, each batch of entries applied as one [`Change::UpsertEntries`] by `apply`
/// (the live banks apply it to the store and the index), and the outcome as one
/// [`Change::RecordImport`] carrying the counts. `store` is read to check the bank exists;
/// `on_bad_line` sees each bad line as it is met. Under `strict` nothing is applied until the
/// input has ended cleanly with every line good, then all entries as one change. Errors: an
/// unknown bank; under `strict` a bad line, a read failure or more than [`MAX_STRICT_ENTRIES`]
/// (nothing committed); otherwise [`FormatError::Incomplete`] when the input stopped early (the
/// batches committed before it stay, and are counted in the error and the audit event); a store
/// failure.
pub fn import_with(
    apply: &mut dyn FnMut(Change) -> Result<Applied, StoreError>,
    store: &Store,
    bank: &str,
    reader: impl BufRead,
    options: &ImportOptions,
    on_bad_line: &mut dyn FnMut(&LineError),
) -> Result<ImportSummary, FormatError> {
    if store.get_bank(bank)?.is_none() {
        return Err(StoreError::BankNotFound(bank.to_string()).into());
    }
    // Strict: one batch holding everything, applied only after a clean end.
    let batch_size = if options.strict {
        usize::MAX
    } else {
        options.batch_size.max(1)
    };
    let mut summary = ImportSummary::default();
    let mut batch: Vec<NewEntry> = Vec::with_capacity(batch_size.min(options.batch_size.max(1)));
    // External ids written by this import, as 64-bit fingerprints (8 bytes an id, not the id:
    // a list of millions stays small; two ids sharing one, about 1 in 3.7 million for ten
    // million ids, only make the later one add to the earlier instead of replacing it, which
    // loses no hash). An id met again is added to what this import wrote for it: rows of one
    // ad apart in a file are not lost to the upsert (see the module documentation).
    let fingerprints = std::collections::hash_map::RandomState::new();
    let mut written: std::collections::HashSet<u64> = std::collections::HashSet::new();
    // Where each external id of the pending batch sits in it.
    let mut in_batch: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut flush =
        |batch: &mut Vec<NewEntry>, summary: &mut ImportSummary| -> Result<(), FormatError> {
            if batch.is_empty() {
                return Ok(());
            }
            let change = Change::UpsertEntries {
                bank: bank.to_string(),
                entries: std::mem::take(batch),
            };
            if let Applied::Upserted(done) = apply(change)? {
                for u in &done {
                    if u.added {
                        summary.added += 1;
                    } else {
                        summary.updated += 1;
                    }
                }
            }
            Ok(())
        };
    let outcome = parse(reader, options.format, options.algorithm, &mut |unit| {
        match unit {
            Parsed::Entry { mut entry, line } => {
                if entry.label.is_empty() {
                    entry.label = options.default_label.clone().unwrap_or_default();
                }
                if entry.source.is_empty() {
                    entry.source = options.default_source.clone().unwrap_or_default();
                }
                let fingerprint =
                    std::hash::BuildHasher::hash_one(&fingerprints, &entry.external_id);
                if !written.insert(fingerprint) {
                    // Met before in this import: still pending, or already in the store.
                    let merged = match in_batch.get(&entry.external_id) {
                        Some(&i) => merge_into(&mut batch[i], &entry).map(|()| true),
                        None => match store.find_entry(bank, &entry.external_id)? {
                            Some(stored) => {
                                let mut base = NewEntry {
                                    external_id: stored.external_id,
                                    hashes: EntryHashes::default(),
                                    label: stored.label,
                                    source: stored.source,
                                    note: stored.note,
                                    added_by: None,
                                    added_at: None,
                                    disabled_until: stored.disabled_until,
                                };
                                for h in stored.hashes.iter() {
                                    // Within the limit: the store holds no more.
                                    let _ = base.hashes.add(h);
                                }
                                merge_into(&mut base, &entry).map(|()| {
                                    *entry = base;
                                    false
                                })
                            }
                            None => Ok(false),
                        },
                    };
                    match merged {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(reason) => {
                            let e = LineError { line, reason };
                            on_bad_line(&e);
                            if options.strict {
                                return Err(FormatError::BadLine(e));
                            }
                            summary.count_failure(e);
                            return Ok(true);
                        }
                    }
                }
                in_batch.insert(entry.external_id.clone(), batch.len());
                batch.push(*entry);
                if options.strict && batch.len() > MAX_STRICT_ENTRIES {
                    return Err(FormatError::Invalid(format!(
                        "a strict import holds at most {MAX_STRICT_ENTRIES} entries (committed \
                         at once); split the input or import without strict"
                    )));
                }
                if batch.len() >= batch_size {
                    flush(&mut batch, &mut summary)?;
                    in_batch.clear();
                }
            }
            Parsed::Skipped { signal_type, .. } => summary.count_skip(signal_type),
            Parsed::Bad(e) => {
                on_bad_line(&e);
                if options.strict {
                    return Err(FormatError::BadLine(e));
                }
                summary.count_failure(e);
            }
        }
        Ok(true)
    });
    // Strict: everything or nothing. Otherwise the entries parsed before an early stop are
    // committed (what was read was good) and the error says how many.
    let flushed = if options.strict && outcome.is_err() {
        batch.clear();
        Ok(())
    } else {
        flush(&mut batch, &mut summary)
    };
    let mut detail = serde_json::json!({
        "format": options.format.to_string(),
        "strict": options.strict,
        "added": summary.added,
        "updated": summary.updated,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "complete": outcome.is_ok() && flushed.is_ok(),
    });
    if let (Err(e), serde_json::Value::Object(map)) = (&outcome, &mut detail) {
        map.insert("stopped".into(), super::quote(&e.to_string()).into());
    }
    apply(Change::RecordImport {
        bank: bank.to_string(),
        detail,
    })?;
    flushed?;
    match outcome {
        Ok(()) => Ok(summary),
        Err(e) if options.strict => Err(e),
        Err(e) => Err(FormatError::Incomplete {
            cause: Box::new(e),
            added: summary.added,
            updated: summary.updated,
        }),
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The output's format.
    pub format: Format,
    /// Only entries with exactly this label; `None`: all.
    pub label: Option<String>,
    /// Required for `hex`; for the other formats, restricts the output to this algorithm.
    pub algorithm: Option<Algorithm>,
}

/// Where exported rows go: CSV needs its writer's quoting state across rows.
enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Plain(&'a mut dyn Write),
}

/// Write a bank's entries (external-id order). Returns the number of entries written.
pub fn export(
    store: &Store,
    bank: &str,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> Result<u64, FormatError> {
    if options.format == Format::Hex && options.algorithm.is_none() {
        return Err(FormatError::Invalid(
            "the hex format needs --algorithm".into(),
        ));
    }
    if store.get_bank(bank)?.is_none() {
        return Err(StoreError::BankNotFound(bank.to_string()).into());
    }
    let mut sink = if options.format == Format::Csv {
        let mut w = csv::WriterBuilder::new().from_writer(out);
        w.write_record([
            "external_id",
            "algorithm",
            "hash",
            "label",
            "source",
            "note",
        ])
        .map_err(csv_error)?;
        Sink::Csv(Box::new(w))
    } else {
        Sink::Plain(out)
    };
    let mut written = 0u64;
    let mut io_error: Option<FormatError> = None;
    store.for_each_entry(bank, options.label.as_deref(), None, &mut |entry: Entry| {
        let hashes: Vec<HashValue> = entry
            .hashes
            .iter()
            .filter(|h| options.algorithm.is_none_or(|a| a == h.algorithm()))
            .collect();
        if hashes.is_empty() {
            return Ok(true);
        }
        match write_entry(&entry, &hashes, options.format, &mut sink) {
            Ok(()) => {
                written += 1;
                Ok(true)
            }
            Err(e) => {
                io_error = Some(e);
                Ok(false)
            }
        }
    })?;
    if let Some(e) = io_error {
        return Err(e);
    }
    match &mut sink {
        Sink::Csv(w) => w.flush()?,
        Sink::Plain(out) => out.flush()?,
    }
    Ok(written)
}

fn csv_error(e: csv::Error) -> FormatError {
    FormatError::Invalid(format!("CSV: {e}"))
}

fn write_entry(
    entry: &Entry,
    hashes: &[HashValue],
    format: Format,
    sink: &mut Sink<'_>,
) -> Result<(), FormatError> {
    match (format, sink) {
        (Format::Csv, Sink::Csv(w)) => {
            for h in hashes {
                let algorithm = h.algorithm().to_string();
                let hex = h.to_hex();
                w.write_record([
                    entry.external_id.as_str(),
                    algorithm.as_str(),
                    hex.as_str(),
                    entry.label.as_str(),
                    entry.source.as_str(),
                    entry.note.as_str(),
                ])
                .map_err(csv_error)?;
            }
        }
        (Format::Jsonl, Sink::Plain(out)) => {
            let mut entry = entry.clone();
            if hashes.len() != entry.hashes.iter().count() {
                entry.hashes = EntryHashes::default();
                for h in hashes {
                    // A subset of the entry's hashes: within the limit.
                    let _ = entry.hashes.add(*h);
                }
            }
            serde_json::to_writer(&mut **out, &entry)
                .map_err(|e| FormatError::Invalid(format!("JSON: {e}")))?;
            out.write_all(b"\n")?;
        }
        (Format::SignalLines, Sink::Plain(out)) => {
            for h in hashes {
                writeln!(out, "{} {}", h.algorithm(), h.to_hex())?;
            }
        }
        (Format::Hex, Sink::Plain(out)) => {
            for h in hashes {
                writeln!(out, "{}", h.to_hex())?;
            }
        }
        _ => {
            return Err(FormatError::Invalid(
                "export sink does not match the format".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_a_line_is_its_first_field_or_its_hash_field() {
        let h = "0f94c6126332e372";
        for (line, want) in [
            (h.to_string(), h),
            (format!("\u{feff}{h}  \r"), h),
            (format!("{h},100,ads/case-1.jpg"), h),
            (format!("{h}\tads/case 1.jpg"), h),
            (format!("{h}  ads/case-1.jpg"), h),
            (format!("hash={h},norm=128,quality=100,a.jpg"), h),
            (format!("HASH={h} , quality=100"), h),
            (format!("quality=100,hash={h},x.jpg"), h),
            // A path that happens to hold `hash=` is not a hash field.
            (format!("{h},100,/photos/hash=1.jpg"), h),
            (",100,x.jpg".to_string(), ""),
            (format!("\t{h}"), ""),
            ("   ".to_string(), ""),
        ] {
            assert_eq!(hash_in_line(&line), want, "{line:?}");
        }
        // The rest of a line need not be UTF-8 (a Windows code page path).
        let mut bytes = format!("{h},100,").into_bytes();
        bytes.extend_from_slice(b"caf\xe9.jpg");
        assert_eq!(hash_field(&bytes), h.as_bytes());
    }

    /// A reader that hands out one byte at a time, as a network stream may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), out.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn decoded(bytes: &[u8]) -> String {
        let mut out = String::new();
        text_reader(std::io::BufReader::with_capacity(1, Trickle(bytes)))
            .and_then(|mut r| r.read_to_string(&mut out))
            .expect("read");
        out
    }

    #[test]
    fn text_in_any_windows_encoding_reads_as_utf8() {
        let text = "pdq 0f94\r\ncafé 😀\r\n";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
            be.extend_from_slice(&u.to_be_bytes());
        }
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        for bytes in [le, be, bom, text.as_bytes().to_vec()] {
            assert_eq!(decoded(&bytes), text);
        }
        // Short and broken inputs: no panic, broken UTF-16 becomes U+FFFD.
        assert_eq!(decoded(b""), "");
        assert_eq!(decoded(&[0xFF, 0xFE, 0x41]), "\u{fffd}");
        assert_eq!(decoded(&[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00]), "\u{fffd}A");
        assert_eq!(decoded(&[0xFF, 0xFE, 0x00, 0xDC]), "\u{fffd}");
        assert_eq!(decoded(&[0xFF, 0xFE, 0x00, 0xD8]), "\u{fffd}");
    }
}

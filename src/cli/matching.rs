//! `vigie match`: match one hash list against another with the exact Hamming index — the offline
//! tool a trust team runs over two exports (Meta ships `mih-query` for the same job).
//!
//! Both files hold one hash per line in hex (64 digits for 256-bit PDQ, 16 for 64-bit hashes), in
//! the forms the field writes (`store::formats::hash_field`): a bare hash, or followed by a tab,
//! a comma or spaces and anything (Meta's `pdq-photo-hasher` prints `hash,quality,path`), or as
//! `hash=<hex>,…` (Meta's hash I/O). Files saved on Windows read as they are: UTF-8 with a
//! byte-order mark, UTF-16 with its mark, CRLF line ends, trailing spaces. Blank lines and lines
//! starting with `#` are skipped but counted, so LINE numbers (0-based) point into the files as
//! given. The width comes from the first hash of the index file (of the queries file if the index
//! holds none); every hash in both files must have it. Errors name the file and the 1-based line,
//! as editors count, and quote and count the hash field alone, never the rest of the line.
//!
//! stdout: one `{"query":LINE,"matches":[{"index":LINE,"distance":D},...]}` per query line, in
//! file order, matches sorted by distance then line. stderr, last: one JSON summary line.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use std::io::Read;

use super::CliError;
use crate::bench::measure::percentile;
use crate::bits::Bits;
use crate::index::{HammingIndex, Match};
use crate::store::formats::{self, hash_field};

/// `vigie match`: one hash list against another.
#[derive(Debug, clap::Args)]
#[command(after_help = super::HASH_LIST_HELP)]
pub struct MatchArgs {
    /// The bank side: one hex hash per line (a bare hash; `hash,quality,path`; `hash=<hex>,…`;
    /// or a hash, a tab and anything).
    #[arg(long)]
    pub index: PathBuf,
    /// The hashes to look up, same format.
    #[arg(long)]
    pub queries: PathBuf,
    /// Largest Hamming distance that counts as a match (inclusive).
    #[arg(long)]
    pub max_distance: u32,
    /// Threads answering queries (latencies are still per query).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// The stderr summary; field order is the documented one.
#[derive(Debug, Serialize)]
struct Summary {
    entries: usize,
    queries: usize,
    build_ms: f64,
    query_total_ms: f64,
    query_us_p50: f64,
    query_us_p99: f64,
    threads: usize,
    bits: u32,
    max_distance: u32,
    matches: usize,
}

/// A hash line: its 0-based line number and the hex text of the hash.
struct HashLine<'a> {
    line: usize,
    hex: &'a str,
}

fn line_error(path: &Path, line: usize, message: impl std::fmt::Display) -> CliError {
    CliError(format!("{}:{}: {message}", path.display(), line + 1))
}

/// The hash lines of a file (blank and `#` lines skipped, still counted).
fn hash_lines<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<HashLine<'a>>, CliError> {
    let mut out = Vec::new();
    for (line, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let body = raw.trim_ascii();
        let body = body
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(body)
            .trim_ascii();
        if body.is_empty() || body.first() == Some(&b'#') {
            continue;
        }
        // The line itself, not `body`: a tab or comma in front means an empty hash field.
        let field = hash_field(raw);
        if field.is_empty() {
            return Err(line_error(
                path,
                line,
                "no hash at the start of the line (a tab or comma comes first)",
            ));
        }
        let hex = std::str::from_utf8(field).map_err(|_| {
            line_error(
                path,
                line,
                format!(
                    "{} is not a hash: it is not even text",
                    quoted(&String::from_utf8_lossy(field))
                ),
            )
        })?;
        out.push(HashLine { line, hex });
    }
    Ok(out)
}

/// `text` quoted for an error message, cut at 80 characters (a hostile line may be huge).
fn quoted(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("`{}…`", &text[..end]),
        None => format!("`{text}`"),
    }
}

/// A file's bytes as UTF-8 text when it is UTF-16 with a byte-order mark (PowerShell 5's `>`,
/// Notepad's "Unicode"); anything else as it is (a UTF-8 mark is skipped with the first line).
fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    let io = |e: std::io::Error| CliError(format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(io)?;
    if !matches!(bytes.get(..2), Some([0xFF, 0xFE] | [0xFE, 0xFF])) {
        return Ok(bytes);
    }
    let mut text = Vec::with_capacity(bytes.len() / 2);
    formats::text_reader(&bytes[..])
        .and_then(|mut r| r.read_to_end(&mut text))
        .map_err(io)?;
    Ok(text)
}

/// Prints, per query hash, its matches within the distance, one JSON line each. Errors: a list
/// cannot be read or holds a malformed hash.
pub fn run(args: MatchArgs) -> Result<ExitCode, CliError> {
    if args.threads == 0 {
        return Err(CliError("--threads must be at least 1".into()));
    }
    let index_bytes = read(&args.index)?;
    let query_bytes = read(&args.queries)?;
    let index_lines = hash_lines(&args.index, &index_bytes)?;
    let query_lines = hash_lines(&args.queries, &query_bytes)?;
    let first = index_lines
        .first()
        .map(|h| (&args.index, h))
        .or_else(|| query_lines.first().map(|h| (&args.queries, h)));
    let Some((first_path, first)) = first else {
        return run_width::<4>(&args, &[], &[]);
    };
    match first.hex.len() {
        64 => run_width::<4>(&args, &index_lines, &query_lines),
        16 => run_width::<1>(&args, &index_lines, &query_lines),
        n => Err(line_error(
            first_path,
            first.line,
            format!(
                "{} is not a hash: {n} characters where 64 hex digits (256-bit PDQ) or 16 (64-bit pHash/dHash) are expected",
                quoted(first.hex)
            ),
        )),
    }
}

fn parse<const W: usize>(
    path: &Path,
    lines: &[HashLine<'_>],
    width_from: &str,
) -> Result<Vec<(Bits<W>, u64)>, CliError> {
    lines
        .iter()
        .map(|h| {
            if h.hex.len() != Bits::<W>::HEX_LEN {
                return Err(line_error(
                    path,
                    h.line,
                    format!(
                        "{}: {} characters where {} hex digits are expected: every hash must have the width of {width_from}",
                        quoted(h.hex),
                        h.hex.len(),
                        Bits::<W>::HEX_LEN
                    ),
                ));
            }
            let hash = Bits::<W>::from_hex(h.hex)
                .map_err(|e| line_error(path, h.line, format!("{}: {e}", quoted(h.hex))))?;
            Ok((hash, h.line as u64))
        })
        .collect()
}

fn run_width<const W: usize>(
    args: &MatchArgs,
    index_lines: &[HashLine<'_>],
    query_lines: &[HashLine<'_>],
) -> Result<ExitCode, CliError> {
    let width_from = match (index_lines.first(), query_lines.first()) {
        (Some(h), _) => format!("the first hash ({}:{})", args.index.display(), h.line + 1),
        (None, Some(h)) => format!("the first hash ({}:{})", args.queries.display(), h.line + 1),
        (None, None) => String::new(),
    };
    let entries = parse::<W>(&args.index, index_lines, &width_from)?;
    let queries = parse::<W>(&args.queries, query_lines, &width_from)?;

    let start = Instant::now();
    // The radius is known up front: let the index plan its layout for it.
    let index = HammingIndex::<W>::with_design_radius(args.max_distance);
    index
        .extend(entries.iter().copied())
        .map_err(|e| CliError(e.to_string()))?;
    let build = start.elapsed();

    let start = Instant::now();
    let threads = args.threads.min(queries.len()).max(1);
    let chunk = queries.len().div_ceil(threads).max(1);
    let answered: Vec<(Vec<Vec<Match>>, Vec<Duration>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = queries
            .chunks(chunk)
            .map(|part| {
                let index = &index;
                scope.spawn(move || {
                    let mut results = Vec::with_capacity(part.len());
                    let mut times = Vec::with_capacity(part.len());
                    for (q, _) in part {
                        let t = Instant::now();
                        results.push(index.search(q, args.max_distance));
                        times.push(t.elapsed());
                    }
                    (results, times)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join())
            .collect::<Result<_, _>>()
    })
    .map_err(|_| CliError("a query thread panicked".into()))?;
    let query_total = start.elapsed();

    let mut times: Vec<Duration> = answered
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .collect();
    times.sort_unstable();
    let percentile = |q: f64| percentile(&times, q).map_or(0.0, |t| t.as_secs_f64() * 1e6);

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut matches = 0;
    for ((_, query_line), found) in queries.iter().zip(answered.iter().flat_map(|(r, _)| r)) {
        matches += found.len();
        write!(out, "{{\"query\":{query_line},\"matches\":[")?;
        for (i, (line, distance)) in found.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(out, "{sep}{{\"index\":{line},\"distance\":{distance}}}")?;
        }
        writeln!(out, "]}}")?;
    }
    out.flush()?;

    let summary = Summary {
        entries: entries.len(),
        queries: queries.len(),
        build_ms: build.as_secs_f64() * 1e3,
        query_total_ms: query_total.as_secs_f64() * 1e3,
        query_us_p50: percentile(0.50),
        query_us_p99: percentile(0.99),
        threads,
        bits: Bits::<W>::BITS,
        max_distance: args.max_distance,
        matches,
    };
    eprintln!(
        "{}",
        serde_json::to_string(&summary).map_err(|e| CliError(e.to_string()))?
    );
    Ok(ExitCode::SUCCESS)
}

//! `vigie import` and `vigie export`: streaming, with a progress bar on a terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::store::Algorithm;
use crate::store::formats::{self, ExportOptions, Format, ImportOptions, ImportSummary};

use super::CliError;
use super::bank::StoreArgs;

/// `vigie import`: a hash list into a bank.
#[derive(Debug, clap::Args)]
#[command(after_help = super::HASH_LIST_HELP)]
pub struct ImportArgs {
    /// Bank to import into (must exist).
    #[arg(long)]
    pub bank: String,
    /// jsonl, csv, signal-lines or hex. Rows (or lines) with one external id make one entry that
    /// holds every hash they carry (an ad with several photos): each is matched, and the entry
    /// becomes what the file says of it. A row that cannot join its id's entry (another label or
    /// source, more than 256 hashes) is reported as failed, with its line.
    #[arg(long)]
    pub format: Format,
    /// Input file; `-` reads standard input.
    pub file: PathBuf,
    /// Algorithm of the hashes (required for hex; for csv without an algorithm column).
    #[arg(long)]
    pub algorithm: Option<Algorithm>,
    /// Import nothing if any line is bad (the input is checked in full first).
    #[arg(long)]
    pub strict: bool,
    /// Label for entries whose line has none.
    #[arg(long)]
    pub label: Option<String>,
    /// Source for entries whose line has none (e.g. ncmec, threatexchange).
    #[arg(long)]
    pub source: Option<String>,
    /// Entries per atomic, synced batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Print `{"committed":[external ids]}` on stdout after each durable batch.
    #[arg(long)]
    pub print_commits: bool,
    /// The store to use.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `vigie export`: a bank's entries to a hash list.
#[derive(Debug, clap::Args)]
#[command(after_help = super::HASH_LIST_HELP)]
pub struct ExportArgs {
    /// The bank's name.
    #[arg(long)]
    pub bank: String,
    /// jsonl, csv, signal-lines or hex.
    #[arg(long)]
    pub format: Format,
    /// Only entries with this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Only hashes of this algorithm (required for hex).
    #[arg(long)]
    pub algorithm: Option<Algorithm>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The store to use.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A temporary copy of standard input, removed on drop (`--strict` reads its input twice).
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_stdin() -> Result<Spool, CliError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = std::env::temp_dir().join(format!("vigie-import-{}-{nanos}", std::process::id()));
    let spool = Spool(path);
    let mut file = File::create(&spool.0)?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file)?;
    file.sync_all()?;
    Ok(spool)
}

fn progress_for(path: Option<&Path>) -> ProgressBar {
    let len = path
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    match len {
        Some(len) => {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => ProgressBar::new_spinner(),
    }
}

fn open_input(path: Option<&Path>, bar: &ProgressBar) -> Result<Box<dyn BufRead>, CliError> {
    let raw: Box<dyn Read> = match path {
        Some(p) => Box::new(File::open(p).map_err(|e| CliError(format!("{}: {e}", p.display())))?),
        None => Box::new(std::io::stdin()),
    };
    Ok(Box::new(BufReader::with_capacity(
        1 << 16,
        bar.wrap_read(raw),
    )))
}

/// The summary line, keys in the documented order (`added`, `updated`, `skipped`, `failed`).
#[derive(serde::Serialize)]
struct SummaryLine<'a> {
    added: u64,
    updated: u64,
    skipped: u64,
    failed: u64,
    skipped_by_type: &'a std::collections::BTreeMap<String, u64>,
}

fn summary_json(summary: &ImportSummary) -> SummaryLine<'_> {
    SummaryLine {
        added: summary.added,
        updated: summary.updated,
        skipped: summary.skipped,
        failed: summary.failed,
        skipped_by_type: &summary.skipped_by_type,
    }
}

/// Imports the list, printing progress and a last JSON summary line. Errors: an unknown bank, a
/// bad line under `--strict`, a read or store failure.
pub fn run_import(args: ImportArgs) -> Result<ExitCode, CliError> {
    let options = ImportOptions {
        format: args.format,
        algorithm: args.algorithm,
        strict: args.strict,
        batch_size: args.batch_size,
        default_label: args.label.clone(),
        default_source: args.source.clone(),
    };
    let actor = args.store.actor();
    let db = args.store.open(true)?;
    if db.get_bank(&args.bank)?.is_none() {
        return Err(crate::store::StoreError::BankNotFound(args.bank).into());
    }
    let spool = if args.strict && args.file.as_os_str() == "-" {
        Some(spool_stdin()?)
    } else {
        None
    };
    let path: Option<PathBuf> = match &spool {
        Some(s) => Some(s.0.clone()),
        None if args.file.as_os_str() == "-" => None,
        None => Some(args.file.clone()),
    };
    if args.strict {
        let bar = progress_for(path.as_deref());
        let checked = formats::check(open_input(path.as_deref(), &bar)?, &options)?;
        bar.finish_and_clear();
        if checked.failed > 0 {
            for e in &checked.errors {
                eprintln!("line {}: {}", e.line, e.reason);
            }
            return Err(CliError(format!(
                "--strict: {} bad line(s), nothing imported",
                checked.failed
            )));
        }
    }
    let bar = progress_for(path.as_deref());
    let input = open_input(path.as_deref(), &bar)?;
    let print_commits = args.print_commits;
    let mut on_commit = |done: &[crate::store::Upserted]| {
        if print_commits {
            let ids: Vec<&str> = done.iter().map(|u| u.external_id.as_str()).collect();
            let line = serde_json::json!({ "committed": ids }).to_string();
            let mut out = std::io::stdout().lock();
            // Losing this line only loses a progress note for a reader; the batch is durable.
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    };
    let bar_for_lines = bar.clone();
    let mut on_bad_line = |e: &formats::LineError| {
        bar_for_lines.suspend(|| eprintln!("line {}: {}", e.line, e.reason));
    };
    let summary = formats::import(
        &db,
        &args.bank,
        input,
        &options,
        &actor,
        &mut on_commit,
        &mut on_bad_line,
    )?;
    bar.finish_and_clear();
    for (signal_type, n) in &summary.skipped_by_type {
        eprintln!("skipped {n} row(s) of signal type {signal_type} (not held by vigie)");
    }
    super::bank::print_json(&summary_json(&summary))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the bank's entries in the chosen format. Errors: an unknown bank, a write failure.
pub fn run_export(args: ExportArgs) -> Result<ExitCode, CliError> {
    let db = args.store.open(false)?;
    let options = ExportOptions {
        format: args.format,
        label: args.label,
        algorithm: args.algorithm,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| CliError(format!("{}: {e}", p.display())))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let bar = ProgressBar::new_spinner();
    let mut counting = CountingWriter {
        inner: &mut out,
        bar: &bar,
    };
    let written = formats::export(&db, &args.bank, &options, &mut counting)?;
    bar.finish_and_clear();
    out.flush()?;
    eprintln!("exported {written} entries");
    Ok(ExitCode::SUCCESS)
}

/// Ticks the spinner with the bytes written.
struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    bar: &'a ProgressBar,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

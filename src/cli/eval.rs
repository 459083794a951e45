//! `vigie eval --corpus DIR [--out DIR]`: recall and false matches on edited copies of a corpus.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::CliError;
use crate::eval::{self, EvalConfig, report};

/// `vigie eval`: recall and false matches on edited copies of a corpus.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Directory of pictures: every other one (name order) is banked, the rest stay unbanked.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Where the TSV files and plots go.
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Only these edits (comma-separated names); all by default.
    #[arg(long)]
    pub edits: Option<String>,
    /// Also write the calibration table (distance -> confidence) the matcher compiles in.
    #[arg(long, num_args = 0..=1, default_missing_value = "src/matcher/calibration.tsv")]
    pub calibrate: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// JPEGs are decoded at a reduced scale keeping this shorter side; 0 = full size.
    #[arg(long, default_value_t = crate::hashing::DEFAULT_DECODE_MIN_SIDE)]
    pub decode_min_side: u32,
    /// Screen with keypoint matching, as `vigie serve` does by default (the default here too;
    /// kept so that older command lines still run).
    #[arg(long, conflicts_with = "no_keypoints")]
    pub keypoints: bool,
    /// Screen as `vigie serve --keypoints false` does: hashes only.
    #[arg(long)]
    pub no_keypoints: bool,
    /// Synthesised low-texture pictures added as negatives (smooth gradients, skies, dark
    /// scenes; half banked), every edit made of each.
    #[arg(long, default_value_t = 24)]
    pub low_texture: usize,
    /// The bank also holds the template edits' copies (flyer, story frame, chat screenshot,
    /// listing screenshot, tiled watermark) of every N-th banked photo; 0: none.
    #[arg(long, default_value_t = 6)]
    pub template_every: usize,
}

/// Runs the evaluation, writing its TSV, plots and (optionally) the calibration table. Errors:
/// the corpus cannot be read, a report cannot be written.
pub fn run(args: EvalArgs) -> Result<ExitCode, CliError> {
    let mut config = EvalConfig::new(&args.corpus);
    config.threads = args.threads.max(1);
    config.progress = !args.quiet;
    config.decode_min_side = (args.decode_min_side > 0).then_some(args.decode_min_side);
    config.keypoints = !args.no_keypoints;
    config.low_texture = args.low_texture;
    config.template_every = args.template_every;
    if let Some(list) = &args.edits {
        let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
        config.edits.retain(|e| wanted.contains(&e.name));
        if config.edits.is_empty() {
            return Err(CliError(format!("no known edit in {list:?}")));
        }
    }
    std::fs::create_dir_all(&args.out)?;
    // The row `vigie` is the service's own decision (`Matcher::screen` on an in-memory store);
    // the method rows and `combined` compare the hashes on their own.
    let run = eval::run(&config, Some(&eval::screener::make_service_screener))
        .map_err(|e| CliError(e.to_string()))?;
    let summary = report::text_summary(&run);
    print!("{summary}");
    std::fs::write(args.out.join("summary.txt"), &summary)?;
    report::write_tsv(&run, &args.out)?;
    report::write_plots(&run, &args.out).map_err(|e| CliError(e.to_string()))?;
    if let Some(path) = &args.calibrate {
        let source = format!(
            "{} pictures of {}",
            run.pictures.len(),
            args.corpus.display()
        );
        std::fs::write(
            path,
            eval::calibrate::table(&run.histograms, eval::calibrate::PRIOR, &source),
        )?;
        eprintln!("wrote calibration table {}", path.display());
    }
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

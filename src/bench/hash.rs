//! `vigie bench hash`: how long decoding and each hash take per image, at several sizes, and how
//! many images per second one core and all cores hash.
//!
//! Pictures come from `--dir` (default `../shared/corpus`): the largest few are re-encoded in
//! memory as JPEG (quality 90) at 512x512, 0.5, 2 and 12 megapixels, and the directory's own files
//! are measured as they are. Each stage is timed on one thread, every image several times; the
//! figures are medians over all (image, repetition) samples. Machines here are shared: quote
//! medians, rerun when the load is high.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use image::imageops::FilterType;
use serde::Serialize;

use super::BenchError;
use super::measure::{median, ms, progress_bar};
use super::pictures::{self, encode_jpeg, median_bytes};
use crate::hashing::{AlgorithmSet, HasherBuilder, ImageHasher, decode, exact};
use crate::plot::BarChart;

/// Arguments of `vigie bench hash`.
#[derive(Debug, clap::Args)]
pub struct HashBenchArgs {
    /// Directory of pictures (JPEG, PNG, ...).
    #[arg(long, default_value = "../shared/corpus")]
    pub dir: PathBuf,
    /// How many of the directory's largest pictures are re-encoded at each benchmark size.
    #[arg(long, default_value_t = 6)]
    pub images: usize,
    /// Timed repetitions of every stage on every image.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// At most this many of the directory's own files are measured as they are.
    #[arg(long, default_value_t = 200)]
    pub max_files: usize,
    /// Write bench-hash.json and bench-hash.png here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Shorter side JPEGs keep when decoded at a reduced scale; 0 decodes at full size.
    #[arg(long, default_value_t = crate::hashing::DEFAULT_DECODE_MIN_SIDE)]
    pub decode_min_side: u32,
}

/// The stages timed, in report order. `all` is decode plus every hash (what `vigie hash` does);
/// `all_full_decode` the same with JPEGs decoded at full size; `screen` what a Screen request
/// computes (all hashes, the eight rotations and mirrors, the content boxes). `md5_sha256` is both
/// exact hashes in the one pass `all` uses.
const STAGES: [&str; 10] = [
    "decode",
    "pdq",
    "phash",
    "dhash",
    "md5",
    "sha256",
    "md5_sha256",
    "all",
    "all_full_decode",
    "screen",
];

#[derive(Debug, Serialize)]
struct SizeReport {
    size: String,
    images: usize,
    median_bytes: usize,
    /// Median milliseconds per image, by stage (same order as `STAGES`).
    median_ms: Vec<(String, f64)>,
    /// `all` on one thread: 1000 / median.
    images_per_second_one_core: f64,
    /// `all` on every core at once (one image per thread at a time).
    images_per_second_all_cores: f64,
    cores: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    decode_min_side: u32,
    sizes: Vec<SizeReport>,
}

struct Hashers {
    all: ImageHasher,
    all_full_decode: ImageHasher,
    screen: ImageHasher,
    pdq: ImageHasher,
    phash: ImageHasher,
    dhash: ImageHasher,
}

impl Hashers {
    fn new(min_side: Option<u32>) -> Self {
        let base = || HasherBuilder::new().decode_min_side(min_side);
        let only = |list: &str| {
            AlgorithmSet::parse(list)
                .map(|set| base().algorithms(set).build())
                .unwrap_or_else(|_| base().build())
        };
        Hashers {
            all: base().build(),
            all_full_decode: HasherBuilder::new().decode_min_side(None).build(),
            screen: base().dihedral(true).regions(true).build(),
            pdq: only("pdq"),
            phash: only("phash"),
            dhash: only("dhash"),
        }
    }
}

fn millis(start: Instant) -> f64 {
    ms(start.elapsed())
}

/// Time every stage on one image; `None` when the image does not decode.
fn time_stages(h: &Hashers, bytes: &[u8]) -> Option<[f64; STAGES.len()]> {
    let t = Instant::now();
    let decoded =
        decode::decode_for_hashing(bytes, h.all.limits(), h.all.decode_min_side()).ok()?;
    let decode_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(h.pdq.hash_decoded(&decoded));
    let pdq_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(h.phash.hash_decoded(&decoded));
    let phash_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(h.dhash.hash_decoded(&decoded));
    let dhash_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(exact::md5(bytes));
    let md5_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(exact::sha256(bytes));
    let sha_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(exact::md5_and_sha256(bytes));
    let both_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(h.all.hash_bytes(bytes).ok()?);
    let all_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(h.all_full_decode.hash_bytes(bytes).ok()?);
    let full_ms = millis(t);
    let t = Instant::now();
    std::hint::black_box(h.screen.hash_bytes(bytes).ok()?);
    let screen_ms = millis(t);
    Some([
        decode_ms, pdq_ms, phash_ms, dhash_ms, md5_ms, sha_ms, both_ms, all_ms, full_ms, screen_ms,
    ])
}

/// `all` over `batch` on `threads` threads for about `seconds`: images per second.
fn throughput(hasher: &ImageHasher, batch: &[Vec<u8>], threads: usize, seconds: f64) -> f64 {
    if batch.is_empty() {
        return 0.0;
    }
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while start.elapsed().as_secs_f64() < seconds {
                    let i = next.fetch_add(1, Ordering::Relaxed) % batch.len();
                    if hasher.hash_bytes(&batch[i]).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Runs `vigie bench hash`: the table of medians on stdout, `bench-hash.json` and `bench-hash.png`
/// under `--out`. Errors: no readable pictures in `--dir`, a JPEG that cannot be encoded, an
/// unwritable `--out`.
pub fn run(args: HashBenchArgs) -> Result<(), BenchError> {
    let files = pictures::read_dir(&args.dir, args.max_files)?;
    let hashers = Hashers::new((args.decode_min_side > 0).then_some(args.decode_min_side));
    // The largest pictures make the re-encoded sizes (least upscaling).
    let decoded = pictures::largest(&files, args.images.max(1));
    let sizes: [(&str, u32, u32); 4] = [
        ("jpeg 512x512", 512, 512),
        ("jpeg 0.5MP 816x612", 816, 612),
        ("jpeg 2MP 1632x1224", 1632, 1224),
        ("jpeg 12MP 4000x3000", 4000, 3000),
    ];
    let mut batches: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (name, w, h) in sizes {
        let batch = decoded
            .iter()
            .map(|(_, img)| encode_jpeg(&img.resize_exact(w, h, FilterType::Triangle), 90))
            .collect::<Result<_, _>>()?;
        batches.push((name.to_string(), batch));
    }
    drop(decoded);
    // Camera-sized files as they were stored (real phone/camera JPEGs), then every file.
    let large: Vec<Vec<u8>> = files
        .iter()
        .filter(|(_, b)| {
            decode::read_header(b, hashers.all.limits())
                .is_ok_and(|h| u64::from(h.width) * u64::from(h.height) >= 8_000_000)
        })
        .map(|(_, b)| b.clone())
        .collect();
    if !large.is_empty() {
        batches.push(("stored files of 8 MP or more".to_string(), large));
    }
    batches.push((
        format!("{} as stored", args.dir.display()),
        files.into_iter().map(|(_, b)| b).collect(),
    ));

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total: usize = batches
        .iter()
        .map(|(_, b)| b.len() * args.repeat.max(1))
        .sum();
    let bar = progress_bar(total as u64, "hashing {bar:40} {pos}/{len} {msg}");
    let mut report = Report {
        dir: args.dir.display().to_string(),
        decode_min_side: hashers.all.decode_min_side().unwrap_or(0),
        sizes: Vec::new(),
    };
    for (name, batch) in &batches {
        bar.set_message(name.clone());
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
        for _ in 0..args.repeat.max(1) {
            for bytes in batch {
                if let Some(times) = time_stages(&hashers, bytes) {
                    for (s, t) in samples.iter_mut().zip(times) {
                        s.push(t);
                    }
                }
                bar.inc(1);
            }
        }
        let median_ms: Vec<(String, f64)> = STAGES
            .iter()
            .zip(samples)
            .map(|(stage, s)| (stage.to_string(), median(s)))
            .collect();
        let all_ms = median_ms
            .iter()
            .find(|(stage, _)| stage == "all")
            .map_or(f64::NAN, |(_, ms)| *ms);
        let parallel = throughput(&hashers.all, batch, cores, 2.0);
        report.sizes.push(SizeReport {
            size: name.clone(),
            images: batch.len(),
            median_bytes: median_bytes(batch),
            images_per_second_one_core: 1000.0 / all_ms,
            images_per_second_all_cores: parallel,
            cores,
            median_ms,
        });
    }
    bar.finish_and_clear();

    println!(
        "{:<28} {:>9} {}   img/s 1 core   img/s {cores} cores",
        "median ms per image",
        "bytes",
        STAGES.map(|s| format!(" {s:>10}")).join("")
    );
    for s in &report.sizes {
        let cells: String = s
            .median_ms
            .iter()
            .map(|(_, v)| format!(" {v:>10.2}"))
            .collect();
        println!(
            "{:<28} {:>9} {cells}   {:>12.0}   {:>12.0}",
            truncate(&s.size, 28),
            s.median_bytes,
            s.images_per_second_one_core,
            s.images_per_second_all_cores
        );
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        super::write_json(&out.join("bench-hash.json"), &report)?;
        let plotted = [
            "decode",
            "pdq",
            "phash",
            "dhash",
            "all",
            "all_full_decode",
            "screen",
        ];
        let series: Vec<(String, Vec<f64>)> = plotted
            .iter()
            .map(|stage| {
                let values = report
                    .sizes
                    .iter()
                    .map(|s| {
                        s.median_ms
                            .iter()
                            .find(|(n, _)| n == stage)
                            .map_or(0.0, |(_, v)| *v)
                    })
                    .collect();
                (stage.to_string(), values)
            })
            .collect();
        let max = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::max);
        let chart = BarChart {
            title: "vigie bench hash: median ms per image, one core".into(),
            value_label: "milliseconds".into(),
            categories: report.sizes.iter().map(|s| truncate(&s.size, 30)).collect(),
            series,
            max: max * 1.1,
        };
        chart
            .write_png(&out.join("bench-hash.png"))
            .map_err(|e| BenchError(e.to_string()))?;
        eprintln!("wrote {}", out.join("bench-hash.{json,png}").display());
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

//! `vigie hash [--algorithms pdq,phash,dhash,md5,sha256] [--dihedral] FILE...`
//!
//! One JSON object per file per line, in argument order; a failed file prints an `error` object and
//! does not stop the others; the exit code is 1 when any file failed. A file that was hashed but
//! is cut short or damaged carries a `warnings` list (exit code 0: it was hashed); an animation
//! carries the hashes of its other frames in `frames` (`index` from 0, then `pdq`, `phash`,
//! `dhash` as in `hashes`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::Serialize;

use super::CliError;
use crate::hashing::{
    AlgorithmSet, DecodeLimits, Dihedral, HashingSetup, ImageHasher, ImageHashes, PdqHash,
};

/// `vigie hash`: one JSON line per file with its hashes.
#[derive(Debug, clap::Args)]
#[command(after_help = super::HASH_LIST_HELP)]
pub struct HashArgs {
    /// Comma-separated algorithms to compute.
    #[arg(long, default_value = "pdq,phash,dhash,md5,sha256", value_parser = AlgorithmSet::parse)]
    pub algorithms: AlgorithmSet,
    /// Also print the PDQ hashes of the seven other rotations and mirrors.
    #[arg(long)]
    pub dihedral: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Largest file accepted, in bytes.
    #[arg(long, default_value_t = DecodeLimits::default().max_encoded_bytes)]
    pub max_bytes: usize,
    /// Largest picture accepted, in pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_pixels)]
    pub max_pixels: u64,
    /// JPEGs are decoded at the largest DCT reduction (1/2, 1/4, 1/8) that keeps their shorter
    /// side at least this long; 0 decodes at full size (PDQ then equals Meta's bit for bit).
    #[arg(long, default_value_t = crate::hashing::DEFAULT_DECODE_MIN_SIDE)]
    pub decode_min_side: u32,
    /// Image files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct HashLine<'a> {
    file: &'a str,
    width: u32,
    height: u32,
    format: &'static str,
    /// EXIF orientation applied before hashing, as the transform from stored to displayed pixels.
    orientation: &'static str,
    hashes: HashesJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq_dihedral: Option<Vec<DihedralJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq_meta: Option<PdqJson>,
    /// The frames of an animation besides its default image (see `ImageHashes::frames`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    frames: Vec<FrameJson>,
    /// What is wrong with a file that still gave a picture (cut short, damaged), or what of it
    /// was not hashed (animation frames past the limits).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct FrameJson {
    /// The frame's place in the animation, from 0.
    index: u32,
    #[serde(flatten)]
    hashes: HashesJson,
}

#[derive(Serialize, Default)]
struct HashesJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq: Option<PdqJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phash: Option<Hex64Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dhash: Option<Hex64Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    md5: Option<HexJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<HexJson>,
}

#[derive(Serialize)]
struct PdqJson {
    hex: String,
    quality: u8,
}

impl From<PdqHash> for PdqJson {
    fn from(h: PdqHash) -> Self {
        PdqJson {
            hex: h.hash.to_hex(),
            quality: h.quality,
        }
    }
}

#[derive(Serialize)]
struct HexJson {
    hex: String,
}

/// A 64-bit hash: hex in Python `imagehash`'s bit order, and the quality of the picture it read.
#[derive(Serialize)]
struct Hex64Json {
    hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<u8>,
}

#[derive(Serialize)]
struct DihedralJson {
    transform: &'static str,
    hex: String,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    file: &'a str,
    error: ErrorJson,
}

#[derive(Serialize)]
struct ErrorJson {
    kind: &'static str,
    message: String,
}

fn hash_line(file: &str, h: &ImageHashes) -> String {
    let hex = |s: String| HexJson { hex: s };
    let line = HashLine {
        file,
        width: h.width,
        height: h.height,
        format: crate::hashing::format_name(h.format),
        orientation: h.orientation.name(),
        hashes: HashesJson {
            pdq: h.pdq.map(PdqJson::from),
            phash: h.phash.map(|x| Hex64Json {
                hex: x.to_hex(),
                quality: h.quality64,
            }),
            dhash: h.dhash.map(|x| Hex64Json {
                hex: x.to_hex(),
                quality: h.quality64,
            }),
            md5: h.md5.map(|x| hex(x.to_hex())),
            sha256: h.sha256.map(|x| hex(x.to_hex())),
        },
        pdq_dihedral: h.pdq_dihedral.map(|all| {
            Dihedral::ALL
                .iter()
                .zip(all)
                .skip(1) // the original is `hashes.pdq`
                .map(|(t, p)| DihedralJson {
                    transform: t.name(),
                    hex: p.hash.to_hex(),
                })
                .collect()
        }),
        pdq_meta: h.pdq_meta.map(PdqJson::from),
        frames: h
            .frames
            .iter()
            .map(|f| FrameJson {
                index: f.index,
                hashes: HashesJson {
                    pdq: f.pdq.map(PdqJson::from),
                    phash: f.phash.map(|x| Hex64Json {
                        hex: x.to_hex(),
                        quality: f.quality64,
                    }),
                    dhash: f.dhash.map(|x| Hex64Json {
                        hex: x.to_hex(),
                        quality: f.quality64,
                    }),
                    ..HashesJson::default()
                },
            })
            .collect(),
        warnings: h.warnings.clone(),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

fn error_line(file: &str, kind: &'static str, message: String) -> String {
    serde_json::to_string(&ErrorLine {
        file,
        error: ErrorJson { kind, message },
    })
    .unwrap_or_default()
}

/// Read a file, refusing one over `max` bytes before reading it all.
fn read_limited(path: &Path, max: usize) -> Result<Vec<u8>, (&'static str, String)> {
    let file = std::fs::File::open(path).map_err(|e| ("io", e.to_string()))?;
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "at the limit" from "over it".
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ("io", e.to_string()))?;
    if bytes.len() > max {
        return Err((
            "too_large",
            format!("file exceeds the limit of {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Hash one file into its JSON line; `Err` carries the line of a failed file.
pub fn hash_file_line(hasher: &ImageHasher, path: &Path) -> Result<String, String> {
    let name = path.to_string_lossy();
    let bytes = read_limited(path, hasher.limits().max_encoded_bytes)
        .map_err(|(kind, message)| error_line(&name, kind, message))?;
    match hasher.hash_bytes(&bytes) {
        Ok(h) => Ok(hash_line(&name, &h)),
        Err(e) => Err(error_line(&name, e.kind.as_str(), e.message)),
    }
}

/// Hashes every file (in parallel, printed in argument order). Exit code 1 when any file
/// failed; errors only for a failure outside the files (standard output closed).
pub fn run(args: HashArgs) -> Result<ExitCode, CliError> {
    let limits = DecodeLimits {
        max_encoded_bytes: args.max_bytes,
        max_pixels: args.max_pixels,
        ..DecodeLimits::default()
    };
    let setup = HashingSetup {
        decode_min_side: (args.decode_min_side > 0).then_some(args.decode_min_side),
        limits,
        ..HashingSetup::default()
    };
    let hasher = setup.plain(args.algorithms, args.dihedral);
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, args.files.len().max(1));

    // Workers take files in order from a shared counter; lines are printed in argument order as
    // soon as every earlier file is done.
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<String, String>)>();
    let mut any_failed = false;
    std::thread::scope(|scope| -> Result<(), CliError> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, hasher, files) = (&next, &hasher, &args.files);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    if tx.send((i, hash_file_line(hasher, path))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut pending = BTreeMap::new();
        let mut printed = 0usize;
        for (i, line) in rx {
            pending.insert(i, line);
            while let Some(line) = pending.remove(&printed) {
                let text = line.unwrap_or_else(|failed| {
                    any_failed = true;
                    failed
                });
                writeln!(out, "{text}")?;
                printed += 1;
            }
            out.flush()?;
        }
        Ok(())
    })?;
    Ok(if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

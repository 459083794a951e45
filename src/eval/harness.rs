//! The evaluation run: load, split, bank, edit, hash, compare, screen; both cores.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image::RgbImage;
use image::imageops::FilterType;
use indicatif::{ProgressBar, ProgressStyle};

use super::Method;
use super::edits::{Edit, Op};
use crate::hashing::{self, AlgorithmSet, DecodeLimits, HasherBuilder, HashingSetup, ImageHashes};
use crate::index::HammingIndex;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The corpus directory or one of its files could not be read.
    #[error("reading {path}: {message}")]
    Io {
        /// The directory or file, as displayed.
        path: String,
        /// The I/O error's message.
        message: String,
    },
    /// Fewer than 2 pictures decoded (one banked and one not are the least a run needs); the
    /// corpus path.
    #[error("the corpus at {0} holds fewer than 2 decodable pictures")]
    TooSmall(String),
    /// A banked picture could not be hashed, indexed or banked by the screener; the reason.
    #[error("setting up the bank: {0}")]
    Bank(String),
}

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Directory of pictures (jpg, jpeg, png, webp, gif, bmp, tif, tiff; not recursive); files
    /// the service's decoder refuses are skipped.
    pub corpus: PathBuf,
    /// The edits made of every picture, in report order.
    pub edits: Vec<Edit>,
    /// Edited copies are made from the picture shrunk to this longest side (the corpus's own
    /// pictures are at most 1024 px but for a few large ones; reposts are rarely larger).
    pub max_side: u32,
    /// Worker threads making, hashing and screening the edited copies (at least 1 runs).
    pub threads: usize,
    /// Time the baseline and the full screen on every `timing_every`-th query.
    pub timing_every: usize,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// JPEG decoding scale for every hasher (see `HasherBuilder::decode_min_side`).
    pub decode_min_side: Option<u32>,
    /// Uploads are also matched by keypoints (as `vigie serve` does by default).
    pub keypoints: bool,
    /// Low-texture pictures synthesised as further pictures ([`super::low_texture`]), banked and
    /// unbanked alternately like the corpus, every edit made of each: their copies are counted
    /// apart (class `low_texture`), never in recall.
    pub low_texture: usize,
    /// The bank also holds templated copies of every `template_every`-th banked photo (entries
    /// 0, n, 2n, ...): one per template edit among `edits` (an edit of one operation that is a
    /// template, see [`super::edits::Op::template`]). 0: none.
    pub template_every: usize,
}

impl EvalConfig {
    /// The defaults of `vigie eval` on `corpus`: every edit of [`super::edits::catalogue`],
    /// pictures shrunk to 1024 pixels, 2 threads, every 4th query timed, a progress bar, the
    /// service's JPEG decoding scale, keypoints on, 24 low-texture pictures, templated bank
    /// entries of every 6th banked photo.
    pub fn new(corpus: impl Into<PathBuf>) -> Self {
        EvalConfig {
            corpus: corpus.into(),
            edits: super::edits::catalogue(),
            max_side: 1024,
            threads: 2,
            timing_every: 4,
            progress: true,
            decode_min_side: Some(crate::hashing::DEFAULT_DECODE_MIN_SIDE),
            keypoints: true,
            low_texture: 24,
            template_every: 6,
        }
    }
}

/// What a picture of the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PictureClass {
    /// A photo of the corpus.
    Photo,
    /// A synthesised low-texture picture ([`super::low_texture`]).
    LowTexture,
}

/// The class an edited copy's false matches are counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CopyClass {
    /// A copy of a banked photo (a false match: it matched an entry of another picture).
    Banked,
    /// A copy of an unbanked photo under an edit that is not a template.
    UnbankedEdit,
    /// A copy of an unbanked photo in a shared template (flyer, story frame, screenshot...):
    /// the bank holds other photos in the same template.
    Template,
    /// A copy of a low-texture picture, banked or not.
    LowTexture,
}

impl CopyClass {
    /// Every class, in report order.
    pub const ALL: [CopyClass; 4] = [
        CopyClass::Banked,
        CopyClass::UnbankedEdit,
        CopyClass::Template,
        CopyClass::LowTexture,
    ];

    /// The class's snake_case name in reports (`banked`, `unbanked_edit`, `template`,
    /// `low_texture`).
    pub fn name(self) -> &'static str {
        match self {
            CopyClass::Banked => "banked",
            CopyClass::UnbankedEdit => "unbanked_edit",
            CopyClass::Template => "template",
            CopyClass::LowTexture => "low_texture",
        }
    }
}

/// One entry of the run's bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankEntry {
    /// The picture it was made from (index into [`EvalRun::pictures`]).
    pub picture: usize,
    /// For a templated copy, the index of its edit in [`EvalRun::edits`]; `None` for the
    /// picture itself.
    pub template: Option<usize>,
}

/// A banked corpus picture, as the screener needs it.
pub struct BankedPicture<'a> {
    /// Index of the entry (0-based, in banking order).
    pub entry: usize,
    /// File name in the corpus (no directory); for a templated copy, `<template>:<file name>`.
    pub name: &'a str,
    /// The file's bytes as read, unedited (a templated copy's: as encoded by its edit).
    pub bytes: &'a [u8],
    /// Its hashes, made by [`HashingSetup::banking`].
    pub hashes: &'a ImageHashes,
}

/// One match a screen reported.
#[derive(Clone, Debug, PartialEq)]
pub struct ScreenHit {
    /// Index of the matched banked entry ([`BankedPicture::entry`]).
    pub entry: usize,
    /// The match's confidence, 0..1 (see `crate::matcher::confidence`).
    pub confidence: f64,
    /// The match's distance: bits for a hash, the keypoint vote's distance for keypoints.
    pub distance: u32,
    /// How it matched, for reports: the algorithm, a space and the lookup variant, e.g.
    /// `pdq rotate90`, `dhash content_box:flip_horizontal`, `pdq crop_window`, `pdq keypoints`
    /// (see `eval::screener`).
    pub how: String,
}

impl ScreenHit {
    /// The algorithm part of [`ScreenHit::how`] (before the first space).
    pub fn algorithm(&self) -> &str {
        self.how.split_once(' ').map_or(&self.how, |(a, _)| a)
    }

    /// The lookup variant part of [`ScreenHit::how`] (after the first space; empty when none).
    pub fn variant(&self) -> &str {
        self.how.split_once(' ').map_or("", |(_, v)| v)
    }
}

/// The decision under test: the service's matcher, set up on the banked pictures.
pub trait Screener: Sync {
    /// Screens an upload's hashes (made by [`HashingSetup::screening`]); the matched banked entries.
    fn screen(&self, hashes: &ImageHashes) -> Result<Vec<ScreenHit>, String>;
}

/// The hashing setup of an evaluation: the service's own ([`HashingSetup`]), with the run's
/// decoding scale and keypoint switch.
pub fn hashing_setup(decode_min_side: Option<u32>, keypoints: bool) -> HashingSetup {
    HashingSetup {
        keypoints,
        decode_min_side,
        ..HashingSetup::default()
    }
}

/// One edited copy, screened.
#[derive(Clone, Debug)]
pub struct QueryResult {
    /// Index of the source picture in [`EvalRun::pictures`].
    pub picture: usize,
    /// Index of the edit in [`EvalRun::edits`].
    pub edit: usize,
    /// The banked entry this picture is, if it is banked.
    pub entry: Option<usize>,
    /// The class the copy's false matches count in.
    pub class: CopyClass,
    /// Per [`Method::ALL`]: distance to its own entry (banked pictures only).
    pub true_distance: Vec<Option<u32>>,
    /// Per method: distance to the nearest entry that is not its own.
    pub wrong_distance: Vec<Option<u32>>,
    /// The screener's verdict: matched its own entry / matched some other entry.
    pub screened: Option<Verdict>,
    /// The upload's PDQ quality (0..=100): what PDQ's quality floor is measured against.
    pub pdq_quality: Option<u8>,
    /// The upload's 64-bit hashes' quality (`ImageHashes::quality64`, 0..=100): what the pHash
    /// and dHash floor (`matcher::MIN_64_QUALITY`) is measured against.
    pub quality64: Option<u8>,
    /// Set when the edit or its hashing failed.
    pub error: Option<String>,
}

/// What the screener decided about one edited copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// It matched the copy's own entry (never true for an unbanked picture).
    pub found: bool,
    /// It matched some entry that is not the copy's own.
    pub false_match: bool,
    /// Confidence of the match of its own entry.
    pub confidence: Option<f64>,
    /// Highest confidence among wrong entries.
    pub wrong_confidence: Option<f64>,
    /// How the best match of its own entry was made (`<algorithm> <variant>`).
    pub how: Option<String>,
    /// Every match of an entry not the copy's own, best first.
    pub false_hits: Vec<ScreenHit>,
}

/// Distance histograms of true and unrelated (query, entry) pairs, per method.
#[derive(Clone, Debug)]
pub struct Histograms {
    /// Per method of [`Method::ALL`], counts indexed by distance (`0..=bits`): an edited copy
    /// and its own entry.
    pub true_pairs: Vec<Vec<u64>>,
    /// Per method, counts indexed by distance: an edited copy and any entry not its own.
    pub unrelated_pairs: Vec<Vec<u64>>,
    /// Per variant of [`super::Variant64::ALL`], counts indexed by distance (`0..=64`): an edited
    /// copy and its own entry.
    pub variant_true_pairs: Vec<Vec<u64>>,
    /// Per variant, an edited copy and any entry not its own.
    pub variant_unrelated_pairs: Vec<Vec<u64>>,
}

impl Histograms {
    fn new() -> Self {
        let make = || {
            Method::ALL
                .iter()
                .map(|m| vec![0u64; m.bits() as usize + 1])
                .collect()
        };
        let variants = || vec![vec![0u64; 65]; super::Variant64::ALL.len()];
        Histograms {
            true_pairs: make(),
            unrelated_pairs: make(),
            variant_true_pairs: variants(),
            variant_unrelated_pairs: variants(),
        }
    }

    fn add(&mut self, other: &Histograms) {
        for (a, b) in self.true_pairs.iter_mut().zip(&other.true_pairs) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        let pairs = [
            (&mut self.unrelated_pairs, &other.unrelated_pairs),
            (&mut self.variant_true_pairs, &other.variant_true_pairs),
            (
                &mut self.variant_unrelated_pairs,
                &other.variant_unrelated_pairs,
            ),
        ];
        for (mine, theirs) in pairs {
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            }
        }
    }
}

/// Everything a run measured.
pub struct EvalRun {
    /// File names of the decodable corpus pictures, in name order.
    pub pictures: Vec<String>,
    /// Indices into `pictures` of the banked ones (every other, from 0); entry `e` is picture
    /// `banked[e]`.
    pub banked: Vec<usize>,
    /// The edits made, as configured.
    pub edits: Vec<Edit>,
    /// One per (picture, edit), sorted by picture then edit.
    pub results: Vec<QueryResult>,
    /// Distance histograms summed over all results.
    pub histograms: Histograms,
    /// Per timed query: the baseline (decode + PDQ with rotations + index lookup) and the full
    /// screen (decode + every hash + regions + the screener).
    pub baseline_times: Vec<Duration>,
    /// The full screen's wall time of each timed query, in no particular order.
    pub full_times: Vec<Duration>,
    /// Wall time of the whole run, corpus loading included.
    pub elapsed: Duration,
    /// Per bank entry (in [`EvalRun::entries`] order): its PDQ quality and 64-bit hashes'
    /// quality.
    pub bank_qualities: Vec<(Option<u8>, Option<u8>)>,
    /// Per bank entry (in [`EvalRun::entries`] order): the photo's box when the entry was taken
    /// for a template and banked as its photo (`ImageHashes::photo_box`), else `None`.
    pub bank_photo_boxes: Vec<Option<crate::hashing::regions::Rect>>,
    /// Per picture: a corpus photo or a synthesised low-texture picture (those come after the
    /// photos).
    pub classes: Vec<PictureClass>,
    /// Every bank entry: the banked pictures (entry `e < banked.len()` is picture `banked[e]`),
    /// then the templated copies.
    pub entries: Vec<BankEntry>,
    /// Per picture: its PDQ quality as banked or as loaded (the picture unedited, hashed as a
    /// bank entry is).
    pub picture_qualities: Vec<Option<u8>>,
}

impl EvalRun {
    /// A bank entry's name in reports: the picture's file name, prefixed by `<template>:` for a
    /// templated copy.
    pub fn entry_name(&self, entry: usize) -> String {
        match self.entries.get(entry) {
            Some(e) => match e.template.and_then(|t| self.edits.get(t)) {
                Some(edit) => format!("{}:{}", edit.name, self.pictures[e.picture]),
                None => self.pictures[e.picture].clone(),
            },
            None => format!("entry {entry}"),
        }
    }
}

struct Picture {
    name: String,
    bytes: Vec<u8>,
    source: RgbImage,
    class: PictureClass,
}

/// The picture in `bytes` as the service decodes it (within `limits`, in its displayed
/// orientation), in RGB, its longer side reduced to at most `max_side` pixels (triangle filter):
/// what the evaluation edits, so the edits' cost and result do not depend on the camera. Errors:
/// the decoder's.
pub fn source_picture(
    bytes: &[u8],
    limits: &DecodeLimits,
    max_side: u32,
) -> Result<RgbImage, hashing::decode::DecodeError> {
    let decoded = hashing::decode::decode(bytes, limits)?;
    let mut source = hashing::displayed_picture(&decoded).to_rgb8();
    let (w, h) = source.dimensions();
    if w.max(h) > max_side {
        let f = max_side as f32 / w.max(h) as f32;
        source = image::imageops::resize(
            &source,
            ((w as f32 * f).round() as u32).max(1),
            ((h as f32 * f).round() as u32).max(1),
            FilterType::Triangle,
        );
    }
    Ok(source)
}

fn load_corpus(dir: &Path, max_side: u32) -> Result<Vec<Picture>, EvalError> {
    let io = |e: std::io::Error| EvalError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            matches!(
                ext.as_str(),
                "jpg" | "jpeg" | "png" | "webp" | "gif" | "bmp" | "tif" | "tiff"
            )
        })
        .collect();
    names.sort();
    let limits = DecodeLimits::default();
    let mut out = Vec::new();
    for path in names {
        let bytes = std::fs::read(&path).map_err(|e| EvalError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        // A file the service would refuse is not part of the evaluation.
        let Ok(source) = source_picture(&bytes, &limits, max_side) else {
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Picture {
            name,
            bytes,
            source,
            class: PictureClass::Photo,
        });
    }
    Ok(out)
}

/// Sets a [`Screener`] up on the banked pictures.
pub type MakeScreener = dyn Fn(&[BankedPicture<'_>]) -> Result<Box<dyn Screener>, String>;

/// Runs the evaluation. `make_screener` sets the decision under test up on the banked pictures
/// (`None`: compare methods only).
///
/// Errors: [`EvalError::Io`] when the corpus cannot be read, [`EvalError::TooSmall`] under 2
/// decodable pictures, [`EvalError::Bank`] when banking fails. A failed edit or hashing of one
/// copy is not an error of the run: it is recorded in that copy's [`QueryResult::error`].
pub fn run(
    config: &EvalConfig,
    make_screener: Option<&MakeScreener>,
) -> Result<EvalRun, EvalError> {
    let started = Instant::now();
    let mut pictures = load_corpus(&config.corpus, config.max_side)?;
    if pictures.len() < 2 {
        return Err(EvalError::TooSmall(config.corpus.display().to_string()));
    }
    for i in 0..config.low_texture {
        let (name, source) = super::low_texture::picture(i);
        let bytes = super::edits::encode(&source, super::edits::Encoding::Jpeg(92))
            .map_err(|e| EvalError::Bank(format!("{name}: {e}")))?;
        pictures.push(Picture {
            name,
            bytes,
            source,
            class: PictureClass::LowTexture,
        });
    }
    // Deterministic split: every other picture of each class, in name order, is banked.
    let mut banked: Vec<usize> = Vec::new();
    let mut entry_of: Vec<Option<usize>> = vec![None; pictures.len()];
    let mut nth_of_class = [0usize; 2];
    for (p, pic) in pictures.iter().enumerate() {
        let k = &mut nth_of_class[usize::from(pic.class == PictureClass::LowTexture)];
        if k.is_multiple_of(2) {
            entry_of[p] = Some(banked.len());
            banked.push(p);
        }
        *k += 1;
    }
    let setup = hashing_setup(config.decode_min_side, config.keypoints);
    let hasher = setup.banking();
    let mut entries: Vec<ImageHashes> = Vec::with_capacity(banked.len());
    let mut bank: Vec<BankEntry> = Vec::with_capacity(banked.len());
    let mut entry_names: Vec<String> = Vec::new();
    let mut entry_bytes: Vec<Vec<u8>> = Vec::new();
    for &p in &banked {
        let h = hasher
            .hash_bytes(&pictures[p].bytes)
            .map_err(|e| EvalError::Bank(format!("{}: {e}", pictures[p].name)))?;
        entries.push(h);
        bank.push(BankEntry {
            picture: p,
            template: None,
        });
        entry_names.push(pictures[p].name.clone());
        entry_bytes.push(Vec::new());
    }
    // Other cells of a collage: the unbanked photos.
    let unbanked_photos: Vec<usize> = (0..pictures.len())
        .filter(|&p| entry_of[p].is_none() && pictures[p].class == PictureClass::Photo)
        .collect();
    let others_for = |p: usize| -> Vec<&RgbImage> {
        unbanked_photos
            .iter()
            .filter(|&&o| o != p)
            .map(|&o| &pictures[o].source)
            .collect()
    };
    // Templated copies of some banked photos: what a trust team banks when it saw the photo in
    // an ad site's or an app's template.
    if config.template_every > 0 {
        for (te, edit) in config.edits.iter().enumerate() {
            if edit.ops.len() != 1 || edit.template().is_none() {
                continue;
            }
            for (e, &p) in banked.iter().enumerate() {
                if pictures[p].class != PictureClass::Photo
                    || !e.is_multiple_of(config.template_every)
                {
                    continue;
                }
                let seed = template_seed(p, te);
                let bytes = edit
                    .apply_with(&pictures[p].source, &others_for(p), seed)
                    .map_err(|err| {
                        EvalError::Bank(format!("{} {}: {err}", edit.name, pictures[p].name))
                    })?;
                let h = hasher.hash_bytes(&bytes).map_err(|err| {
                    EvalError::Bank(format!("{} {}: {err}", edit.name, pictures[p].name))
                })?;
                entries.push(h);
                bank.push(BankEntry {
                    picture: p,
                    template: Some(te),
                });
                entry_names.push(format!("{}:{}", edit.name, pictures[p].name));
                entry_bytes.push(bytes);
            }
        }
    }
    let screener = match make_screener {
        Some(make) => {
            let view: Vec<BankedPicture<'_>> = bank
                .iter()
                .enumerate()
                .map(|(entry, b)| BankedPicture {
                    entry,
                    name: &entry_names[entry],
                    bytes: if b.template.is_some() {
                        &entry_bytes[entry]
                    } else {
                        &pictures[b.picture].bytes
                    },
                    hashes: &entries[entry],
                })
                .collect();
            Some(make(&view).map_err(EvalError::Bank)?)
        }
        None => None,
    };
    // The baseline's index: every banked PDQ, searched with the upload's eight transforms.
    let baseline_index: HammingIndex<4> = HammingIndex::new();
    for (e, h) in entries.iter().enumerate() {
        if let Some(p) = h.pdq {
            baseline_index
                .insert(p.hash, e as u64)
                .map_err(|e| EvalError::Bank(e.to_string()))?;
        }
    }
    let baseline_hasher = HasherBuilder::new()
        .algorithms(AlgorithmSet::parse("pdq").map_err(EvalError::Bank)?)
        .dihedral(true)
        .decode_min_side(config.decode_min_side)
        .build();
    let query = setup.screening();
    // Each picture's own PDQ quality: the banked entry's, else the unedited picture's.
    let picture_qualities: Vec<Option<u8>> = (0..pictures.len())
        .map(|p| match entry_of[p] {
            Some(e) => entries[e].pdq.map(|q| q.quality),
            None => hasher
                .hash_bytes(&pictures[p].bytes)
                .ok()
                .and_then(|h| h.pdq.map(|q| q.quality)),
        })
        .collect();

    let jobs: Vec<(usize, usize)> = (0..pictures.len())
        .flat_map(|p| (0..config.edits.len()).map(move |e| (p, e)))
        .collect();
    let progress = if config.progress {
        ProgressBar::new(jobs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} edited copies ({eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let collected = Mutex::new((Vec::new(), Histograms::new(), Vec::new(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..config.threads.max(1) {
            scope.spawn(|| {
                let mut results = Vec::new();
                let mut hist = Histograms::new();
                let (mut base_t, mut full_t) = (Vec::new(), Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, e)) = jobs.get(i) else { break };
                    let edit = &config.edits[e];
                    let seed = (p as u64) << 16 | e as u64;
                    let class = if pictures[p].class == PictureClass::LowTexture {
                        CopyClass::LowTexture
                    } else if entry_of[p].is_some() {
                        CopyClass::Banked
                    } else if edit.template().is_some() {
                        CopyClass::Template
                    } else {
                        CopyClass::UnbankedEdit
                    };
                    let mut result = QueryResult {
                        picture: p,
                        edit: e,
                        entry: entry_of[p],
                        class,
                        true_distance: vec![None; Method::ALL.len()],
                        wrong_distance: vec![None; Method::ALL.len()],
                        screened: None,
                        pdq_quality: None,
                        quality64: None,
                        error: None,
                    };
                    let others = if edit.ops.iter().any(|op| matches!(op, Op::Collage { .. })) {
                        others_for(p)
                    } else {
                        Vec::new()
                    };
                    let bytes = match edit.apply_with(&pictures[p].source, &others, seed) {
                        Ok(b) => b,
                        Err(err) => {
                            result.error = Some(err.to_string());
                            results.push(result);
                            progress.inc(1);
                            continue;
                        }
                    };
                    let timed = i.is_multiple_of(config.timing_every.max(1));
                    if timed {
                        let t = Instant::now();
                        if let Ok(h) = baseline_hasher.hash_bytes(&bytes) {
                            for d in h.pdq_dihedral.iter().flatten() {
                                std::hint::black_box(baseline_index.search(&d.hash, 31));
                            }
                        }
                        base_t.push(t.elapsed());
                    }
                    let t = Instant::now();
                    let hashes = match query.hash_bytes(&bytes) {
                        Ok(h) => h,
                        Err(err) => {
                            result.error = Some(err.to_string());
                            results.push(result);
                            progress.inc(1);
                            continue;
                        }
                    };
                    result.pdq_quality = hashes.pdq.map(|p| p.quality);
                    result.quality64 = hashes.quality64;
                    let own = |entry: usize| bank.get(entry).is_some_and(|b| b.picture == p);
                    if let Some(s) = &screener {
                        match s.screen(&hashes) {
                            Ok(hits) => {
                                if timed {
                                    full_t.push(t.elapsed());
                                }
                                let best_own = hits
                                    .iter()
                                    .filter(|h| own(h.entry))
                                    .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
                                let mine = best_own.map(|h| h.confidence);
                                let mut false_hits: Vec<ScreenHit> =
                                    hits.iter().filter(|h| !own(h.entry)).cloned().collect();
                                false_hits.sort_by(|a, b| {
                                    b.confidence
                                        .total_cmp(&a.confidence)
                                        .then(a.distance.cmp(&b.distance))
                                });
                                let wrong = false_hits.first().map(|h| h.confidence);
                                result.screened = Some(Verdict {
                                    found: mine.is_some(),
                                    false_match: wrong.is_some(),
                                    confidence: mine,
                                    wrong_confidence: wrong,
                                    how: best_own.map(|h| h.how.clone()),
                                    false_hits,
                                });
                            }
                            Err(err) => result.error = Some(err),
                        }
                    } else if timed {
                        full_t.push(t.elapsed());
                    }
                    for (mi, m) in Method::ALL.iter().enumerate() {
                        for (entry, eh) in entries.iter().enumerate() {
                            // A templated copy of the copy's own picture is neither a true
                            // pair of the method (the hash of the frame) nor an unrelated one.
                            if own(entry) && Some(entry) != result.entry {
                                continue;
                            }
                            let Some(d) = m.distance(&hashes, eh) else {
                                continue;
                            };
                            if Some(entry) == result.entry {
                                result.true_distance[mi] = Some(d);
                                hist.true_pairs[mi][d as usize] += 1;
                            } else {
                                hist.unrelated_pairs[mi][d as usize] += 1;
                                let w = &mut result.wrong_distance[mi];
                                *w = Some(w.map_or(d, |old| old.min(d)));
                            }
                        }
                    }
                    for (vi, v) in super::Variant64::ALL.iter().enumerate() {
                        for (entry, eh) in entries.iter().enumerate() {
                            if own(entry) && Some(entry) != result.entry {
                                continue;
                            }
                            let Some(d) = v.distance(&hashes, eh) else {
                                continue;
                            };
                            let d = (d as usize).min(64);
                            if Some(entry) == result.entry {
                                hist.variant_true_pairs[vi][d] += 1;
                            } else {
                                hist.variant_unrelated_pairs[vi][d] += 1;
                            }
                        }
                    }
                    results.push(result);
                    progress.inc(1);
                }
                let mut all = collected.lock().unwrap_or_else(|e| e.into_inner());
                all.0.extend(results);
                all.1.add(&hist);
                all.2.extend(base_t);
                all.3.extend(full_t);
            });
        }
    });
    progress.finish_and_clear();
    let (mut results, histograms, baseline_times, full_times) =
        collected.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| (r.picture, r.edit));
    Ok(EvalRun {
        bank_qualities: entries
            .iter()
            .map(|h| (h.pdq.map(|p| p.quality), h.quality64))
            .collect(),
        bank_photo_boxes: entries.iter().map(|h| h.photo_box).collect(),
        classes: pictures.iter().map(|p| p.class).collect(),
        picture_qualities,
        pictures: pictures.into_iter().map(|p| p.name).collect(),
        banked,
        entries: bank,
        edits: config.edits.clone(),
        results,
        histograms,
        baseline_times,
        full_times,
        elapsed: started.elapsed(),
    })
}

/// The seed of picture `picture`'s templated bank copy under edit `edit`: another seed than
/// any screened copy's (`picture << 16 | edit`), so seeded details differ from the copies'.
pub fn template_seed(picture: usize, edit: usize) -> u64 {
    ((picture as u64) << 16 | edit as u64) ^ (1 << 48)
}

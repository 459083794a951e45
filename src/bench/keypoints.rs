//! `vigie bench keypoints`: keypoints at bank scale (issue 17, step 4). Builds a bank of N
//! synthetic image entries whose keypoints are drawn from the real descriptor distribution, then
//! screens pictures of a corpus against it with keypoints on.
//!
//! The bank: the corpus's pictures alternate between two halves in name order. Each synthetic
//! entry copies the shape of a random picture of the first half (its keypoint count at each of
//! [`BANK_SCALES`], its size at each, its crop-window count) and fills it with real material of
//! that half: each point a random real point of the same scale with 0 to `--flip-bits` of its 64
//! descriptor bits flipped, at a random position on the picture's frame at that scale. A chance
//! descriptor pair then occurs at the rate real banked pictures give it, while no synthetic entry
//! is any picture. Its crop windows and whole-picture PDQ are real ones with 64 bits flipped (far
//! past PDQ's threshold of 31 from the real one, so they meet no upload but cost what real ones
//! cost to search), its pHash and dHash uniform random.
//!
//! The uploads: the pictures of the other half, hashed as a `Screen` hashes them
//! (`HashingSetup::screening`, keypoints on). A picture of the first half screened against copies
//! of its own points (a hundred copies of each at a million entries) would pair with them by the
//! hundred: that is not chance.
//!
//! Reported per bank size: index memory per entry (the indexes' own accounting,
//! [`HashIndexes::heap_bytes`], and the process's resident growth as a cross-check), chance
//! descriptor pairs and entries voted on per upload ([`KeypointStats`]), the screen's index time
//! (p50/p99/max of [`HashIndexes::candidates_with_stats`], what a `Screen` spends in the index
//! after hashing the upload: hashing costs the same at every bank size and is measured by `vigie
//! bench hash`), and false matches: every candidate is false, since no synthetic entry is any
//! corpus picture.
//!
//! The copies: what a bank of N entries costs in recall. The screened pictures are also banked as
//! they are (the real entries, ids past the synthetic ones, added one by one as `AddEntries` adds
//! them), and edits that mostly only keypoints find (`--copy-edits`, from `vigie eval`'s
//! catalogue: heavy crops, turns) are screened once: a copy is found when its own picture's entry
//! is among its candidates, and any other candidate is a false match. An upload's own entry is
//! a true match too, never counted false.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

use super::BenchError;
use super::measure::{Resident, mib, ms, percentile, progress_bar, thread_cpu_time};
use super::pictures;
use super::synth::SplitMix64;
use crate::bits::{Hash64, Hash256};
use crate::eval::edits::{self, Edit};
use crate::eval::harness;
use crate::hashing::keypoints::{BANK_LONG_SIDE, BANK_SCALES, Keypoint, PATCH};
use crate::hashing::{self, HashingSetup};
use crate::matcher::{Candidate, HashIndexes, KeypointStats, MatchKind, QueryHashes, entry_hashes};
use crate::plot::{LineChart, Series};
use crate::store::load::BulkLoad;
use crate::store::{Algorithm, EntryHashes, EntryId, MaxDistances};

/// The edits screened as copies by default: those `vigie eval` finds mostly by keypoints alone
/// (no crop window nor content box covers them), so what a large bank does to keypoint recall
/// shows.
pub const DEFAULT_COPY_EDITS: &str =
    "crop_60pc_corner,crop_70pc_offcentre,crop_25pc_offcentre,rotate_8deg_crop";

/// The longer side a screened picture is reduced to before it is edited, as `vigie eval` does
/// (`EvalConfig::max_side`): the edits' cost and their result then do not depend on the camera.
const COPY_MAX_SIDE: u32 = 1024;

/// Arguments of `vigie bench keypoints`.
#[derive(Debug, clap::Args)]
pub struct KeypointsBenchArgs {
    /// Image entries in the synthetic bank, or a comma-separated list of sizes (then a PNG of
    /// screen latency against bank size is drawn), e.g. `10000,100000,1000000`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub image_entries: Vec<usize>,
    /// The pictures whose points the bank is drawn from (one half) and that are screened against
    /// it (the other half).
    #[arg(long, default_value = "../shared/corpus")]
    pub corpus: PathBuf,
    /// At most this many corpus pictures (in name order).
    #[arg(long, default_value_t = 1000)]
    pub max_pictures: usize,
    /// Each synthetic point's descriptor has 0 to this many of its 64 bits flipped.
    #[arg(long, default_value_t = 2)]
    pub flip_bits: u32,
    /// Times every upload is screened (more samples for the percentiles).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seed of the synthetic bank.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Edits (names from `vigie eval`'s catalogue, comma-separated) of the screened pictures
    /// screened once as copies of their banked originals; empty for none. A collage's other
    /// cells are grey (no other picture, banked or not, is in it).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_COPY_EDITS)]
    pub copy_edits: Vec<String>,
    /// Write the JSON report here (and, with several sizes, the PNG next to it: same name with
    /// `.png`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One bank size's figures.
#[derive(Debug, Serialize)]
struct Run {
    image_entries: usize,
    /// Keypoints indexed (over every banked scale): the rarer ones only
    /// (`keypoint_vote::LOOKUP_TRANSITIONS`); the plainer ones are kept beside the index.
    keypoints: u64,
    /// Crop windows indexed.
    windows: u64,
    /// Drawing the bank and building its indexes.
    build_ms: f64,
    /// Keypoint and crop-window index bytes per entry, as the bank was loaded (the synthetic
    /// entries, before the screened pictures were added): what issue 17's 2 KB target counts.
    index_bytes_per_entry: f64,
    keypoint_bytes_per_entry: f64,
    window_bytes_per_entry: f64,
    /// The whole-picture PDQ, pHash and dHash indexes, per entry (not in the target).
    whole_bytes_per_entry: f64,
    keypoint_bytes_per_point: f64,
    /// `keypoint_bytes_per_entry` once the screened pictures were added one by one after the
    /// load, as a live bank adds entries (the index's buckets and arrays then keep some room
    /// to grow).
    keypoint_bytes_per_entry_after_adds: f64,
    /// Growth of the process's resident memory over the build, per entry: every index, plus the
    /// allocator's slack and what the build freed but kept mapped.
    resident_bytes_per_entry: f64,
    resident_growth_mib: f64,
    /// The process's peak resident memory so far (the build's temporaries included).
    peak_resident_mib: f64,
    uploads: usize,
    /// Uploads with enough points to be searched by keypoints.
    uploads_with_keypoints: usize,
    /// Upload points looked up in the keypoint index (the rarer ones), per upload.
    lookups_per_upload: f64,
    /// Upload points left out of the lookup for meeting more than `keypoint_vote::MAX_POINT_HITS`
    /// banked points, per upload.
    common_points_per_upload: f64,
    /// Banked points within the index lookup's radius (`keypoint_vote::SEARCH_RADIUS`) of an
    /// upload point, per upload: all by chance but the few with its own entry.
    chance_pairs_per_upload: f64,
    /// The median and largest upload's chance pairs: templated and text-heavy pictures pair
    /// far more than the mean.
    chance_pairs_p50: u64,
    chance_pairs_max: u64,
    /// (entry, banked scale) groups on the shortlist (`keypoint_vote::SHORTLIST_POINTS`), paired
    /// in full at the descriptor radius, per upload.
    shortlisted_groups_per_upload: f64,
    /// Groups met by enough upload points but ranked past `keypoint_vote::MAX_PAIRED_GROUPS`
    /// (not paired), per upload.
    ranked_out_groups_per_upload: f64,
    /// Their descriptor pairs at the descriptor radius, per upload.
    verified_pairs_per_upload: f64,
    /// Shortlisted groups with enough pairs to be voted on, per upload.
    voted_groups_per_upload: f64,
    /// Distinct entries among them, per upload.
    voted_entries_per_upload: f64,
    /// Wall time of the index part of a screen, keypoints on.
    screen_p50_ms: f64,
    screen_p99_ms: f64,
    screen_max_ms: f64,
    /// The same screens' thread CPU time (what they cost on an idle machine).
    screen_cpu_p50_ms: f64,
    screen_cpu_p99_ms: f64,
    /// The same uploads with their keypoints left out (whole pictures, boxes, windows only).
    hashes_only_p50_ms: f64,
    hashes_only_p99_ms: f64,
    /// Mean per upload of the keypoint lookups, and of grouping and voting their pairs.
    keypoint_search_mean_ms: f64,
    keypoint_vote_mean_ms: f64,
    /// Their 99th percentiles over the uploads: which of the two makes the slow screens slow.
    keypoint_search_p99_ms: f64,
    keypoint_vote_p99_ms: f64,
    /// (upload, entry) pairs with a candidate within the default thresholds, other than the
    /// upload's own entry (the picture is banked too): every one is false. Candidates are what
    /// the decision reads, so this bounds the false matches from above.
    false_matches: usize,
    /// Of which met by keypoints.
    false_keypoint_matches: usize,
    /// Of which met by a hash (whole picture, content box, crop window).
    false_hash_matches: usize,
    /// Screened pictures whose own entry was a candidate (their unedited selves: found by PDQ).
    uploads_found: usize,
    /// Edited copies screened (`--copy-edits`, once each), and those whose own entry was a
    /// candidate, in all and by keypoints.
    copies: usize,
    copies_found: usize,
    copies_found_by_keypoints: usize,
    /// Per edit: copies, found.
    copies_by_edit: Vec<CopyCount>,
    /// Other entries the copies met (all false), and of which by keypoints.
    copy_false_matches: usize,
    copy_false_keypoint_matches: usize,
    /// Wall time of the index part of a copy's screen, and the 99th percentiles of its keypoint
    /// lookups and of its vote.
    copy_screen_p50_ms: f64,
    copy_screen_p99_ms: f64,
    copy_keypoint_search_p99_ms: f64,
    copy_keypoint_vote_p99_ms: f64,
}

/// One edit's copies at one bank size.
#[derive(Debug, Serialize)]
struct CopyCount {
    edit: String,
    copies: usize,
    found: usize,
    found_by_keypoints: usize,
}

/// The report: the corpus, the settings and one run per bank size.
#[derive(Debug, Serialize)]
struct Report {
    corpus: String,
    /// Pictures screened (one half of the corpus).
    uploads: usize,
    /// Pictures the bank's shapes and points are drawn from (the other half).
    bank_pictures: usize,
    /// Of which with keypoints.
    bank_pictures_with_keypoints: usize,
    /// Their points, the pool the synthetic points are drawn from.
    real_points: usize,
    flip_bits: u32,
    rounds: usize,
    seed: u64,
    /// The search radii: the default bank thresholds.
    max_distance: MaxDistances,
    runs: Vec<Run>,
}

/// One picture of the bank half: what a synthetic entry copies.
struct Shape {
    /// Frame (width, height) at each banked scale, in pixels: where its points may lie.
    frames: [(u16, u16); BANK_SCALES.len()],
    /// Keypoints at each banked scale.
    counts: [usize; BANK_SCALES.len()],
    windows: usize,
}

/// An edited copy of a screened picture.
struct Copy {
    /// Index in `--copy-edits`.
    edit: usize,
    /// Index of the picture in [`Corpus::uploads`] (and [`Corpus::real`]).
    source: usize,
    query: QueryHashes,
}

/// What the corpus gives.
struct Corpus {
    shapes: Vec<Shape>,
    /// Every real banked descriptor, by scale.
    descriptors: [Vec<Hash64>; BANK_SCALES.len()],
    windows: Vec<Hash256>,
    pdq: Vec<Hash256>,
    uploads: Vec<QueryHashes>,
    /// The screened pictures as bank entries (same order as `uploads`).
    real: Vec<EntryHashes>,
    /// The names of `--copy-edits`, and the copies made with them.
    copy_edits: Vec<&'static str>,
    copies: Vec<Copy>,
}

impl Corpus {
    fn real_points(&self) -> usize {
        self.descriptors.iter().map(Vec::len).sum()
    }
}

/// The frame, at each banked scale, of a picture of `width` x `height`: as
/// `hashing::keypoints` resamples it (longer side `BANK_LONG_SIDE / scale`, rounded).
fn frames(width: u32, height: u32) -> [(u16, u16); BANK_SCALES.len()] {
    let long = width.max(height).max(1) as f32;
    BANK_SCALES.map(|scale| {
        let side = (BANK_LONG_SIDE as f32 / scale).round();
        let at = |v: u32| (v as f32 * side / long).round().max(1.0) as u16;
        (at(width), at(height))
    })
}

fn read_corpus(args: &KeypointsBenchArgs, copy_edits: &[Edit]) -> Result<Corpus, BenchError> {
    let files = pictures::read_dir(&args.corpus, args.max_pictures)?;
    // As the service hashes: a bank entry added as an image, and a Screen with keypoints on.
    let setup = HashingSetup::default();
    let (bank_hasher, upload_hasher) = (setup.banking(), setup.screening());
    let bar = progress_bar(
        files.len() as u64,
        "hashing the corpus {bar:40} {pos}/{len} pictures {elapsed}",
    );
    let mut corpus = Corpus {
        shapes: Vec::new(),
        descriptors: Default::default(),
        windows: Vec::new(),
        pdq: Vec::new(),
        uploads: Vec::new(),
        real: Vec::new(),
        copy_edits: copy_edits.iter().map(|e| e.name).collect(),
        copies: Vec::new(),
    };
    for (k, (path, bytes)) in files.iter().enumerate() {
        bar.inc(1);
        // Odd pictures are screened, even ones give the bank its material; a corpus of one
        // picture is both (its own points then pair with their copies: not chance).
        if k % 2 == 1 || files.len() == 1 {
            let hashed = upload_hasher
                .hash_bytes(bytes)
                .and_then(|upload| Ok((upload, bank_hasher.hash_bytes(bytes)?)));
            match hashed {
                Ok((upload, banked)) => {
                    let source = corpus.uploads.len();
                    corpus
                        .uploads
                        .push(QueryHashes::from_image(&upload, &mut Vec::new()));
                    corpus.real.push(entry_hashes(&banked));
                    let copies = edited_copies(bytes, copy_edits, source, &upload_hasher);
                    match copies {
                        Ok(copies) => corpus.copies.extend(copies),
                        Err(e) => bar.println(format!("no copies of {}: {e}", path.display())),
                    }
                }
                Err(e) => bar.println(format!("skipped {}: {e}", path.display())),
            }
        }
        if k % 2 == 1 {
            continue;
        }
        let banked = match bank_hasher.hash_bytes(bytes) {
            Ok(h) => h,
            Err(e) => {
                bar.println(format!("skipped {}: {e}", path.display()));
                continue;
            }
        };
        let entry = entry_hashes(&banked);
        let mut counts = [0; BANK_SCALES.len()];
        for p in entry.keypoints.as_slice() {
            let scale = usize::from(p.scale);
            if let (Some(count), Some(pool)) =
                (counts.get_mut(scale), corpus.descriptors.get_mut(scale))
            {
                *count += 1;
                pool.push(p.descriptor);
            }
        }
        let windows: Vec<Hash256> = entry.windows().collect();
        corpus.shapes.push(Shape {
            frames: frames(banked.width, banked.height),
            counts,
            windows: windows.len(),
        });
        corpus.windows.extend(windows);
        corpus.pdq.extend(entry.pdq);
    }
    bar.finish_and_clear();
    if corpus.uploads.is_empty() || corpus.real_points() == 0 || corpus.pdq.is_empty() {
        return Err(BenchError(format!(
            "{}: needs at least two pictures that decode, one of them with keypoints",
            args.corpus.display()
        )));
    }
    Ok(corpus)
}

/// The copies of the picture in `bytes` under each of `copy_edits` (seeded by the picture's and
/// the edit's index here, as `vigie eval` seeds by its own), hashed as a screen hashes them.
/// Errors: the picture does not decode, or an edited copy cannot be encoded or hashed.
fn edited_copies(
    bytes: &[u8],
    copy_edits: &[Edit],
    source: usize,
    upload_hasher: &hashing::ImageHasher,
) -> Result<Vec<Copy>, String> {
    if copy_edits.is_empty() {
        return Ok(Vec::new());
    }
    let picture = harness::source_picture(
        bytes,
        &hashing::decode::DecodeLimits::default(),
        COPY_MAX_SIDE,
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(copy_edits.len());
    for (e, edit) in copy_edits.iter().enumerate() {
        let seed = (source as u64) << 16 | e as u64;
        let edited = edit.apply(&picture, seed).map_err(|err| err.to_string())?;
        let hashed = upload_hasher
            .hash_bytes(&edited)
            .map_err(|err| format!("{}: {err}", edit.name))?;
        out.push(Copy {
            edit: e,
            source,
            query: QueryHashes::from_image(&hashed, &mut Vec::new()),
        });
    }
    Ok(out)
}

/// The edits of `vigie eval`'s catalogue named in `names`, in that order. Errors: a name the
/// catalogue does not have (the message lists those it has).
fn copy_edits(names: &[String]) -> Result<Vec<Edit>, BenchError> {
    let catalogue = edits::catalogue();
    names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|name| {
            catalogue
                .iter()
                .find(|e| e.name == name.trim())
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = catalogue.iter().map(|e| e.name).collect();
                    BenchError(format!(
                        "--copy-edits: no edit {name:?} (the catalogue has {})",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// A uniform pick among `n` (at least 1).
fn pick(rng: &mut SplitMix64, n: usize) -> usize {
    rng.below(n as u64) as usize
}

/// A synthetic entry's points, from `shape`: at each scale its count of real points of that
/// scale, each at a random position inside the frame's margin with 0 to `flip_bits` bits flipped.
/// A scale whose pool is empty (no real point at it) gets none.
fn synthetic_points(
    corpus: &Corpus,
    shape: &Shape,
    flip_bits: u32,
    rng: &mut SplitMix64,
    out: &mut Vec<Keypoint>,
) {
    // A point's whole patch fits: as `hashing::keypoints` finds them.
    let margin = (PATCH / 2 + 1) as u64;
    for (scale, pool) in corpus.descriptors.iter().enumerate() {
        if pool.is_empty() {
            continue;
        }
        let (w, h) = shape.frames[scale];
        let along = |rng: &mut SplitMix64, side: u16| {
            let room = u64::from(side).saturating_sub(2 * margin).max(1);
            // Frames are under 256 pixels a side (`BANK_SCALES`' largest is 249).
            u8::try_from(margin + rng.below(room)).unwrap_or(u8::MAX)
        };
        for _ in 0..shape.counts[scale] {
            let real = pool[pick(rng, pool.len())];
            let flips = rng.below(u64::from(flip_bits) + 1) as u32;
            out.push(Keypoint {
                x: along(rng, w),
                y: along(rng, h),
                scale: scale as u8,
                descriptor: rng.flip(&real, flips),
            });
        }
    }
}

/// Every synthetic entry's points, made as they are indexed (never all held at once): for entry
/// `id` (from 1), the shape `shapes[id - 1]`. Counts exactly, so the index reserves exactly.
struct SyntheticPoints<'a> {
    corpus: &'a Corpus,
    shapes: &'a [u32],
    flip_bits: u32,
    rng: SplitMix64,
    /// Entries made so far.
    made: usize,
    /// The current entry's points, handed out from the back.
    current: Vec<Keypoint>,
    remaining: usize,
    bar: ProgressBar,
}

impl Iterator for SyntheticPoints<'_> {
    type Item = (EntryId, Keypoint);

    fn next(&mut self) -> Option<Self::Item> {
        while self.current.is_empty() {
            let shape = self.shapes.get(self.made)?;
            self.made += 1;
            if self.made.is_multiple_of(4096) {
                self.bar.set_position(self.made as u64);
            }
            let shape = &self.corpus.shapes[*shape as usize];
            synthetic_points(
                self.corpus,
                shape,
                self.flip_bits,
                &mut self.rng,
                &mut self.current,
            );
        }
        let p = self.current.pop()?;
        self.remaining = self.remaining.saturating_sub(1);
        if self.remaining == 0 {
            // The index plans and builds its tables next, a pause the bar cannot count.
            self.bar.set_position(self.made as u64);
            self.bar.set_message("all drawn; building the tables");
        }
        Some((self.made as EntryId, p))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for SyntheticPoints<'_> {}

/// The bank of `n` synthetic image entries (ids 1 to `n`), built as a start-up load builds one:
/// one bulk build per index.
fn build_bank(n: usize, corpus: &Corpus, args: &KeypointsBenchArgs) -> HashIndexes {
    let mut rng = SplitMix64::new(args.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let shapes: Vec<u32> = (0..n)
        .map(|_| pick(&mut rng, corpus.shapes.len()) as u32)
        .collect();
    let indexes = HashIndexes::new();
    let bar = progress_bar(
        n as u64,
        "bank of {len}: hashes {bar:40} {pos}/{len} entries {elapsed}",
    );
    let mut bulk = BulkLoad::default();
    for (i, &s) in shapes.iter().enumerate() {
        if i.is_multiple_of(4096) {
            bar.set_position(i as u64);
        }
        let id = i as EntryId + 1;
        let pdq = corpus.pdq[pick(&mut rng, corpus.pdq.len())];
        bulk.pdq.push((rng.flip(&pdq, 64), id));
        bulk.phash.push((rng.hash(), id));
        bulk.dhash.push((rng.hash(), id));
        for _ in 0..corpus.shapes[s as usize].windows {
            let w = corpus.windows[pick(&mut rng, corpus.windows.len())];
            bulk.pdq_windows.push((rng.flip(&w, 64), id));
        }
    }
    bar.set_message("indexing");
    indexes.extend_bulk(bulk);
    bar.finish_and_clear();
    let bar = progress_bar(
        n as u64,
        "bank of {len}: keypoints {bar:40} {pos}/{len} entries {elapsed} {msg}",
    );
    let remaining = shapes
        .iter()
        .map(|&s| corpus.shapes[s as usize].counts.iter().sum::<usize>())
        .sum();
    let points = SyntheticPoints {
        corpus,
        shapes: &shapes,
        flip_bits: args.flip_bits,
        rng: SplitMix64::new(rng.next_u64()),
        made: 0,
        current: Vec::new(),
        remaining,
        bar: bar.clone(),
    };
    // The bar shows the points drawn; the tables are planned and built once every point is in.
    bar.enable_steady_tick(Duration::from_millis(500));
    indexes.extend_keypoints(points);
    bar.finish_and_clear();
    indexes
}

/// Adds the screened pictures themselves to `indexes` (a bank of `n` synthetic entries), as
/// `AddEntries` adds an entry to a live bank.
fn add_real_entries(n: usize, corpus: &Corpus, indexes: &HashIndexes) {
    for (i, hashes) in corpus.real.iter().enumerate() {
        indexes.insert(real_id(n, i), hashes);
    }
}

/// The entry id of screened picture `i` in a bank of `n` synthetic entries (ids 1 to `n`).
fn real_id(n: usize, i: usize) -> EntryId {
    (n + 1 + i) as EntryId
}

/// The entries among `found` other than `own`, each set once: (met at all, met by keypoints,
/// met by a hash).
fn others(
    found: &[Candidate],
    own: EntryId,
) -> (HashSet<EntryId>, HashSet<EntryId>, HashSet<EntryId>) {
    let (mut all, mut by_points, mut by_hash) = (HashSet::new(), HashSet::new(), HashSet::new());
    for c in found.iter().filter(|c| c.id != own) {
        all.insert(c.id);
        if matches!(c.how, MatchKind::Keypoints { .. }) {
            by_points.insert(c.id);
        } else {
            by_hash.insert(c.id);
        }
    }
    (all, by_points, by_hash)
}

fn bench_one(n: usize, corpus: &Corpus, args: &KeypointsBenchArgs) -> Result<Run, BenchError> {
    let before = Resident::now();
    let started = Instant::now();
    let indexes = build_bank(n, corpus, args);
    let build = started.elapsed();
    let after = Resident::now();
    let bytes = indexes.heap_bytes();
    let (windows, keypoints) = indexes.sub_picture_counts();
    add_real_entries(n, corpus, &indexes);
    let added = indexes.heap_bytes();

    let thresholds = MaxDistances::default();
    let radius = |a: Algorithm| Some(thresholds.get(a));
    let hashes_only: Vec<QueryHashes> = corpus
        .uploads
        .iter()
        .map(|q| QueryHashes {
            keypoints: Vec::new(),
            ..q.clone()
        })
        .collect();
    let screens = corpus.uploads.len() * args.rounds;
    let bar = progress_bar(
        screens as u64,
        "bank of {msg}: screening {bar:40} {pos}/{len} uploads {elapsed}",
    );
    bar.set_message(n.to_string());
    let mut wall = Vec::with_capacity(screens);
    let mut cpu = Vec::with_capacity(screens);
    let mut without = Vec::with_capacity(screens);
    let (mut searches, mut votes) = (Vec::with_capacity(screens), Vec::with_capacity(screens));
    let mut stats = KeypointStats::default();
    let mut pairs = Vec::with_capacity(corpus.uploads.len());
    let (mut false_matches, mut false_keypoint, mut false_hash) = (0, 0, 0);
    let mut uploads_found = 0;
    for round in 0..args.rounds {
        for (i, (q, bare)) in corpus.uploads.iter().zip(&hashes_only).enumerate() {
            bar.inc(1);
            let mut one = KeypointStats::default();
            let (t, c) = (Instant::now(), thread_cpu_time());
            let found = indexes.candidates_with_stats(q, radius, &mut one);
            wall.push(t.elapsed());
            cpu.push(thread_cpu_time().saturating_sub(c));
            let t = Instant::now();
            let bare_found = indexes.candidates(bare, radius);
            without.push(t.elapsed());
            std::hint::black_box(bare_found);
            add(&mut stats, &one);
            searches.push(one.search);
            votes.push(one.vote);
            if round == 0 {
                pairs.push(one.pairs);
                let own = real_id(n, i);
                uploads_found += usize::from(found.iter().any(|c| c.id == own));
                let (met, by_points, by_hash) = others(&found, own);
                false_keypoint += by_points.len();
                false_hash += by_hash.len();
                false_matches += met.len();
            }
        }
    }
    bar.finish_and_clear();
    let copies = screen_copies(n, corpus, &indexes);
    for times in [&mut wall, &mut cpu, &mut without, &mut searches, &mut votes] {
        times.sort_unstable();
    }
    pairs.sort_unstable();
    let at = |times: &[Duration], q: f64| percentile(times, q).map_or(f64::NAN, ms);
    let uploads = corpus.uploads.len();
    let per_upload = |v: u64| v as f64 / screens as f64;
    let per_entry = |b: usize| b as f64 / n as f64;
    let grown = after.now.saturating_sub(before.now);
    Ok(Run {
        image_entries: n,
        keypoints,
        windows,
        build_ms: ms(build),
        index_bytes_per_entry: per_entry(bytes.keypoints + bytes.windows),
        keypoint_bytes_per_entry: per_entry(bytes.keypoints),
        window_bytes_per_entry: per_entry(bytes.windows),
        whole_bytes_per_entry: per_entry(bytes.whole),
        keypoint_bytes_per_point: bytes.keypoints as f64 / keypoints.max(1) as f64,
        keypoint_bytes_per_entry_after_adds: per_entry(added.keypoints),
        resident_bytes_per_entry: grown as f64 / n as f64,
        resident_growth_mib: mib(grown),
        peak_resident_mib: mib(after.peak),
        uploads,
        uploads_with_keypoints: corpus
            .uploads
            .iter()
            .filter(|q| !q.keypoints.is_empty())
            .count(),
        lookups_per_upload: per_upload(stats.lookups),
        common_points_per_upload: per_upload(stats.common_points),
        chance_pairs_per_upload: per_upload(stats.pairs),
        chance_pairs_p50: percentile(&pairs, 0.5).unwrap_or(0),
        chance_pairs_max: percentile(&pairs, 1.0).unwrap_or(0),
        shortlisted_groups_per_upload: per_upload(stats.shortlisted_groups),
        ranked_out_groups_per_upload: per_upload(stats.ranked_out_groups),
        verified_pairs_per_upload: per_upload(stats.verified_pairs),
        voted_groups_per_upload: per_upload(stats.voted_groups),
        voted_entries_per_upload: per_upload(stats.voted_entries),
        screen_p50_ms: at(&wall, 0.50),
        screen_p99_ms: at(&wall, 0.99),
        screen_max_ms: at(&wall, 1.0),
        screen_cpu_p50_ms: at(&cpu, 0.50),
        screen_cpu_p99_ms: at(&cpu, 0.99),
        hashes_only_p50_ms: at(&without, 0.50),
        hashes_only_p99_ms: at(&without, 0.99),
        keypoint_search_mean_ms: ms(stats.search) / screens as f64,
        keypoint_vote_mean_ms: ms(stats.vote) / screens as f64,
        keypoint_search_p99_ms: at(&searches, 0.99),
        keypoint_vote_p99_ms: at(&votes, 0.99),
        false_matches,
        false_keypoint_matches: false_keypoint,
        false_hash_matches: false_hash,
        uploads_found,
        copies: corpus.copies.len(),
        copies_found: copies.by_edit.iter().map(|c| c.found).sum(),
        copies_found_by_keypoints: copies.by_edit.iter().map(|c| c.found_by_keypoints).sum(),
        copies_by_edit: copies.by_edit,
        copy_false_matches: copies.false_matches,
        copy_false_keypoint_matches: copies.false_keypoint_matches,
        copy_screen_p50_ms: at(&copies.wall, 0.50),
        copy_screen_p99_ms: at(&copies.wall, 0.99),
        copy_keypoint_search_p99_ms: at(&copies.searches, 0.99),
        copy_keypoint_vote_p99_ms: at(&copies.votes, 0.99),
    })
}

/// What screening the edited copies once gave.
struct CopyScreens {
    by_edit: Vec<CopyCount>,
    false_matches: usize,
    false_keypoint_matches: usize,
    /// Sorted, as are the next two.
    wall: Vec<Duration>,
    searches: Vec<Duration>,
    votes: Vec<Duration>,
}

/// Screens every copy of `corpus` once against `indexes` (a bank of `n` synthetic entries and
/// the real ones).
fn screen_copies(n: usize, corpus: &Corpus, indexes: &HashIndexes) -> CopyScreens {
    let thresholds = MaxDistances::default();
    let radius = |a: Algorithm| Some(thresholds.get(a));
    let mut out = CopyScreens {
        by_edit: corpus
            .copy_edits
            .iter()
            .map(|name| CopyCount {
                edit: name.to_string(),
                copies: 0,
                found: 0,
                found_by_keypoints: 0,
            })
            .collect(),
        false_matches: 0,
        false_keypoint_matches: 0,
        wall: Vec::with_capacity(corpus.copies.len()),
        searches: Vec::with_capacity(corpus.copies.len()),
        votes: Vec::with_capacity(corpus.copies.len()),
    };
    if corpus.copies.is_empty() {
        return out;
    }
    let bar = progress_bar(
        corpus.copies.len() as u64,
        "bank of {msg}: screening copies {bar:40} {pos}/{len} {elapsed}",
    );
    bar.set_message(n.to_string());
    for copy in &corpus.copies {
        bar.inc(1);
        let mut stats = KeypointStats::default();
        let t = Instant::now();
        let found = indexes.candidates_with_stats(&copy.query, radius, &mut stats);
        out.wall.push(t.elapsed());
        out.searches.push(stats.search);
        out.votes.push(stats.vote);
        let own = real_id(n, copy.source);
        let Some(count) = out.by_edit.get_mut(copy.edit) else {
            continue;
        };
        count.copies += 1;
        count.found += usize::from(found.iter().any(|c| c.id == own));
        count.found_by_keypoints += usize::from(
            found
                .iter()
                .any(|c| c.id == own && matches!(c.how, MatchKind::Keypoints { .. })),
        );
        let (met, by_points, _) = others(&found, own);
        out.false_matches += met.len();
        out.false_keypoint_matches += by_points.len();
    }
    bar.finish_and_clear();
    out.wall.sort_unstable();
    out.searches.sort_unstable();
    out.votes.sort_unstable();
    out
}

/// `total` plus `one`, field by field.
fn add(total: &mut KeypointStats, one: &KeypointStats) {
    total.uploads += one.uploads;
    total.lookups += one.lookups;
    total.pairs += one.pairs;
    total.common_points += one.common_points;
    total.shortlisted_groups += one.shortlisted_groups;
    total.ranked_out_groups += one.ranked_out_groups;
    total.verified_pairs += one.verified_pairs;
    total.voted_groups += one.voted_groups;
    total.voted_entries += one.voted_entries;
    total.matched_entries += one.matched_entries;
    total.search += one.search;
    total.vote += one.vote;
}

/// Runs `vigie bench keypoints`: the JSON report on stdout (and in `--out`), a summary line per
/// bank size and progress on stderr, a PNG of screen latency against bank size when several sizes
/// were asked for. Errors: bad arguments, an unreadable corpus or one without keypoints, an
/// unwritable output.
pub fn run(args: KeypointsBenchArgs) -> Result<(), BenchError> {
    if args.image_entries.contains(&0) {
        return Err(BenchError("--image-entries must be at least 1".into()));
    }
    if args.rounds == 0 {
        return Err(BenchError("--rounds must be at least 1".into()));
    }
    if args.flip_bits > 64 {
        return Err(BenchError("--flip-bits must be at most 64".into()));
    }
    let copy_edits = copy_edits(&args.copy_edits)?;
    let corpus = read_corpus(&args, &copy_edits)?;
    eprintln!(
        "{} uploads screened; {} real banked points from {} other pictures ({} with keypoints)",
        corpus.uploads.len(),
        corpus.real_points(),
        corpus.shapes.len(),
        corpus
            .shapes
            .iter()
            .filter(|s| s.counts.iter().sum::<usize>() > 0)
            .count(),
    );
    let mut runs = Vec::new();
    for &n in &args.image_entries {
        let run = bench_one(n, &corpus, &args)?;
        eprintln!(
            "{:>9} image entries: {:.0} B/entry of keypoint + window index ({:.0} + {:.0}; whole \
             hashes {:.0}; resident +{:.0} B/entry, {:.0} MiB, peak {:.0} MiB) | build {:.1} s | \
             {:.1} chance pairs (median {}, most {}), {:.2} entries voted on an upload | screen p50 {:.2} ms p99 {:.2} ms max {:.2} ms \
             (without keypoints p99 {:.2} ms; keypoint search {:.2} + vote {:.2} ms) | false \
             matches {} ({} by keypoints) | copies found {}/{} ({} by keypoints; {} false \
             matches), copy screen p99 {:.2} ms",
            n,
            run.index_bytes_per_entry,
            run.keypoint_bytes_per_entry,
            run.window_bytes_per_entry,
            run.whole_bytes_per_entry,
            run.resident_bytes_per_entry,
            run.resident_growth_mib,
            run.peak_resident_mib,
            run.build_ms / 1e3,
            run.chance_pairs_per_upload,
            run.chance_pairs_p50,
            run.chance_pairs_max,
            run.voted_entries_per_upload,
            run.screen_p50_ms,
            run.screen_p99_ms,
            run.screen_max_ms,
            run.hashes_only_p99_ms,
            run.keypoint_search_mean_ms,
            run.keypoint_vote_mean_ms,
            run.false_matches,
            run.false_keypoint_matches,
            run.copies_found,
            run.copies,
            run.copies_found_by_keypoints,
            run.copy_false_matches,
            run.copy_screen_p99_ms,
        );
        runs.push(run);
    }
    let report = Report {
        corpus: args.corpus.display().to_string(),
        uploads: corpus.uploads.len(),
        bank_pictures: corpus.shapes.len(),
        bank_pictures_with_keypoints: corpus
            .shapes
            .iter()
            .filter(|s| s.counts.iter().sum::<usize>() > 0)
            .count(),
        real_points: corpus.real_points(),
        flip_bits: args.flip_bits,
        rounds: args.rounds,
        seed: args.seed,
        max_distance: MaxDistances::default(),
        runs,
    };
    let json = match &args.out {
        Some(out) => super::write_json(out, &report)?,
        None => serde_json::to_string_pretty(&report)?,
    };
    println!("{json}");
    if args.image_entries.len() > 1 {
        let png = match &args.out {
            Some(out) => out.with_extension("png"),
            None => PathBuf::from("bench-keypoints.png"),
        };
        plot(&report, &png)?;
        eprintln!("plot written to {}", png.display());
    }
    Ok(())
}

/// Screen latency against bank size: p50 and p99 with keypoints, p99 without, and the target.
fn plot(report: &Report, png: &Path) -> Result<(), BenchError> {
    let line = |name: &str, f: fn(&Run) -> f64| Series {
        name: name.into(),
        points: report
            .runs
            .iter()
            .map(|r| (r.image_entries as f64, f(r)))
            .collect(),
        thin: false,
        color: None,
    };
    let target = Series {
        name: "target p99 at 1M (50 ms)".into(),
        points: report
            .runs
            .iter()
            .map(|r| (r.image_entries as f64, 50.0))
            .collect(),
        thin: true,
        color: Some((200, 0, 0)),
    };
    LineChart {
        title: "vigie bench keypoints: a screen's index time against synthetic image entries"
            .into(),
        x_label: "image entries in the bank".into(),
        y_label: "milliseconds per upload".into(),
        log_x: true,
        log_y: true,
        series: vec![
            line("p50, keypoints on", |r| r.screen_p50_ms),
            line("p99, keypoints on", |r| r.screen_p99_ms),
            Series {
                thin: true,
                ..line("p99, keypoints left out", |r| r.hashes_only_p99_ms)
            },
            target,
        ],
    }
    .write_png(png)?;
    Ok(())
}

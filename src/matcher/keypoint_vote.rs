//! The keypoint vote: whether an upload's points and a banked picture's agree on one displacement.
//!
//! `hashing::keypoints` finds and describes the points; this is the matching side. Each rare
//! enough upload descriptor ([`is_lookup_point`]) finds the rare enough banked descriptors within
//! [`SEARCH_RADIUS`] bits (in the matcher's keypoint index, under a [`KeypointId`]; a point that
//! meets more than [`MAX_POINT_HITS`] is left out); an entry and banked scale met by
//! [`SHORTLIST_POINTS`] upload points is paired again in full (the [`MAX_PAIRED_GROUPS`] best
//! ranked by [`group_score`]), every upload point with every banked point of the group within
//! [`DESCRIPTOR_RADIUS`] bits ([`BankedPoints`], plain points included); the pairs of one entry and banked scale vote for the
//! displacement between the two points (also with the upload turned back a few degrees and zoomed
//! a little, see [`VOTE_TURNS_DEGREES`] and [`VOTE_ZOOMS`]), and a match needs [`MIN_VOTES`]
//! distinct upload points agreeing on one displacement within [`VOTE_TOLERANCE`] pixels and
//! spread over the upload ([`MIN_SPREAD`]), and those points must be a fair share of the pairs
//! found ([`MIN_INLIER_RATIO_INVERSE`]: text and periodic patterns pair everything with
//! everything). This is Hough voting as in Lowe, "Distinctive image features from
//! scale-invariant keypoints", IJCV 2004, section 7. Measured on `vigie eval`
//! (docs/EVALUATION.md): of 453,000 unrelated (upload, entry) pairs, none had more than 3 such
//! points.

use crate::hashing::keypoints::{
    BANK_SCALES, Keypoint, MAX_KEYPOINTS, UploadKeypoints, transitions,
};
use crate::store::EntryId;

/// Two descriptors of the same patch are within this many bits (of 64): the radius at which an
/// upload point and a banked point of a shortlisted entry pair up ([`BankedPoints::pairs_with`]).
/// At 8 (before the texture rule), `vigie eval` found 0.2 points more of recall for twice the
/// lookup time.
pub const DESCRIPTOR_RADIUS: u32 = 7;

/// The radius of the keypoint index lookup, which only shortlists (entry, scale) groups: those
/// with at least [`SHORTLIST_POINTS`] upload points within this many bits of one of their points.
/// A shortlisted group is then paired again in full at [`DESCRIPTOR_RADIUS`]
/// ([`BankedPoints::pairs_with`]), and voted on as before.
///
/// Why two radii: the lookup's cost and its chance pairs grow with the radius much faster than a
/// copy's true pairs do. For independent, even bits, the share of 64-bit strings within `r` bits
/// of a given one is `sum_{i<=r} C(64, i) / 2^64`: 3.7e-14 at 4 bits, 3.8e-11 at 7, a thousand
/// times more (a descriptor's bits are neither, so the real rates are higher and closer: 8.3 times
/// fewer chance pairs at 4 bits than at 7 on `vigie bench keypoints`, docs/PERFORMANCE.md), while
/// a copy's patch moves by a few bits and enough of its points stay within 4. Pairing the
/// shortlist again at the wide radius is the shortlist-then-verify of image retrieval (Philbin et
/// al., "Object retrieval with large vocabularies and fast spatial matching", CVPR 2007): every
/// group that reaches the shortlist is voted on exactly as a lookup at 7 bits would have it.
/// Measured (docs/EVALUATION.md, 2026-12-02): on `vigie eval` a lookup at 5 bits alone lost 45
/// copies of recall, a shortlist at 4 or 5 bits paired again at 7 lost none (the same copies
/// found), one false match fewer and a screen 20% cheaper; at 10,000 image entries the median
/// screen went from 71 to 8.6 ms.
pub const SEARCH_RADIUS: u32 = 4;

/// The least [`transitions`] (of 112 neighbouring cell pairs that differ) of a point that the
/// keypoint index holds (a banked point) or is looked up with (an upload point). Every point of
/// at least [`crate::hashing::keypoints::MIN_TRANSITIONS`] still pairs and votes: a group that
/// reaches the shortlist is paired again in full from [`BankedPoints`], all points included.
///
/// Why: a descriptor's transitions say how rare it is. Plain patches (an edge, the corner of a
/// bright shape, a stripe) are few bit patterns, met over and over in unrelated pictures, and
/// the lookup's chance pairs are nearly all theirs. Measured on the corpus's two halves (upload
/// points of every set against the banked points of every scale, within [`SEARCH_RADIUS`];
/// docs/PERFORMANCE.md, 2026-12-02 (third)): the upload points of 14 transitions met 23 banked
/// points each on average, those of 20 met 1.4, those of 26 and more under 0.15; the quarter of
/// upload points with the most pairs held 98% of all pairs, and 68% of upload points had none.
/// At a bank of a million image entries that is the difference between millions of chance pairs
/// an upload, each one sorted, grouped and possibly paired in full, and a few hundred thousand;
/// a copy keeps most of its rarer points, enough to reach the shortlist ([`SHORTLIST_POINTS`]).
/// The stop list of text retrieval, for visual words (Sivic and Zisserman, "Video Google: a text
/// retrieval approach to object matching in videos", ICCV 2003, section 4.1), decided by the
/// descriptor itself rather than by counting the bank.
pub const LOOKUP_TRANSITIONS: u32 = 20;

/// Whether `p` takes part in the keypoint index (see [`LOOKUP_TRANSITIONS`]): held there as a
/// banked point, looked up as an upload point.
pub fn is_lookup_point(p: &Keypoint) -> bool {
    transitions(&p.descriptor) >= LOOKUP_TRANSITIONS
}

/// Distinct upload points found within [`SEARCH_RADIUS`] of an (entry, scale) group's points
/// that put the group on the shortlist (see [`SEARCH_RADIUS`]). Only the rarer points are looked
/// up ([`LOOKUP_TRANSITIONS`]), so a copy brings fewer of them: on `vigie eval` (docs/EVALUATION.md,
/// 2026-12-02, third), 3 lost 5 copies of 5022 to the rarity rule where 4 lost 13, for more groups
/// paired in full (`vigie bench keypoints` at a million image entries: a mean vote of 32.7 ms
/// instead of 14.6, p99 750 ms instead of 536). Before the rarity rule, 4 found the same copies
/// as 3 and 5 lost one.
pub const SHORTLIST_POINTS: u32 = 3;

/// An upload point whose index lookup meets more banked points than this is left out of the
/// shortlist (it still pairs in full with every shortlisted group): a pattern that many banked
/// pictures share, which says little about any one of them and costs a cache miss and a sorted
/// pair for each. The stop list of text retrieval, by count (Sivic and Zisserman, "Video Google",
/// ICCV 2003, section 4.1: the most frequent visual words are left out); the lookup finds it out
/// before reading the points' ids ([`crate::index::HammingIndex::search_at_most`]).
///
/// Measured with `vigie bench keypoints --image-entries 1000000` (docs/PERFORMANCE.md,
/// 2026-12-02 (fourth)): at 8192, 2.2 upload points of 132 looked up are left out, chance pairs
/// an upload fall from 76,700 to 24,900 (the most from 422,000 to 80,000) and the 320 edited
/// copies of banked pictures screened there are found as often as without it (229); at 2048 and
/// below two heavy crops fewer were found, for no screen time that the machine's noise let show.
pub const MAX_POINT_HITS: usize = 8192;

/// The most (entry, banked scale) groups of the shortlist that one upload point set pairs in full
/// and votes on: those whose meeting upload points are rarest ([`group_score`]).
///
/// Why a bound: at a million image entries the rarer points still meet tens of thousands of
/// banked points by chance, and a few thousand groups reach the shortlist
/// ([`SHORTLIST_POINTS`]) an upload, each paired in full and voted on: the slow screens' time.
/// A copy's own group is met by more of its points, and by points that meet little else, than
/// any group met by chance, so it ranks first and the rest need not be paired. This is the
/// ranked shortlist of image retrieval, where only the best-scoring images of the vocabulary
/// lookup are spatially verified (Philbin et al., "Object retrieval with large vocabularies and
/// fast spatial matching", CVPR 2007, section 5). Measured with `vigie bench keypoints
/// --image-entries 1000000` (docs/PERFORMANCE.md, 2026-12-02 (fourth)): 4,170 groups an upload
/// were paired in full, the slowest upload's vote took 672 ms; with the bound 3 ms, and the
/// same edited copies of banked pictures found. A bank holding more than this many copies of
/// one picture still gets every one of them from its PDQ, not from keypoints.
pub const MAX_PAIRED_GROUPS: usize = 64;

/// The ranking score of a shortlisted group whose index hits are `run` (pairs of group and
/// upload point index), where upload point `q` met `hits[q]` banked points in an index of
/// `indexed` points: the sum, over the distinct upload points that met the group, of their
/// inverse document frequency `ln((indexed + 1) / hits)`. A point that meets few banked points
/// says more about each than one that meets thousands (Sivic and Zisserman, "Video Google",
/// ICCV 2003, section 4.1: tf-idf weighting of visual words). Upload points past `hits` count as
/// if they had met every point (weight 0).
pub fn group_score(run: &[(u64, u16)], hits: &[u32], indexed: usize) -> f32 {
    let total = (indexed as f64 + 1.0).ln();
    let mut seen = 0u128;
    let mut score = 0.0f64;
    for &(_, q) in run {
        let Some(bit) = 1u128.checked_shl(u32::from(q)) else {
            continue;
        };
        if seen & bit != 0 {
            continue;
        }
        seen |= bit;
        if let Some(&h) = hits.get(usize::from(q)) {
            score += (total - f64::from(h.max(1)).ln()).max(0.0);
        }
    }
    score as f32
}

/// Points of one entry must agree on their displacement within this many pixels (at
/// [`crate::hashing::keypoints::BANK_LONG_SIDE`] scale).
pub const VOTE_TOLERANCE: i32 = 2;
/// Distinct upload points agreeing on one displacement (and spread over the upload) that make a
/// match: four times the most any unrelated pair reached on `vigie eval`.
pub const MIN_VOTES: u32 = 8;
/// The agreeing upload points must spread over at least this fraction of the upload's width and
/// of its height. A crop of a banked picture agrees all over; two different pictures that share
/// one object (a mascot, a logo, a watermark) agree only where that object is: on `vigie eval`
/// the corpus's Tux drawings matched each other by 20 to 29 points without this.
pub const MIN_SPREAD: f32 = 0.6;

/// The least fraction of an (entry, scale) group's descriptor pairs that must agree on the
/// winning displacement, as `1 / MIN_INLIER_RATIO_INVERSE` (a fifth). A crop, turn or recompression
/// of a banked picture pairs most upload points with the one banked point they came from, so most
/// pairs agree; text, a tiled watermark or a periodic texture pairs each upload point with many
/// look-alike points (every "E" of a caption with every other), and only a few of those pairs
/// agree. This is the inlier ratio of spatial verification (Philbin et al., "Object retrieval with
/// large vocabularies and fast spatial matching", CVPR 2007; the repeated structures it guards
/// against are the "burstiness" of Jegou et al., CVPR 2009). Measured with `vigie eval --corpus
/// ../shared/corpus` (docs/EVALUATION.md, 2026-12-01): of the keypoint matches of unrelated
/// pictures (shared flyer and chat templates, low-texture waves), 90% had under 11% of their pairs
/// agreeing; of the copies only keypoints find (heavy crops, turns), 95% had over 30%. At a fifth,
/// keypoint false matches fell from 408 copies to 15 and recall lost 10 copies of 5022.
pub const MIN_INLIER_RATIO_INVERSE: u32 = 5;

/// Whether `votes` agreeing points out of `pairs` descriptor pairs of one (entry, scale) group
/// make a match: at least [`MIN_VOTES`], and at least a [`MIN_INLIER_RATIO_INVERSE`]-th of the
/// pairs (see there).
pub fn is_match(votes: u32, pairs: usize) -> bool {
    votes >= least_votes(pairs)
}

/// The fewest votes that make a match of a group of `pairs` descriptor pairs: [`MIN_VOTES`], or
/// a [`MIN_INLIER_RATIO_INVERSE`]-th of the pairs rounded up when that is more. A vote can stop
/// looking once no displacement can reach it (see [`best_vote_over`]).
pub fn least_votes(pairs: usize) -> u32 {
    let share = pairs.div_ceil(MIN_INLIER_RATIO_INVERSE as usize);
    MIN_VOTES.max(u32::try_from(share).unwrap_or(u32::MAX))
}

/// Distinct upload points among `pairs`: the most votes they can give (each upload point votes
/// once).
pub fn distinct_upload_points(pairs: &[PointPair]) -> u32 {
    distinct_indices(pairs.iter().map(|p| p.query))
}

/// How many distinct upload point indices `queries` holds.
pub fn distinct_indices(queries: impl IntoIterator<Item = u16>) -> u32 {
    // Upload points are indexed under MAX_KEYPOINTS (64): a bit each covers them. An index past
    // the mask (never made) counts as distinct, which can only let a vote run, never skip one.
    let (mut seen, mut other) = (0u128, 0u32);
    for q in queries {
        match 1u128.checked_shl(u32::from(q)) {
            Some(bit) => seen |= bit,
            None => other += 1,
        }
    }
    seen.count_ones() + other
}

/// One descriptor pair found between an upload point and a banked point: the upload point's index
/// and the displacement from it to the banked point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointPair {
    /// Index of the upload point in [`UploadKeypoints::points`].
    pub query: u16,
    /// Banked x minus upload x, in pixels (each point on its own resampled picture).
    pub dx: i16,
    /// Banked y minus upload y, in pixels.
    pub dy: i16,
}

impl PointPair {
    /// The pair of upload point `query` (at `query_index` among the upload's points) and banked
    /// point `bank`. An index past `u16::MAX` (never: at most [`MAX_KEYPOINTS`] points) is
    /// clamped to it.
    pub fn new(query_index: usize, query: &Keypoint, bank: &Keypoint) -> Self {
        Self {
            // At most MAX_KEYPOINTS upload points, so the index fits.
            query: u16::try_from(query_index).unwrap_or(u16::MAX),
            dx: i16::from(bank.x) - i16::from(query.x),
            dy: i16::from(bank.y) - i16::from(query.y),
        }
    }
}

/// The most distinct upload points whose pairs agree on one displacement, within
/// [`VOTE_TOLERANCE`] pixels on both axes of one of the pairs' own displacements (the Hough
/// vote), counting only displacements whose points spread over [`MIN_SPREAD`] of the upload.
/// Quadratic in the pairs of one entry, which are a few hundred at most.
pub fn agreeing_points(pairs: &[PointPair], upload: &UploadKeypoints) -> u32 {
    agreeing_points_over(pairs, upload, 0)
}

/// [`agreeing_points`] when it is more than `floor`, else `floor`: windows that cannot beat it
/// are not examined, which makes the trials of [`best_vote`] after a good one cheap.
fn agreeing_points_over(pairs: &[PointPair], upload: &UploadKeypoints, floor: u32) -> u32 {
    if pairs.len() as u32 <= floor {
        return floor;
    }
    let tolerance = VOTE_TOLERANCE as i16;
    let mut sorted = pairs.to_vec();
    sorted.sort_unstable_by_key(|p| (p.dx, p.dy, p.query));
    let mut best = floor;
    let mut seen: Vec<u16> = Vec::new();
    let min_w = MIN_SPREAD * f32::from(upload.width);
    let min_h = MIN_SPREAD * f32::from(upload.height);
    let spread = |seen: &[u16]| {
        let (mut x0, mut y0, mut x1, mut y1) = (u8::MAX, u8::MAX, 0u8, 0u8);
        for p in seen
            .iter()
            .filter_map(|&i| upload.points.get(usize::from(i)))
        {
            (x0, y0, x1, y1) = (x0.min(p.x), y0.min(p.y), x1.max(p.x), y1.max(p.y));
        }
        x1 >= x0 && f32::from(x1 - x0) >= min_w && f32::from(y1.saturating_sub(y0)) >= min_h
    };
    // Sorted by dx, the pairs within the tolerance of an anchor's dx form one window.
    let (mut lo, mut hi) = (0, 0);
    for anchor in &sorted {
        while sorted[lo].dx < anchor.dx - tolerance {
            lo += 1;
        }
        while hi < sorted.len() && sorted[hi].dx <= anchor.dx + tolerance {
            hi += 1;
        }
        if (hi - lo) as u32 <= best {
            continue;
        }
        seen.clear();
        seen.extend(
            sorted[lo..hi]
                .iter()
                .filter(|p| (p.dy - anchor.dy).abs() <= tolerance)
                .map(|p| p.query),
        );
        if seen.len() as u32 <= best {
            continue;
        }
        seen.sort_unstable();
        seen.dedup();
        if seen.len() as u32 > best && spread(&seen) {
            best = seen.len() as u32;
        }
    }
    best
}

/// The turns of the upload, in degrees, the vote also tries: a copy turned a few degrees keeps its
/// patches (a 24-pixel patch turned 5 degrees moves its corner cells by about a pixel) but not one
/// displacement, so the upload's points are turned back about its centre before they vote.
pub const VOTE_TURNS_DEGREES: [f32; 5] = [0.0, 2.5, -2.5, 5.0, -5.0];

/// The enlargements of the upload the vote also tries, under each turn: the banked scales are
/// 12-14% apart, so a crop can sit up to 7% from the nearest, and a point 96 pixels from the
/// centre then moves by up to 7 pixels, past [`VOTE_TOLERANCE`]; its patch, a quarter of that
/// size, still matches. Zooms scale the upload's points about its centre before they vote.
pub const VOTE_ZOOMS: [f32; 3] = [1.0, 1.035, 0.965];

/// How far each upload point moves when the upload is turned and zoomed about its centre, for
/// every turn of [`VOTE_TURNS_DEGREES`] and zoom of [`VOTE_ZOOMS`] but the identity: made once an
/// upload (its points are the same for every entry it is voted against) and read by
/// [`best_vote_over`].
#[derive(Debug, Clone)]
pub struct VoteFrames {
    /// For each (turn, zoom) but the first, then each upload point: the rounded shift (x, y) in
    /// pixels from the point to where the turn and zoom take it, negated.
    offsets: Vec<(i16, i16)>,
    points: usize,
}

impl VoteFrames {
    /// The shifts of `upload`'s points under every turn and zoom the vote tries.
    pub fn new(upload: &UploadKeypoints) -> Self {
        let (cx, cy) = (
            f32::from(upload.width) / 2.0,
            f32::from(upload.height) / 2.0,
        );
        let mut offsets = Vec::with_capacity(upload.points.len() * VOTE_FRAMES);
        for degrees in VOTE_TURNS_DEGREES {
            for zoom in VOTE_ZOOMS {
                if degrees == 0.0 && zoom == 1.0 {
                    continue;
                }
                let (sin, cos) = degrees.to_radians().sin_cos();
                let (sin, cos) = (sin * zoom, cos * zoom);
                offsets.extend(upload.points.iter().map(|q| {
                    let (qx, qy) = (f32::from(q.x), f32::from(q.y));
                    let (ux, uy) = (qx - cx, qy - cy);
                    let (rx, ry) = (cos * ux - sin * uy + cx, sin * ux + cos * uy + cy);
                    // Positions are under 256 and zooms near 1, so the shifts fit.
                    ((qx - rx).round() as i16, (qy - ry).round() as i16)
                }));
            }
        }
        VoteFrames {
            offsets,
            points: upload.points.len(),
        }
    }
}

/// The (turn, zoom) combinations the vote tries, the identity included.
const VOTE_FRAMES: usize = VOTE_TURNS_DEGREES.len() * VOTE_ZOOMS.len();

/// The best [`agreeing_points`] over the turns of [`VOTE_TURNS_DEGREES`] and the zooms of
/// [`VOTE_ZOOMS`] (makes the upload's [`VoteFrames`]; a caller voting one upload against many
/// entries makes them once and calls [`best_vote_over`]).
pub fn best_vote(pairs: &[PointPair], upload: &UploadKeypoints) -> u32 {
    best_vote_over(pairs, upload, &VoteFrames::new(upload), 0)
}

/// [`best_vote`] when it is more than `floor`, else `floor`, with the upload's turns and zooms made
/// beforehand (`frames` must be of `upload`). A pair's displacement under a turn is its upright
/// one plus the upload point's shift: the banked point stays, the upload point moves
/// (`bx - round(r(q))` is `(bx - qx) + round(qx - r(q))` for whole-pixel positions), so each pair
/// costs two additions. With `floor` one under
/// [`least_votes`] of the group, the result is its best vote when that makes a match and `floor`
/// when none does, and every displacement window too small to make a match is skipped unread:
/// a group of text pairs (hundreds, few agreeing) costs a sort a turn rather than a full vote.
pub fn best_vote_over(
    pairs: &[PointPair],
    upload: &UploadKeypoints,
    frames: &VoteFrames,
    floor: u32,
) -> u32 {
    let mut best = agreeing_points_over(pairs, upload, floor);
    let mut turned = Vec::with_capacity(pairs.len());
    for frame in frames.offsets.chunks(frames.points.max(1)) {
        turned.clear();
        turned.extend(pairs.iter().filter_map(|p| {
            let (ox, oy) = frame.get(usize::from(p.query))?;
            Some(PointPair {
                query: p.query,
                dx: p.dx + ox,
                dy: p.dy + oy,
            })
        }));
        best = agreeing_points_over(&turned, upload, best);
    }
    best
}

/// Votes of an upload for a banked picture, by brute force over every descriptor pair (every
/// group paired in full, as if shortlisted): the best over the banked scales whose vote
/// [`is_match`] (0 when none is). The matcher finds its pairs through its index; `vigie eval`
/// uses this to measure every pair of pictures.
pub fn votes(bank: &[Keypoint], upload: &UploadKeypoints) -> u32 {
    let held = BankedPoints::new(bank);
    let mut pairs = Vec::new();
    let mut best = 0;
    let mut frames = None;
    for scale in 0..BANK_SCALES.len() as u8 {
        pairs.clear();
        held.pairs_with(scale, upload, &mut pairs);
        // Only a vote above both the best so far and the group's least match counts.
        let floor = best.max(least_votes(pairs.len()) - 1);
        if distinct_upload_points(&pairs) > floor {
            let frames = frames.get_or_insert_with(|| VoteFrames::new(upload));
            let v = best_vote_over(&pairs, upload, frames, floor);
            if v > floor {
                best = v;
            }
        }
    }
    best
}

/// An image entry's banked points as the matcher keeps them beside the keypoint index: all of
/// them, grouped by banked scale, so that a shortlisted (entry, scale) group is paired with the
/// upload's points in full ([`SEARCH_RADIUS`]). 10 bytes a point (its 64 descriptor bits and its
/// position), in two flat arrays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankedPoints {
    /// Descriptors, scale 0's points first, then scale 1's, then scale 2's.
    descriptors: Box<[u64]>,
    /// (x, y) of each point, in the same order.
    places: Box<[[u8; 2]]>,
    /// Where each scale's points start; the last is the end.
    starts: [u16; BANK_SCALES.len() + 1],
}

impl BankedPoints {
    /// The points of `points` (any order; at most `u16::MAX`), grouped by scale. Points of a
    /// scale past [`BANK_SCALES`] (never made) are left out.
    pub fn new(points: &[Keypoint]) -> Self {
        let mut sorted: Vec<&Keypoint> = points
            .iter()
            .filter(|p| usize::from(p.scale) < BANK_SCALES.len())
            .take(usize::from(u16::MAX))
            .collect();
        sorted.sort_by_key(|p| p.scale);
        let mut starts = [0u16; BANK_SCALES.len() + 1];
        for (scale, start) in starts.iter_mut().enumerate() {
            // At most u16::MAX points, so every count fits.
            *start = sorted
                .iter()
                .filter(|p| usize::from(p.scale) < scale)
                .count() as u16;
        }
        BankedPoints {
            descriptors: sorted.iter().map(|p| p.descriptor.0[0]).collect(),
            places: sorted.iter().map(|p| [p.x, p.y]).collect(),
            starts,
        }
    }

    /// How many points are held, at every scale.
    pub fn len(&self) -> usize {
        self.descriptors.len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.descriptors.is_empty()
    }

    /// The points held, scale 0's first.
    pub fn points(&self) -> Vec<Keypoint> {
        let mut out = Vec::with_capacity(self.len());
        for scale in 0..BANK_SCALES.len() {
            let range = usize::from(self.starts[scale])..usize::from(self.starts[scale + 1]);
            for (&d, &[x, y]) in self.descriptors[range.clone()]
                .iter()
                .zip(&self.places[range])
            {
                out.push(Keypoint {
                    x,
                    y,
                    // Under BANK_SCALES.len() (3).
                    scale: scale as u8,
                    descriptor: crate::bits::Bits([d]),
                });
            }
        }
        out
    }

    /// Bytes the two arrays take on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.descriptors.len() * std::mem::size_of::<u64>()
            + self.places.len() * std::mem::size_of::<[u8; 2]>()
    }

    /// Appends to `out` every pair of an `upload` point and a banked point of `scale` whose
    /// descriptors are within [`DESCRIPTOR_RADIUS`] bits: what an index lookup at that radius
    /// would find for this group (none for a scale not held).
    pub fn pairs_with(&self, scale: u8, upload: &UploadKeypoints, out: &mut Vec<PointPair>) {
        let scale = usize::from(scale);
        let (Some(&start), Some(&end)) = (self.starts.get(scale), self.starts.get(scale + 1))
        else {
            return;
        };
        let range = usize::from(start)..usize::from(end);
        let (descriptors, places) = (&self.descriptors[range.clone()], &self.places[range]);
        for (qi, q) in upload.points.iter().enumerate() {
            let qd = q.descriptor.0[0];
            for (d, &[x, y]) in descriptors.iter().zip(places) {
                if (qd ^ d).count_ones() <= DESCRIPTOR_RADIUS {
                    out.push(PointPair {
                        // At most MAX_KEYPOINTS upload points, so the index fits.
                        query: u16::try_from(qi).unwrap_or(u16::MAX),
                        dx: i16::from(x) - i16::from(q.x),
                        dy: i16::from(y) - i16::from(q.y),
                    });
                }
            }
        }
    }
}

/// Votes as a distance, so that keypoint matches read a calibration table like the hashes do:
/// the points out of [`MAX_KEYPOINTS`] that did not agree (0 is the best).
pub fn votes_distance(votes: u32) -> u32 {
    (MAX_KEYPOINTS as u32).saturating_sub(votes)
}

/// A banked keypoint's id in the keypoint index: the entry id in the high bits, then the point's
/// scale (2 bits) and position (8 + 8 bits), so that a hit says where the banked point is without
/// a second lookup.
///
/// Layout of the `u64`, most significant first: `entry id (46 bits) | scale (2) | x (8) | y (8)`.
/// The entry and scale together ([`KeypointId::group`]) name one set of points that may vote
/// together: displacements measured at different scales are in different frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeypointId(pub u64);

impl KeypointId {
    /// Bits below the scale: the position.
    const POSITION_BITS: u32 = 16;
    /// Bits below the entry id: the scale and the position.
    const ENTRY_SHIFT: u32 = Self::POSITION_BITS + 2;

    /// The id of banked point `p` of entry `entry`; `None` past 2^46 entry ids (never reached:
    /// ids count up from 1) or for a scale that does not fit its 2 bits.
    pub fn new(entry: EntryId, p: &Keypoint) -> Option<KeypointId> {
        (entry < 1 << (64 - Self::ENTRY_SHIFT) && p.scale < 4).then(|| {
            KeypointId(
                entry << Self::ENTRY_SHIFT
                    | u64::from(p.scale) << Self::POSITION_BITS
                    | u64::from(p.x) << 8
                    | u64::from(p.y),
            )
        })
    }

    /// The entry the point belongs to.
    pub fn entry(self) -> EntryId {
        self.0 >> Self::ENTRY_SHIFT
    }

    /// The (entry, scale) group: the pairs of one group vote together.
    pub fn group(self) -> u64 {
        self.0 >> Self::POSITION_BITS
    }

    /// The entry of a [`KeypointId::group`] value.
    pub fn entry_of_group(group: u64) -> EntryId {
        group >> (Self::ENTRY_SHIFT - Self::POSITION_BITS)
    }

    /// The banked scale of a [`KeypointId::group`] value (an index in [`BANK_SCALES`]).
    pub fn scale_of_group(group: u64) -> u8 {
        (group & ((1 << (Self::ENTRY_SHIFT - Self::POSITION_BITS)) - 1)) as u8
    }

    /// The banked point's position and scale (its descriptor is not in the id: zero).
    pub fn point(self) -> Keypoint {
        Keypoint {
            x: (self.0 >> 8) as u8,
            y: self.0 as u8,
            scale: (self.0 >> Self::POSITION_BITS & 3) as u8,
            descriptor: crate::bits::Bits([0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::Bits;
    use crate::hashing::keypoints::test_scenes::{crop, scene};
    use crate::hashing::keypoints::{MIN_KEYPOINTS, bank_keypoints, query_keypoints};
    use crate::hashing::pdq::LumaPlane;
    use crate::hashing::regions::Rect;

    #[test]
    fn keypoint_ids_keep_entry_scale_and_position() {
        let p = Keypoint {
            x: 200,
            y: 17,
            scale: 2,
            descriptor: Bits([u64::MAX]),
        };
        let id = KeypointId::new(123_456, &p).expect("fits");
        assert_eq!(id.entry(), 123_456);
        assert_eq!(KeypointId::entry_of_group(id.group()), 123_456);
        let back = id.point();
        assert_eq!((back.x, back.y, back.scale), (200, 17, 2));
        // Another scale of the same entry is another group.
        let other = KeypointId::new(123_456, &Keypoint { scale: 1, ..p }).expect("fits");
        assert_ne!(other.group(), id.group());
        assert!(KeypointId::new(1 << 46, &p).is_none());
        assert!(KeypointId::new(1, &Keypoint { scale: 4, ..p }).is_none());
    }

    /// Text and periodic patterns: every upload point pairs with every look-alike banked point,
    /// and only the few pairs of one shift agree. Enough points agree to reach `MIN_VOTES`, but
    /// not a fair share of the pairs, so it is no match; the same points paired one to one are.
    #[test]
    fn a_vote_drowned_in_look_alike_pairs_is_no_match() {
        // 12 points spread over a 120x120 upload (a row of glyphs on each of three lines).
        let points: Vec<Keypoint> = (0..12u8)
            .map(|i| Keypoint {
                x: 10 + (i % 4) * 33,
                y: 10 + (i / 4) * 50,
                scale: 0,
                descriptor: Bits([0]),
            })
            .collect();
        let upload = UploadKeypoints {
            width: 120,
            height: 120,
            points: points.clone(),
            mirrored: false,
        };
        // One to one: each point meets its own banked point, shifted by (4, 3).
        let own: Vec<PointPair> = (0..12u16)
            .map(|i| PointPair {
                query: i,
                dx: 4,
                dy: 3,
            })
            .collect();
        let v = best_vote(&own, &upload);
        assert_eq!(v, 12);
        assert!(is_match(v, own.len()));
        // Every point meets every banked look-alike (12 x 12 pairs): the true shift still gathers
        // 12 points, among 144 pairs.
        let mut all = Vec::new();
        for (qi, q) in points.iter().enumerate() {
            for b in &points {
                all.push(PointPair::new(
                    qi,
                    q,
                    &Keypoint {
                        x: b.x + 4,
                        y: b.y + 3,
                        ..*b
                    },
                ));
            }
        }
        let v = best_vote(&all, &upload);
        assert!(v >= MIN_VOTES, "{v}");
        assert!(!is_match(v, all.len()), "{v} of {} pairs", all.len());
        // And too few points is no match however clean the pairs.
        assert!(!is_match(MIN_VOTES - 1, (MIN_VOTES - 1) as usize));
    }

    /// The vote of an upload against the banked points of one scale only, before the
    /// inlier-ratio rule, and the number of descriptor pairs it was drawn from.
    fn votes_at(bank: &[Keypoint], scale: u8, upload: &UploadKeypoints) -> (u32, usize) {
        let mut pairs = Vec::new();
        for (qi, q) in upload.points.iter().enumerate() {
            for b in bank.iter().filter(|b| b.scale == scale) {
                if q.descriptor.distance(&b.descriptor) <= DESCRIPTOR_RADIUS {
                    pairs.push(PointPair::new(qi, q, b));
                }
            }
        }
        (best_vote(&pairs, upload), pairs.len())
    }

    #[test]
    fn votes_count_distinct_upload_points_on_one_displacement() {
        let pair = |query, dx, dy| PointPair { query, dx, dy };
        // Points 0..5 at the corners and centre of a 100x100 upload.
        let at = |x, y| Keypoint {
            x,
            y,
            scale: 0,
            descriptor: Bits([0]),
        };
        let upload = UploadKeypoints {
            width: 100,
            height: 100,
            points: vec![at(5, 5), at(95, 5), at(5, 95), at(95, 95), at(50, 50)],
            mirrored: false,
        };
        // Four points agree on (10, 5) within 2 pixels; point 1 is paired twice; one stray pair.
        let pairs = [
            pair(0, 10, 5),
            pair(1, 11, 6),
            pair(1, 9, 4),
            pair(2, 12, 5),
            pair(3, 10, 3),
            pair(4, -40, 7),
        ];
        assert_eq!(agreeing_points(&pairs, &upload), 4);
        assert_eq!(agreeing_points(&[], &upload), 0);
        // One point, or points along one edge, do not spread over the upload.
        assert_eq!(agreeing_points(&pairs[5..], &upload), 0);
        assert_eq!(agreeing_points(&[pair(0, 0, 0), pair(1, 0, 0)], &upload), 0);
        // Three pixels off is another displacement.
        assert_eq!(
            agreeing_points(&[pair(0, 0, 0), pair(3, 3, 0), pair(4, 0, 0)], &upload),
            0
        );
        assert_eq!(agreeing_points(&[pair(0, 0, 0), pair(3, 0, 0)], &upload), 2);
        assert_eq!(votes_distance(12), 52);
        assert_eq!(votes_distance(100), 0);
    }

    #[test]
    fn a_turned_copy_agrees_once_its_points_are_turned_back() {
        // 36 points on a grid over a 192x144 upload; the banked picture's points are the same
        // turned 5 degrees about the centre and shifted by (3, 4).
        let mut points = Vec::new();
        for j in 0..6u8 {
            for i in 0..6u8 {
                points.push(Keypoint {
                    x: 16 + i * 32,
                    y: 12 + j * 24,
                    scale: 0,
                    descriptor: Bits([0]),
                });
            }
        }
        let upload = UploadKeypoints {
            width: 192,
            height: 144,
            points,
            mirrored: false,
        };
        let (sin, cos) = 5f32.to_radians().sin_cos();
        let pairs: Vec<PointPair> = upload
            .points
            .iter()
            .enumerate()
            .map(|(k, q)| {
                let (ux, uy) = (f32::from(q.x) - 96.0, f32::from(q.y) - 72.0);
                let bx = cos * ux - sin * uy + 96.0 + 3.0;
                let by = sin * ux + cos * uy + 72.0 + 4.0;
                PointPair {
                    query: k as u16,
                    dx: (bx - f32::from(q.x)).round() as i16,
                    dy: (by - f32::from(q.y)).round() as i16,
                }
            })
            .collect();
        let upright = agreeing_points(&pairs, &upload);
        assert!(upright < MIN_VOTES, "{upright}");
        assert_eq!(best_vote(&pairs, &upload), 36);

        // Under a floor one below the group's least match, a match reads the same...
        let frames = VoteFrames::new(&upload);
        assert_eq!(least_votes(pairs.len()), MIN_VOTES);
        assert_eq!(distinct_upload_points(&pairs), 36);
        assert_eq!(best_vote_over(&pairs, &upload, &frames, MIN_VOTES - 1), 36);
        // ... and a group drowned in stray pairs (each point also paired five times elsewhere,
        // on displacements no two share) is no match: the vote stops at the floor.
        let mut drowned = pairs.clone();
        for (k, p) in pairs.iter().enumerate() {
            for j in 1..=5i16 {
                drowned.push(PointPair {
                    query: p.query,
                    dx: -100 + 7 * (k as i16) + j,
                    dy: 90 - 11 * j - 3 * (k as i16),
                });
            }
        }
        let least = least_votes(drowned.len());
        assert_eq!(least, 44);
        assert_eq!(best_vote(&drowned, &upload), 36);
        assert!(!is_match(36, drowned.len()));
        assert_eq!(
            best_vote_over(&drowned, &upload, &frames, least - 1),
            least - 1
        );
        assert_eq!(distinct_upload_points(&drowned), 36);
    }

    #[test]
    fn an_off_centre_crop_meets_its_picture_at_the_right_scale() {
        let picture = scene(640, 480);
        let bank = bank_keypoints(&picture);
        assert!(bank.len() >= MIN_KEYPOINTS, "{} points", bank.len());
        // 75% of each side, off the top-left: the upload shows the content 1/0.75 larger.
        let cropped = crop(
            &picture,
            Rect {
                x: 160,
                y: 24,
                width: 480,
                height: 360,
            },
        );
        let query = query_keypoints(&cropped).expect("points");
        let (by_scale, pairs): (Vec<u32>, Vec<usize>) = (0..BANK_SCALES.len() as u8)
            .map(|s| votes_at(&bank, s, &query))
            .unzip();
        // The banked picture enlarged by 1/0.77 meets it best. (The other enlargements are of
        // the same picture, and on this scene, which repeats one kind of blob, the zoomed votes
        // gather 9 and 11 points there: more than the 2 to 3 any unrelated pair of real
        // pictures gathers on `vigie eval`, fewer than the right scale.)
        assert!(by_scale[2] >= MIN_VOTES, "votes by scale {by_scale:?}");
        assert!(
            by_scale[..2].iter().all(|&v| v < by_scale[2]),
            "votes by scale {by_scale:?}"
        );
        // `votes` is the best scale whose vote is a match: this scene repeats one kind of blob,
        // so many of its pairs are look-alikes, and the inlier-ratio rule judges each scale.
        let matching = (0..BANK_SCALES.len())
            .filter(|&s| is_match(by_scale[s], pairs[s]))
            .map(|s| by_scale[s])
            .max()
            .unwrap_or(0);
        assert_eq!(votes(&bank, &query), matching, "pairs by scale {pairs:?}");
    }

    #[test]
    fn an_unrelated_picture_does_not_gather_votes() {
        let bank = bank_keypoints(&scene(640, 480));
        // Another arrangement of blobs: the same kind of corners, other places.
        let other = {
            let base = scene(480, 640);
            LumaPlane::new(480, 640, base.data.iter().rev().copied().collect())
        };
        let upload = query_keypoints(&other).expect("points");
        let v = votes(&bank, &upload);
        assert!(v < MIN_VOTES, "{v} votes");
    }

    #[test]
    fn banked_points_pair_as_a_lookup_at_the_descriptor_radius_would() {
        let picture = crate::hashing::keypoints::test_scenes::scene(640, 480);
        let bank = bank_keypoints(&picture);
        assert!(bank.len() >= MIN_KEYPOINTS);
        let held = BankedPoints::new(&bank);
        assert_eq!(held.len(), bank.len());
        assert_eq!(held.heap_bytes(), bank.len() * 10);
        // Every point comes back, grouped by scale, each scale in its banked order.
        let mut by_scale = bank.clone();
        by_scale.sort_by_key(|p| p.scale);
        assert_eq!(held.points(), by_scale);
        let upload = query_keypoints(&crop(
            &picture,
            Rect {
                x: 100,
                y: 40,
                width: 500,
                height: 400,
            },
        ))
        .expect("points");
        let mut any = 0;
        for scale in 0..BANK_SCALES.len() as u8 {
            let mut pairs = Vec::new();
            held.pairs_with(scale, &upload, &mut pairs);
            let mut brute = Vec::new();
            for (qi, q) in upload.points.iter().enumerate() {
                for b in bank.iter().filter(|b| b.scale == scale) {
                    if q.descriptor.distance(&b.descriptor) <= DESCRIPTOR_RADIUS {
                        brute.push(PointPair::new(qi, q, b));
                    }
                }
            }
            let key = |p: &PointPair| (p.query, p.dx, p.dy);
            pairs.sort_by_key(key);
            brute.sort_by_key(key);
            assert_eq!(pairs, brute, "scale {scale}");
            any += pairs.len();
        }
        assert!(any > 0);
        // A scale not held pairs nothing; nor does an empty set.
        let mut none = Vec::new();
        held.pairs_with(BANK_SCALES.len() as u8, &upload, &mut none);
        BankedPoints::default().pairs_with(0, &upload, &mut none);
        assert!(none.is_empty());
        assert!(BankedPoints::default().is_empty());
    }
}

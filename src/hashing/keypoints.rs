//! Local features: corner points of a picture, each with a 64-bit hash of the patch around it, so
//! that a crop of a banked picture (off-centre, off one side, then scaled) still meets its entry
//! when no global hash and no banked window can.
//!
//! Why: a global hash (PDQ, pHash, dHash) summarises the whole frame, so a crop that moves the
//! frame's edges by 2% of a side already moves PDQ by 30 bits, and the banked centred windows only
//! cover crops that keep the picture centred. The content that survives a crop is the same,
//! though: the corners of the objects in it, at the same spacing from each other. This is the
//! classic local-feature scheme (Harris and Stephens, "A combined corner and edge detector",
//! Alvey Vision Conference 1988, for the points; a binary patch descriptor in the spirit of BRIEF,
//! Calonder et al., ECCV 2010; a match confirmed by many points agreeing on one displacement,
//! i.e. Hough voting as in Lowe, IJCV 2004, section 7), kept as small and cheap as the screen's
//! budget allows:
//!
//! - **Scale**: the picture is resampled so that its longer side is [`BANK_LONG_SIDE`] pixels. A
//!   crop keeping a fraction `c` of the longer side shows the banked content `1/c` larger at that
//!   size, so a banked picture is also resampled to `BANK_LONG_SIDE / c` for each `c` in
//!   [`BANK_SCALES`] and its points found and described there: each enlargement meets crops
//!   within about 6% of its `c` (the vote's zooms, [`VOTE_ZOOMS`], close the rest of the gap
//!   between two scales). The upload is described at its own size only. Describing the upload at
//!   each `c` instead found the same matches for three times the lookups; a descriptor misses
//!   crops 7% off its scale.
//! - **Points**: Harris corners of the lightly blurred picture (3x3 box), structure tensor summed
//!   over 5x5, local maxima over 7x7, far enough from the edge for a whole patch; of the
//!   strongest, those whose patch is textured (see [`MIN_TRANSITIONS`]), at most
//!   [`MAX_KEYPOINTS`] shared over a grid of the picture (see `spread_out`).
//! - **Descriptor**: the [`PATCH`]-pixel square around the point as 8x8 cells of 3x3 pixels; bit
//!   `k` is set when cell `k` is brighter than the median cell (so half the bits are set, and
//!   brightness and contrast changes do not move it). No orientation: uploads turned 90 or 180
//!   degrees are caught by the global hashes, and a few degrees of tilt move a 3-pixel cell
//!   grid little.
//!
//! Matching (in `crate::matcher`): each upload descriptor finds banked descriptors within
//! [`DESCRIPTOR_RADIUS`] bits; the pairs of one entry and banked scale vote for the displacement
//! between the two points (also with the upload turned back a few degrees and zoomed a little, see
//! [`VOTE_TURNS_DEGREES`] and [`VOTE_ZOOMS`]), and a match needs [`MIN_VOTES`] distinct upload
//! points agreeing on one displacement within [`VOTE_TOLERANCE`] pixels and spread over the upload
//! ([`MIN_SPREAD`]). Measured on `vigie eval` (README): of 453,000 unrelated (upload, entry)
//! pairs, none had more than 3 such points.

use super::pdq::LumaPlane;
use super::regions::{self, Rect};
use crate::bits::{Bits, Hash64};

/// The longer side, in pixels, a picture is resampled to before its points are found.
pub const BANK_LONG_SIDE: usize = 192;

/// The fractions of the longer side a crop is assumed to have kept: a banked picture is described
/// enlarged by the inverse of each (see the module documentation). Index 0 is the picture as it is.
pub const BANK_SCALES: [f32; 3] = [1.0, 0.88, 0.77];
// Positions are stored as `u8`: the most enlarged picture must stay under 256 pixels a side.
const _: () = assert!(BANK_LONG_SIDE * 100 / 77 < 256);

/// At most this many points a picture (at each of [`BANK_SCALES`] for a banked one).
pub const MAX_KEYPOINTS: usize = 64;
/// At most this many points a banked picture holds over all its scales.
pub const MAX_BANK_KEYPOINTS: usize = MAX_KEYPOINTS * BANK_SCALES.len();

/// Corners described before the textured ones are kept: twice the points kept.
const CANDIDATE_CORNERS: usize = 2 * MAX_KEYPOINTS;

/// A descriptor must change this often between neighbouring cells (of 112 neighbour pairs) for its
/// point to be kept. The plain corner of a bright shape (a quadrant of bright cells) is the most
/// common patch of all: on `vigie eval`'s corpus, an upload's 64 points met 3735 banked points
/// within the descriptor radius from 81 unrelated pictures; keeping only points whose cells change
/// at least 14 times, 457 (18 times: 42, but crops lost 10 to 20 points of recall). Lowe's
/// distinctiveness argument (IJCV 2004, section 7.1) by a cheaper test, one that needs no other
/// descriptor.
pub const MIN_TRANSITIONS: u32 = 14;

/// How many neighbouring cells (along rows and columns) differ in a descriptor.
pub fn transitions(descriptor: &Hash64) -> u32 {
    let b = descriptor.0[0];
    // Bit k is cell (k % 8, k / 8): a row neighbour is one bit up (not across a row's end), a
    // column neighbour eight bits up.
    ((b ^ (b >> 1)) & 0x7F7F_7F7F_7F7F_7F7F).count_ones()
        + ((b ^ (b >> 8)) & 0x00FF_FFFF_FFFF_FFFF).count_ones()
}

/// The textured points among `corners` (strongest first), described on `picture`: at most
/// [`MAX_KEYPOINTS`].
fn textured_points(picture: &LumaPlane, corners: &[(usize, usize)]) -> Vec<Keypoint> {
    // Each cell's mean is the 3x3 box mean at its centre: one read a cell.
    let cell_means = box_blur(picture, CELL / 2);
    let textured: Vec<Keypoint> = corners
        .iter()
        .filter_map(|&(x, y)| describe(&cell_means, x, y))
        .filter(|p| transitions(&p.descriptor) >= MIN_TRANSITIONS)
        .collect();
    spread_out(textured, picture.width, picture.height)
}

/// Side of the grid [`spread_out`] shares the points over.
const SPREAD_GRID: usize = 4;

/// At most [`MAX_KEYPOINTS`] of `points` (strongest first), shared over a 4x4 grid of the
/// picture: first up to an equal share from each cell, strongest first within it, then the
/// strongest of the rest. The strongest alone crowd into the busiest part of a picture, and a crop
/// that keeps another part then meets few of them (adaptive selection in the spirit of Brown,
/// Szeliski and Winder, "Multi-image matching using multi-scale oriented patches", CVPR 2005).
fn spread_out(points: Vec<Keypoint>, width: usize, height: usize) -> Vec<Keypoint> {
    if points.len() <= MAX_KEYPOINTS {
        return points;
    }
    let share = MAX_KEYPOINTS / (SPREAD_GRID * SPREAD_GRID);
    let cell = |p: &Keypoint| {
        let cx = usize::from(p.x) * SPREAD_GRID / width.max(1);
        let cy = usize::from(p.y) * SPREAD_GRID / height.max(1);
        cy.min(SPREAD_GRID - 1) * SPREAD_GRID + cx.min(SPREAD_GRID - 1)
    };
    let mut taken = [0usize; SPREAD_GRID * SPREAD_GRID];
    let mut chosen = vec![false; points.len()];
    let mut count = 0;
    for (i, p) in points.iter().enumerate() {
        let c = cell(p);
        if taken[c] < share {
            taken[c] += 1;
            chosen[i] = true;
            count += 1;
        }
    }
    for c in chosen.iter_mut() {
        if count >= MAX_KEYPOINTS {
            break;
        }
        if !*c {
            *c = true;
            count += 1;
        }
    }
    points
        .into_iter()
        .zip(chosen)
        .filter_map(|(p, c)| c.then_some(p))
        .collect()
}

/// Fewer points than this and the picture is too featureless to be matched by its points.
pub const MIN_KEYPOINTS: usize = 16;

/// Side of the square patch a descriptor summarises.
pub const PATCH: usize = 24;
const CELL: usize = PATCH / 8;
/// A point must be this far from every edge for its whole patch to fit.
const MARGIN: usize = PATCH / 2 + 1;
const NMS_RADIUS: usize = 3;
/// Harris's sensitivity constant (the value of his paper and of most implementations).
const HARRIS_K: f32 = 0.04;

/// Two descriptors of the same patch are within this many bits (of 64). At 8 (before the texture
/// rule), `vigie eval` found 0.2 points more of recall for twice the lookup time.
pub const DESCRIPTOR_RADIUS: u32 = 7;
/// Points of one entry must agree on their displacement within this many pixels (at
/// [`BANK_LONG_SIDE`] scale).
pub const VOTE_TOLERANCE: i32 = 2;
/// Distinct upload points agreeing on one displacement (and spread over the upload) that make a
/// match: four times the most any unrelated pair reached on `vigie eval`.
pub const MIN_VOTES: u32 = 8;
/// The agreeing upload points must spread over at least this fraction of the upload's width and
/// of its height. A crop of a banked picture agrees all over; two different pictures that share
/// one object (a mascot, a logo, a watermark) agree only where that object is: on `vigie eval`
/// the corpus's Tux drawings matched each other by 20 to 29 points without this.
pub const MIN_SPREAD: f32 = 0.6;

/// One point: its position on the resampled picture and the hash of the patch around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keypoint {
    pub x: u8,
    pub y: u8,
    /// For a banked point, the index in [`BANK_SCALES`] of the enlargement it was described at
    /// (its position is on that enlargement); 0 for an upload's.
    pub scale: u8,
    pub descriptor: Hash64,
}

/// An upload's points.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadKeypoints {
    /// Size of the resampled upload the positions are in.
    pub width: u16,
    pub height: u16,
    pub points: Vec<Keypoint>,
}

/// One descriptor pair found between an upload point and a banked point: the upload point's index
/// and the displacement from it to the banked point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointPair {
    pub query: u16,
    pub dx: i16,
    pub dy: i16,
}

impl PointPair {
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

/// The best [`agreeing_points`] over the turns of [`VOTE_TURNS_DEGREES`] and the zooms of
/// [`VOTE_ZOOMS`].
pub fn best_vote(pairs: &[PointPair], upload: &UploadKeypoints) -> u32 {
    let (cx, cy) = (
        f32::from(upload.width) / 2.0,
        f32::from(upload.height) / 2.0,
    );
    let mut best = 0;
    let mut turned = Vec::with_capacity(pairs.len());
    for degrees in VOTE_TURNS_DEGREES {
        for zoom in VOTE_ZOOMS {
            if degrees == 0.0 && zoom == 1.0 {
                best = agreeing_points_over(pairs, upload, best);
                continue;
            }
            let (sin, cos) = degrees.to_radians().sin_cos();
            let (sin, cos) = (sin * zoom, cos * zoom);
            turned.clear();
            for p in pairs {
                let Some(q) = upload.points.get(usize::from(p.query)) else {
                    continue;
                };
                let (qx, qy) = (f32::from(q.x), f32::from(q.y));
                let (bx, by) = (qx + f32::from(p.dx), qy + f32::from(p.dy));
                let (ux, uy) = (qx - cx, qy - cy);
                let (rx, ry) = (cos * ux - sin * uy + cx, sin * ux + cos * uy + cy);
                turned.push(PointPair {
                    query: p.query,
                    // Positions are under 256 and zooms near 1, so the displacements fit.
                    dx: (bx - rx).round() as i16,
                    dy: (by - ry).round() as i16,
                });
            }
            best = agreeing_points_over(&turned, upload, best);
        }
    }
    best
}

/// Votes of an upload for a banked picture, by brute force over every descriptor pair: the best
/// over the banked scales. (The matcher finds the pairs through its index; `vigie eval` uses this
/// to measure every pair of pictures.)
pub fn votes(bank: &[Keypoint], upload: &UploadKeypoints) -> u32 {
    let mut pairs = Vec::new();
    let mut best = 0;
    for scale in 0..BANK_SCALES.len() {
        pairs.clear();
        for (qi, q) in upload.points.iter().enumerate() {
            for b in bank.iter().filter(|b| usize::from(b.scale) == scale) {
                if q.descriptor.distance(&b.descriptor) <= DESCRIPTOR_RADIUS {
                    pairs.push(PointPair::new(qi, q, b));
                }
            }
        }
        if pairs.len() as u32 > best {
            best = best.max(best_vote(&pairs, upload));
        }
    }
    best
}

/// Votes as a distance, so that keypoint matches read a calibration table like the hashes do:
/// the points out of [`MAX_KEYPOINTS`] that did not agree (0 is the best).
pub fn votes_distance(votes: u32) -> u32 {
    (MAX_KEYPOINTS as u32).saturating_sub(votes)
}

/// The points of a banked picture at each of [`BANK_SCALES`] (empty when it has fewer than
/// [`MIN_KEYPOINTS`]).
pub fn bank_keypoints(plane: &LumaPlane) -> Vec<Keypoint> {
    // One pass over the full plane; every scale resamples the reduced copy.
    let plane = &*reduced(plane);
    let mut out = Vec::with_capacity(MAX_BANK_KEYPOINTS);
    for (index, scale) in BANK_SCALES.iter().enumerate() {
        // Points are found on each enlargement itself: Harris's fixed 5x5 window finds other
        // corners on a picture 1.3 times larger, and the upload's are found at its own size.
        let side = (BANK_LONG_SIDE as f32 / scale).round() as usize;
        let Some(resampled) = resample_long_side(plane, side) else {
            continue;
        };
        let blurred = box_blur(&resampled, 1);
        let points = textured_points(&blurred, &corners(&blurred));
        if index == 0 && points.len() < MIN_KEYPOINTS {
            return Vec::new();
        }
        out.extend(points.into_iter().map(|mut p| {
            p.scale = index as u8;
            p
        }));
    }
    out
}

/// The points of an upload (`None` when it has fewer than [`MIN_KEYPOINTS`]).
pub fn query_keypoints(plane: &LumaPlane) -> Option<UploadKeypoints> {
    let small = resample_long_side(&reduced(plane), BANK_LONG_SIDE)?;
    let blurred = box_blur(&small, 1);
    let points = textured_points(&blurred, &corners(&blurred));
    (points.len() >= MIN_KEYPOINTS).then(|| UploadKeypoints {
        // At most BANK_LONG_SIDE (192) a side.
        width: u16::try_from(blurred.width).unwrap_or(u16::MAX),
        height: u16::try_from(blurred.height).unwrap_or(u16::MAX),
        points,
    })
}

/// The plane box-averaged by an integer factor to a longer side of at most twice
/// [`BANK_LONG_SIDE`] (borrowed when it already is): what every resampling starts from, so a
/// large picture is read once.
fn reduced(plane: &LumaPlane) -> std::borrow::Cow<'_, LumaPlane> {
    if plane.width.max(plane.height) > 2 * BANK_LONG_SIDE {
        std::borrow::Cow::Owned(regions::shrink(
            plane,
            Rect::full(plane),
            2 * BANK_LONG_SIDE,
        ))
    } else {
        std::borrow::Cow::Borrowed(plane)
    }
}

/// The plane resampled so that its longer side is `long` pixels: box-averaged by an integer factor
/// down to at most twice that, then bilinear. `None` when the result would be too small to hold
/// one patch.
fn resample_long_side(plane: &LumaPlane, long: usize) -> Option<LumaPlane> {
    let (pw, ph) = (plane.width, plane.height);
    if pw == 0 || ph == 0 || long == 0 {
        return None;
    }
    let scale = long as f32 / pw.max(ph) as f32;
    let tw = ((pw as f32 * scale).round() as usize).max(1);
    let th = ((ph as f32 * scale).round() as usize).max(1);
    if tw <= 2 * MARGIN || th <= 2 * MARGIN {
        return None;
    }
    let shrunk;
    let src = if pw.max(ph) > 2 * long {
        shrunk = regions::shrink(plane, Rect::full(plane), 2 * long);
        &shrunk
    } else {
        plane
    };
    // Separable bilinear: each output column (row) reads two source columns (rows) with fixed
    // weights, computed once.
    let taps = |out: usize, source: usize| -> Vec<(usize, usize, f32)> {
        let f = source as f32 / out as f32;
        (0..out)
            .map(|i| {
                let at = ((i as f32 + 0.5) * f - 0.5).clamp(0.0, (source - 1) as f32);
                // `at` >= 0, so truncation is the floor.
                let i0 = at as usize;
                (i0, (i0 + 1).min(source - 1), at - i0 as f32)
            })
            .collect()
    };
    let (xt, yt) = (taps(tw, src.width), taps(th, src.height));
    let mut rows = Vec::with_capacity(tw * src.height);
    for row in src.data.chunks(src.width) {
        rows.extend(xt.iter().map(|&(a, b, f)| row[a] * (1.0 - f) + row[b] * f));
    }
    let mut data = Vec::with_capacity(tw * th);
    for &(a, b, f) in &yt {
        let (ra, rb) = (&rows[a * tw..(a + 1) * tw], &rows[b * tw..(b + 1) * tw]);
        data.extend(ra.iter().zip(rb).map(|(p, q)| p * (1.0 - f) + q * f));
    }
    Some(LumaPlane::new(tw, th, data))
}

/// Mean over the `(2r+1)^2` box around each pixel (fewer pixels at the edges), separable with
/// running sums.
fn box_blur(plane: &LumaPlane, r: usize) -> LumaPlane {
    let (w, h) = (plane.width, plane.height);
    let mut rows = vec![0f32; w * h];
    let inner = w.saturating_sub(2 * r);
    let inv = 1.0 / (2 * r + 1) as f32;
    for y in 0..h {
        let src = &plane.data[y * w..(y + 1) * w];
        let dst = &mut rows[y * w..(y + 1) * w];
        // Inside, a whole box: 2r+1 shifted slices added, which vectorises (a running sum is
        // one long chain of dependent additions, and this pass was half of finding the points).
        if inner > 0 {
            let out = &mut dst[r..r + inner];
            let shifted = |k: usize| &src[k..k + inner];
            // The two radii this module uses, summed in registers in one pass (the same order
            // of additions as the general loop, so the same values).
            match r {
                1 => {
                    let (a, b, c) = (shifted(0), shifted(1), shifted(2));
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = (a[i] + b[i] + c[i]) * inv;
                    }
                }
                2 => {
                    let (a, b, c, d, e) =
                        (shifted(0), shifted(1), shifted(2), shifted(3), shifted(4));
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = (a[i] + b[i] + c[i] + d[i] + e[i]) * inv;
                    }
                }
                _ => {
                    for k in 0..=2 * r {
                        for (o, v) in out.iter_mut().zip(shifted(k)) {
                            *o += v;
                        }
                    }
                    for o in out.iter_mut() {
                        *o *= inv;
                    }
                }
            }
        }
        // At the edges, what the box has.
        for x in (0..r.min(w)).chain(r.max(w.saturating_sub(r))..w) {
            let (lo, hi) = (x.saturating_sub(r), (x + r).min(w - 1));
            dst[x] = src[lo..=hi].iter().sum::<f32>() / (hi - lo + 1) as f32;
        }
    }
    let mut out = vec![0f32; w * h];
    let mut acc = vec![0f32; w];
    for row in rows.chunks(w).take(r + 1) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    for y in 0..h {
        let lo = y.saturating_sub(r);
        let hi = (y + r).min(h - 1);
        let n = (hi - lo + 1) as f32;
        for (o, a) in out[y * w..(y + 1) * w].iter_mut().zip(&acc) {
            *o = a / n;
        }
        if y + r + 1 < h {
            let add = &rows[(y + r + 1) * w..(y + r + 2) * w];
            for (a, v) in acc.iter_mut().zip(add) {
                *a += v;
            }
        }
        if y >= r {
            let sub = &rows[(y - r) * w..(y - r + 1) * w];
            for (a, v) in acc.iter_mut().zip(sub) {
                *a -= v;
            }
        }
    }
    LumaPlane::new(w, h, out)
}

/// Harris corners of a (blurred) plane: the strongest local maxima of the corner response, at most
/// [`MAX_KEYPOINTS`], each at least [`MARGIN`] from every edge.
fn corners(b: &LumaPlane) -> Vec<(usize, usize)> {
    let (w, h) = (b.width, b.height);
    if w <= 2 * MARGIN || h <= 2 * MARGIN {
        return Vec::new();
    }
    let mut xx = vec![0f32; w * h];
    let mut yy = vec![0f32; w * h];
    let mut xy = vec![0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let ix = b.data[i + 1] - b.data[i - 1];
            let iy = b.data[i + w] - b.data[i - w];
            xx[i] = ix * ix;
            yy[i] = iy * iy;
            xy[i] = ix * iy;
        }
    }
    let sxx = box_blur(&LumaPlane::new(w, h, xx), 2).data;
    let syy = box_blur(&LumaPlane::new(w, h, yy), 2).data;
    let sxy = box_blur(&LumaPlane::new(w, h, xy), 2).data;
    let response: Vec<f32> = sxx
        .iter()
        .zip(&syy)
        .zip(&sxy)
        .map(|((a, c), b)| a * c - b * b - HARRIS_K * (a + c) * (a + c))
        .collect();
    // A local maximum over the (2r+1)^2 box: most pixels fail against a direct neighbour, so
    // the full box is only read for the few that pass.
    let is_peak = |x: usize, y: usize, r: f32| {
        let (x0, x1) = (x.saturating_sub(NMS_RADIUS), (x + NMS_RADIUS).min(w - 1));
        let (y0, y1) = (y.saturating_sub(NMS_RADIUS), (y + NMS_RADIUS).min(h - 1));
        (y0..=y1).all(|yy| response[yy * w + x0..=yy * w + x1].iter().all(|&v| v <= r))
    };
    let mut found: Vec<(f32, usize, usize)> = Vec::new();
    // The four-neighbour test first, for a whole row at once without branches (it vectorises;
    // as a branch per pixel, mispredicted on textured rows, it was most of this function).
    let inner = MARGIN..w - MARGIN;
    let mut passes = vec![false; inner.len()];
    for y in MARGIN..h - MARGIN {
        let at = |dy: isize, dx: isize| {
            let row = (y as isize + dy) as usize * w;
            let start = (row + inner.start) as isize + dx;
            &response[start as usize..start as usize + inner.len()]
        };
        let (centre, left, right, up, down) = (at(0, 0), at(0, -1), at(0, 1), at(-1, 0), at(1, 0));
        for (k, pass) in passes.iter_mut().enumerate() {
            let r = centre[k];
            *pass = (r > 0.0) & (r >= left[k]) & (r >= right[k]) & (r >= up[k]) & (r >= down[k]);
        }
        for (k, _) in passes.iter().enumerate().filter(|(_, p)| **p) {
            let x = inner.start + k;
            let r = centre[k];
            if is_peak(x, y, r) {
                found.push((r, x, y));
            }
        }
    }
    // Strongest first; ties by position so the order never depends on the sort.
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.2, a.1).cmp(&(b.2, b.1))));
    found.truncate(CANDIDATE_CORNERS);
    found.into_iter().map(|(_, x, y)| (x, y)).collect()
}

/// The descriptor of the patch centred on `(x, y)`, or `None` when the patch does not fit.
/// The descriptor of the patch centred on `(x, y)`, from the picture's 3x3 box means
/// (`cell_means`), or `None` when the patch does not fit.
fn describe(cell_means: &LumaPlane, x: usize, y: usize) -> Option<Keypoint> {
    let half = PATCH / 2;
    if x < half || y < half || x + half > cell_means.width || y + half > cell_means.height {
        return None;
    }
    let (x0, y0) = (x - half + CELL / 2, y - half + CELL / 2);
    let mut cells = [0f32; 64];
    for (k, cell) in cells.iter_mut().enumerate() {
        *cell = cell_means.at(x0 + (k % 8) * CELL, y0 + (k / 8) * CELL);
    }
    // The median of 64: the mean of the 32nd and 33rd values.
    let mut order = cells;
    let (lower, upper_first, _) = order.select_nth_unstable_by(32, f32::total_cmp);
    let below = lower.iter().copied().fold(f32::MIN, f32::max);
    let median = (below + *upper_first) / 2.0;
    let mut bits = 0u64;
    for (k, v) in cells.iter().enumerate() {
        if *v > median {
            bits |= 1 << k;
        }
    }
    Some(Keypoint {
        x: u8::try_from(x).ok()?,
        y: u8::try_from(y).ok()?,
        scale: 0,
        descriptor: Bits([bits]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blobs of different sizes and brightness on a gradient: plenty of corners.
    fn scene(w: usize, h: usize) -> LumaPlane {
        let mut data = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut v = (x * 60 / w + y * 40 / h) as f32;
                for k in 0..40usize {
                    let (bx, by) = ((k * 97 % w), (k * 61 % h));
                    let s = 6 + k % 17;
                    if x >= bx && x < bx + s && y >= by && y < by + s * 2 / 3 {
                        v += (40 + (k * 53) % 170) as f32;
                    }
                }
                data[y * w + x] = v.min(255.0);
            }
        }
        LumaPlane::new(w, h, data)
    }

    fn crop(plane: &LumaPlane, r: Rect) -> LumaPlane {
        regions::crop_plane(plane, r)
    }

    /// Votes of an upload against the banked points of one scale only.
    fn votes_at(bank: &[Keypoint], scale: u8, upload: &UploadKeypoints) -> u32 {
        let at: Vec<Keypoint> = bank.iter().filter(|p| p.scale == scale).copied().collect();
        votes(&at, upload)
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
        let by_scale: Vec<u32> = (0..BANK_SCALES.len() as u8)
            .map(|s| votes_at(&bank, s, &query))
            .collect();
        // The banked picture enlarged by 1/0.77 meets it best. (The other enlargements are of
        // the same picture, and on this scene, which repeats one kind of blob, the zoomed votes
        // gather 9 and 11 points there: more than the 2 to 3 any unrelated pair of real
        // pictures gathers on `vigie eval`, fewer than the right scale.)
        assert!(by_scale[2] >= MIN_VOTES, "votes by scale {by_scale:?}");
        assert!(
            by_scale[..2].iter().all(|&v| v < by_scale[2]),
            "votes by scale {by_scale:?}"
        );
        assert_eq!(
            votes(&bank, &query),
            by_scale.iter().copied().max().unwrap_or(0)
        );
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
    fn flat_and_tiny_pictures_have_no_points_and_never_panic() {
        let flat = LumaPlane::new(300, 200, vec![128.0; 300 * 200]);
        assert!(bank_keypoints(&flat).is_empty());
        assert!(query_keypoints(&flat).is_none());
        for (w, h) in [(0, 0), (1, 1), (1, 500), (500, 1), (27, 27), (2000, 30)] {
            let p = LumaPlane::new(w, h, vec![7.0; w * h]);
            assert!(bank_keypoints(&p).is_empty());
            assert!(query_keypoints(&p).is_none());
        }
    }

    #[test]
    fn positions_fit_the_resampled_picture_and_descriptors_are_balanced() {
        // A real photo: the synthetic scenes' flat blobs have too few textured corners.
        let photo = image::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bridge.jpg"
        ))
        .expect("fixture")
        .to_luma8();
        let (w, h) = photo.dimensions();
        let picture = LumaPlane::new(
            w as usize,
            h as usize,
            photo.pixels().map(|p| f32::from(p.0[0])).collect(),
        );
        let upload = query_keypoints(&picture).expect("points");
        let long = w.max(h) as f32;
        assert_eq!(
            (upload.width, upload.height),
            (
                (w as f32 * 192.0 / long).round() as u16,
                (h as f32 * 192.0 / long).round() as u16
            )
        );
        assert!(
            upload
                .points
                .iter()
                .all(|p| transitions(&p.descriptor) >= MIN_TRANSITIONS)
        );
        let banked = bank_keypoints(&picture);
        assert!(banked.len() <= MAX_BANK_KEYPOINTS);
        for p in upload.points.iter().chain(&banked) {
            let side = (BANK_LONG_SIDE as f32 / BANK_SCALES[usize::from(p.scale)]).round() as usize;
            assert!(usize::from(p.x) < side, "{p:?}");
            assert!(usize::from(p.y) < side, "{p:?}");
            // Cells above the median: 32, fewer only when cells tie at the median.
            assert!(p.descriptor.count_ones() <= 32);
        }
        // Every scale holds points, each scale at most MAX_KEYPOINTS.
        for scale in 0..BANK_SCALES.len() as u8 {
            let n = banked.iter().filter(|p| p.scale == scale).count();
            assert!((1..=MAX_KEYPOINTS).contains(&n), "scale {scale}: {n}");
        }
    }

    #[test]
    fn transitions_count_neighbouring_cells_that_differ() {
        // The bright top-left quadrant of a plain corner: 4 rows and 4 columns change once.
        let mut quadrant = 0u64;
        for y in 0..4 {
            for x in 0..4 {
                quadrant |= 1 << (y * 8 + x);
            }
        }
        assert_eq!(transitions(&Bits([quadrant])), 8);
        assert_eq!(transitions(&Bits([0])), 0);
        assert_eq!(transitions(&Bits([u64::MAX])), 0);
        // A checkerboard changes everywhere: 7 a row and 7 a column, 8 of each.
        assert_eq!(transitions(&Bits([0xAA55_AA55_AA55_AA55])), 112);
        assert!(transitions(&Bits([quadrant])) < MIN_TRANSITIONS);
    }

    #[test]
    fn box_blur_averages_and_keeps_flat_planes_flat() {
        let flat = LumaPlane::new(9, 7, vec![5.0; 63]);
        assert!(
            box_blur(&flat, 2)
                .data
                .iter()
                .all(|v| (v - 5.0).abs() < 1e-4)
        );
        let mut d = vec![0f32; 25];
        d[12] = 9.0;
        let b = box_blur(&LumaPlane::new(5, 5, d), 1);
        assert!((b.data[12] - 1.0).abs() < 1e-5);
        assert!((b.data[0]).abs() < 1e-6);
        assert!((b.data[6] - 1.0).abs() < 1e-5);
    }
}

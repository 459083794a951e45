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
//!   between two scales). The upload is described at its own size and, for crops keeping less
//!   than 72% of a side, once more at [`LONG_CROP_LEVEL`] of it (see [`query_keypoint_sets`]).
//!   Describing the upload at each `c` instead of the bank found the same matches for three times
//!   the lookups; a descriptor misses crops 7% off its scale.
//! - **Points**: Harris corners of the lightly blurred picture (3x3 box), structure tensor summed
//!   over 5x5, local maxima over 7x7, far enough from the edge for a whole patch; of the
//!   strongest, those whose patch is textured (see [`MIN_TRANSITIONS`]), at most
//!   [`MAX_KEYPOINTS`] shared over a grid of the picture (see `spread_out`).
//! - **Descriptor**: the [`PATCH`]-pixel square around the point as 8x8 cells of 3x3 pixels; bit
//!   `k` is set when cell `k` is brighter than the median cell (so half the bits are set, and
//!   brightness and contrast changes do not move it). No orientation: uploads turned 90 or 180
//!   degrees are caught by the global hashes, and a few degrees of tilt move a 3-pixel cell
//!   grid little. A mirrored upload is also described mirrored (same corners, patches read from
//!   the mirrored picture).
//!
//! Matching is the matcher's job (`crate::matcher::keypoint_vote`): descriptors within a few bits
//! pair up, and the pairs of one entry vote for one displacement (Hough voting).

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

/// One point: its position on the resampled picture and the hash of the patch around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keypoint {
    /// Column of the patch centre, in pixels from the left of the resampled picture (under 256:
    /// the largest enlargement is 249 pixels a side).
    pub x: u8,
    /// Row of the patch centre, in pixels from the top of the resampled picture.
    pub y: u8,
    /// For a banked point, the index in [`BANK_SCALES`] of the enlargement it was described at
    /// (its position is on that enlargement); 0 for an upload's.
    pub scale: u8,
    /// The patch's 64 bits: bit `k` (cell `k % 8` across, `k / 8` down, 3x3 pixels each) is set
    /// when that cell's mean is above the median of the 64 cell means.
    pub descriptor: Hash64,
}

/// An upload's points.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadKeypoints {
    /// Size of the resampled upload the positions are in: width in pixels, at most
    /// [`BANK_LONG_SIDE`].
    pub width: u16,
    /// Height of the resampled upload in pixels, at most [`BANK_LONG_SIDE`].
    pub height: u16,
    /// Between [`MIN_KEYPOINTS`] and [`MAX_KEYPOINTS`] points, `scale` 0, strongest corner first.
    pub points: Vec<Keypoint>,
    /// Whether these are the points of the upload mirrored left to right (the second set of
    /// [`query_keypoint_sets`]): a match through them says the upload is a mirrored copy.
    pub mirrored: bool,
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
    let corners = corners(&blurred);
    upload_points(&blurred, &corners, false)
}

/// The upload's longer side, as a fraction of [`BANK_LONG_SIDE`], at which it is described a
/// second time for crops that keep 56% to 83% of a side. Such a crop shows the banked content
/// `1/c` larger; described at `LONG_CROP_LEVEL * BANK_LONG_SIDE` it shows it `LONG_CROP_LEVEL / c`
/// larger, which is within about 6% of one banked enlargement (`1 / BANK_SCALES`: 1, 1.14, 1.30)
/// for every `c` in that range: 0.78 / 0.6 = 1.30, 0.78 / 0.7 = 1.11, 0.78 / 0.78 = 1. The
/// upload's own size meets the banked enlargements for crops of 72% and more. (One level on the
/// upload side rather than a fourth banked scale: the bank's memory stays as it is, and positions
/// stay under 256 pixels.)
pub const LONG_CROP_LEVEL: f32 = 0.78;

/// Every point set an upload is looked up with (each `None` when it has fewer than
/// [`MIN_KEYPOINTS`]), in this order:
///
/// 1. the upload at [`BANK_LONG_SIDE`] ([`query_keypoints`]);
/// 2. the same, mirrored left to right: the corners are the same pixels (Harris's response is
///    symmetric), only the patches are read from the mirrored picture, so a mirrored copy's points
///    come out as its original's;
/// 3. the upload at [`LONG_CROP_LEVEL`] of that size, for crops keeping 56-83% of a side (see
///    there).
///
/// Positions are on each set's own picture; `width` and `height` say its size.
pub fn query_keypoint_sets(plane: &LumaPlane) -> Vec<UploadKeypoints> {
    let reduced = reduced(plane);
    let mut sets = Vec::with_capacity(3);
    if let Some(small) = resample_long_side(&reduced, BANK_LONG_SIDE) {
        let blurred = box_blur(&small, 1);
        let found = corners(&blurred);
        sets.extend(upload_points(&blurred, &found, false));
        let w = blurred.width;
        let mirrored_corners: Vec<(usize, usize)> =
            found.iter().map(|&(x, y)| (w - 1 - x, y)).collect();
        sets.extend(upload_points(&mirror(&blurred), &mirrored_corners, true));
    }
    let long = (BANK_LONG_SIDE as f32 * LONG_CROP_LEVEL).round() as usize;
    if let Some(small) = resample_long_side(&reduced, long) {
        let blurred = box_blur(&small, 1);
        sets.extend(upload_points(&blurred, &corners(&blurred), false));
    }
    sets
}

/// The textured points of `blurred` at `corners`, as an upload's point set (`None` under
/// [`MIN_KEYPOINTS`]); `mirrored` when `blurred` is the upload mirrored.
fn upload_points(
    blurred: &LumaPlane,
    corners: &[(usize, usize)],
    mirrored: bool,
) -> Option<UploadKeypoints> {
    let points = textured_points(blurred, corners);
    (points.len() >= MIN_KEYPOINTS).then(|| UploadKeypoints {
        // At most BANK_LONG_SIDE (192) a side.
        width: u16::try_from(blurred.width).unwrap_or(u16::MAX),
        height: u16::try_from(blurred.height).unwrap_or(u16::MAX),
        points,
        mirrored,
    })
}

/// The plane mirrored left to right.
fn mirror(plane: &LumaPlane) -> LumaPlane {
    let mut data = Vec::with_capacity(plane.data.len());
    for row in plane.data.chunks(plane.width.max(1)) {
        data.extend(row.iter().rev());
    }
    LumaPlane::new(plane.width, plane.height, data)
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

/// Synthetic pictures for the keypoint tests here and in `crate::matcher::keypoint_vote`.
#[cfg(test)]
pub(crate) mod test_scenes {
    use super::*;

    /// Blobs of different sizes and brightness on a gradient: plenty of corners.
    pub(crate) fn scene(w: usize, h: usize) -> LumaPlane {
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

    /// The rectangle `r` of `plane`.
    pub(crate) fn crop(plane: &LumaPlane, r: Rect) -> LumaPlane {
        regions::crop_plane(plane, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The bridge fixture, grey: a real photo (the synthetic scenes' flat blobs have too few
    /// textured corners).
    fn bridge() -> image::GrayImage {
        image::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bridge.jpg"
        ))
        .expect("fixture")
        .to_luma8()
    }

    fn plane_of(img: &image::GrayImage) -> LumaPlane {
        LumaPlane::new(
            img.width() as usize,
            img.height() as usize,
            img.pixels().map(|p| f32::from(p.0[0])).collect(),
        )
    }

    #[test]
    fn positions_fit_the_resampled_picture_and_descriptors_are_balanced() {
        let photo = bridge();
        let (w, h) = photo.dimensions();
        let picture = plane_of(&photo);
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
    fn a_mirrored_upload_gives_its_original_points_and_a_smaller_level_for_crops() {
        let photo = bridge();
        let original = query_keypoint_sets(&plane_of(&photo));
        let mirrored = query_keypoint_sets(&plane_of(&image::imageops::flip_horizontal(&photo)));
        assert_eq!(original.len(), 3);
        assert_eq!(mirrored.len(), 3);
        assert_eq!(
            Some(&original[0]),
            query_keypoints(&plane_of(&photo)).as_ref()
        );
        // The mirrored upload's second set is the original's own points: resampling a mirrored
        // picture is not bit for bit the mirror of resampling it (blocks are cut from the left),
        // so a point may sit a pixel away and its patch a few bits off, within what a pair of
        // descriptors allows (`DESCRIPTOR_RADIUS`, 7). On this photo 74-79% of the points have
        // such a counterpart; against the upload's own points, none.
        let counterparts = |set: &UploadKeypoints, of: &UploadKeypoints| {
            set.points
                .iter()
                .filter(|p| {
                    of.points.iter().any(|q| {
                        p.x.abs_diff(q.x) <= 1
                            && p.y.abs_diff(q.y) <= 1
                            && p.descriptor.distance(&q.descriptor) <= 7
                    })
                })
                .count()
        };
        let n = mirrored[1].points.len();
        assert!(counterparts(&mirrored[1], &original[0]) * 3 >= n * 2, "{n}");
        let n = original[1].points.len();
        assert!(counterparts(&original[1], &mirrored[0]) * 3 >= n * 2, "{n}");
        // Not so the upload and its own mirror: the patches of a photo are not symmetric.
        let n = original[0].points.len();
        assert!(counterparts(&original[1], &original[0]) * 10 < n, "{n}");
        // The third set is the upload at LONG_CROP_LEVEL of the first's size.
        let long = (BANK_LONG_SIDE as f32 * LONG_CROP_LEVEL).round() as u16;
        assert_eq!(original[2].width.max(original[2].height), long);
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

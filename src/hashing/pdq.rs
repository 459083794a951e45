//! PDQ, Meta's 256-bit perceptual image hash, written from Meta's published description:
//! "The TMK+PDQF video-hashing algorithm and the PDQ image-hashing algorithm"
//! (hashing.pdf in facebook/ThreatExchange). The steps, in order:
//!
//! 1. Luminance `Y = 0.299 R + 0.587 G + 0.114 B` as `f32` (done by the caller, see [`LumaPlane`]).
//! 2. A Jarosz filter: two passes of a box filter along rows then columns. Two box passes make a tent
//!    filter, which removes what would alias when the picture is decimated to 64x64. The box
//!    width along an axis of `n` pixels is `ceil(n / 128)`, i.e. half the decimation step.
//! 3. Decimation to 64x64 by sampling the filtered plane at the centre of each of the 64x64 cells.
//! 4. A 16x16 DCT: the 64x64 block is multiplied on both sides by the 16x64 matrix of DCT-II basis
//!    rows 1..=16 (row 0, the DC term, carries only overall brightness and is skipped).
//! 5. Each of the 256 coefficients becomes one bit: 1 when it is above the median of the 256.
//!
//! The quality score (0-100) measures how much gradient the 64x64 picture holds: featureless
//! pictures (flat colour, near-blank) give unstable hashes that match too much.
//!
//! Because the DCT basis has a known symmetry, the hashes of all eight rotations and mirrors of the
//! picture come from the one 16x16 coefficient block, by transposing and negating coefficients
//! (see [`Dihedral`]); no second pass over the pixels is needed.

use crate::bits::Hash256;

/// Side of the decimated block that the DCT reads.
const BLOCK: usize = 64;
/// Side of the coefficient block that makes the hash.
const COEFFS: usize = 16;
/// Box passes of the Jarosz filter (two passes approximate a tent). [`axis_weights`] composes
/// exactly two.
const JAROSZ_PASSES: usize = 2;
const _: () = assert!(JAROSZ_PASSES == 2);

/// ITU-R BT.601 luma weight of red, as PDQ uses it in `Y = 0.299 R + 0.587 G + 0.114 B`.
pub const LUMA_R: f32 = 0.299;
/// BT.601 weight of green in `Y = 0.299 R + 0.587 G + 0.114 B`.
pub const LUMA_G: f32 = 0.587;
/// BT.601 weight of blue in `Y = 0.299 R + 0.587 G + 0.114 B`.
pub const LUMA_B: f32 = 0.114;

/// A single-channel `f32` picture, row-major, values on the 0..=255 scale.
///
/// The plane may be a reduction of a larger source picture (a JPEG decoded at 1/2, 1/4 or 1/8
/// scale): `source_width x source_height` is then the size of that picture, and each plane pixel
/// stands for a `scale x scale` block of it. PDQ filters as if it had the source (see
/// [`pdq_coefficients`]), which is what keeps reduced decoding close to Meta's full-size hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct LumaPlane {
    /// Width of the plane in pixels.
    pub width: usize,
    /// Height of the plane in pixels.
    pub height: usize,
    /// `width * height` luma values, row-major (pixel `(x, y)` at `y * width + x`), 0..=255.
    pub data: Vec<f32>,
    /// Width in pixels of the picture the plane was reduced from (`width` when not reduced).
    pub source_width: usize,
    /// Height in pixels of the picture the plane was reduced from (`height` when not reduced).
    pub source_height: usize,
}

impl LumaPlane {
    /// A full-size plane of `width x height` pixels from `data` (row-major, `width * height`
    /// values on the 0..=255 scale); the source size is the plane's own. `data.len()` must be
    /// `width * height`: a caller's invariant, asserted in debug builds only.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), width * height);
        LumaPlane {
            width,
            height,
            data,
            source_width: width,
            source_height: height,
        }
    }

    /// Declare this plane a reduction of a `source_width x source_height` picture. Sizes smaller
    /// than the plane's own are ignored.
    pub fn with_source(mut self, source_width: usize, source_height: usize) -> Self {
        self.source_width = source_width.max(self.width);
        self.source_height = source_height.max(self.height);
        self
    }

    /// Source pixels per plane pixel along x and y (1 for a full-size plane).
    pub fn source_scale(&self) -> (usize, usize) {
        (
            self.source_width.div_ceil(self.width.max(1)).max(1),
            self.source_height.div_ceil(self.height.max(1)).max(1),
        )
    }

    /// The value of pixel `(x, y)` (column, row), 0..=255. Panics outside the plane: callers
    /// index within `width x height` they have checked.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// The plane after a rotation or mirror (used to apply an EXIF orientation).
    pub fn transformed(&self, t: Dihedral) -> LumaPlane {
        if t == Dihedral::Original {
            return self.clone();
        }
        let (w, h) = (self.width, self.height);
        let (out_w, out_h) = if t.swaps_axes() { (h, w) } else { (w, h) };
        let mut data = vec![0f32; w * h];
        for oy in 0..out_h {
            for ox in 0..out_w {
                // Source coordinates of output pixel (ox, oy).
                let (sx, sy) = match t {
                    Dihedral::Original => (ox, oy),
                    Dihedral::Rotate90 => (oy, h - 1 - ox),
                    Dihedral::Rotate180 => (w - 1 - ox, h - 1 - oy),
                    Dihedral::Rotate270 => (w - 1 - oy, ox),
                    Dihedral::FlipHorizontal => (w - 1 - ox, oy),
                    Dihedral::FlipVertical => (ox, h - 1 - oy),
                    Dihedral::Transpose => (oy, ox),
                    Dihedral::Transverse => (w - 1 - oy, h - 1 - ox),
                };
                data[oy * out_w + ox] = self.data[sy * w + sx];
            }
        }
        let (source_width, source_height) = if t.swaps_axes() {
            (self.source_height, self.source_width)
        } else {
            (self.source_width, self.source_height)
        };
        LumaPlane {
            width: out_w,
            height: out_h,
            data,
            source_width,
            source_height,
        }
    }
}

/// The eight rotations and mirrors of a picture (the dihedral group of the square).
/// Rotations are clockwise, as EXIF and `image::imageops::rotate90` count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dihedral {
    /// The picture as it is (the identity).
    Original,
    /// Turned 90 degrees clockwise.
    Rotate90,
    /// Turned 180 degrees.
    Rotate180,
    /// Turned 270 degrees clockwise (90 anticlockwise).
    Rotate270,
    /// Left-right mirror.
    FlipHorizontal,
    /// Top-bottom mirror.
    FlipVertical,
    /// Mirror about the top-left to bottom-right diagonal.
    Transpose,
    /// Mirror about the top-right to bottom-left diagonal.
    Transverse,
}

impl Dihedral {
    /// The eight transforms, identity first; the order of
    /// [`PdqCoefficients::all_dihedral_hashes`].
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Original,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::FlipHorizontal,
        Dihedral::FlipVertical,
        Dihedral::Transpose,
        Dihedral::Transverse,
    ];

    /// The transform's snake_case name (`original`, `rotate90`, ..., `flip_horizontal`,
    /// `transverse`), as `vigie hash` prints it and the service reports it.
    pub fn name(self) -> &'static str {
        match self {
            Dihedral::Original => "original",
            Dihedral::Rotate90 => "rotate90",
            Dihedral::Rotate180 => "rotate180",
            Dihedral::Rotate270 => "rotate270",
            Dihedral::FlipHorizontal => "flip_horizontal",
            Dihedral::FlipVertical => "flip_vertical",
            Dihedral::Transpose => "transpose",
            Dihedral::Transverse => "transverse",
        }
    }

    /// The transform whose [`Dihedral::name`] is exactly `name` (case-sensitive); `None` for any
    /// other text.
    pub fn from_name(name: &str) -> Option<Dihedral> {
        Dihedral::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether width and height trade places.
    pub fn swaps_axes(self) -> bool {
        matches!(
            self,
            Dihedral::Rotate90 | Dihedral::Rotate270 | Dihedral::Transpose | Dihedral::Transverse
        )
    }

    /// The transform that undoes this one.
    pub fn inverse(self) -> Dihedral {
        match self {
            Dihedral::Rotate90 => Dihedral::Rotate270,
            Dihedral::Rotate270 => Dihedral::Rotate90,
            other => other,
        }
    }

    /// How the DCT coefficient `(u, v)` (vertical frequency `u + 1`, horizontal `v + 1`) of the
    /// transformed picture is read from the original block: `(transpose, negate)`.
    ///
    /// Why: the basis row `k` is `cos(pi / 128 * k * (2j + 1))`. Mirroring `j -> 63 - j` turns it into
    /// `cos(pi * k - ...) = (-1)^k cos(...)`, so a mirror negates the coefficients of odd frequency,
    /// i.e. even index (frequency = index + 1). Swapping the axes of the picture transposes the block.
    /// A rotation by 90 degrees clockwise is a transpose followed by a left-right mirror, and so on.
    fn coefficient_rule(self, u: usize, v: usize) -> (bool, bool) {
        let u_odd_freq = u.is_multiple_of(2);
        let v_odd_freq = v.is_multiple_of(2);
        match self {
            Dihedral::Original => (false, false),
            Dihedral::FlipHorizontal => (false, v_odd_freq),
            Dihedral::FlipVertical => (false, u_odd_freq),
            Dihedral::Rotate180 => (false, u_odd_freq ^ v_odd_freq),
            Dihedral::Transpose => (true, false),
            // rotate90 = mirror(transpose): the mirror acts on the output's horizontal frequency v.
            Dihedral::Rotate90 => (true, v_odd_freq),
            Dihedral::Rotate270 => (true, u_odd_freq),
            Dihedral::Transverse => (true, u_odd_freq ^ v_odd_freq),
        }
    }
}

/// A PDQ hash and its quality (0..=100; below 50 the picture is too featureless to trust).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdqHash {
    /// The 256 bits, in Meta's bit order (see [`crate::bits`]): 64 hex digits as text.
    pub hash: Hash256,
    /// Gradient quality, 0..=100 (0 for a flat picture).
    pub quality: u8,
}

/// What the PDQ pipeline keeps after the DCT: enough to make the hash of any dihedral transform.
#[derive(Clone, Debug)]
pub struct PdqCoefficients {
    coeffs: [[f32; COEFFS]; COEFFS],
    /// Gradient quality of the 64x64 block, 0..=100; the same for every transform.
    pub quality: u8,
}

impl PdqCoefficients {
    /// The hash of the picture itself.
    pub fn hash(&self) -> PdqHash {
        self.dihedral_hash(Dihedral::Original)
    }

    /// The hash that the picture would have after transform `t`.
    pub fn dihedral_hash(&self, t: Dihedral) -> PdqHash {
        let mut block = [0f32; COEFFS * COEFFS];
        for u in 0..COEFFS {
            for v in 0..COEFFS {
                let (transpose, negate) = t.coefficient_rule(u, v);
                let c = if transpose {
                    self.coeffs[v][u]
                } else {
                    self.coeffs[u][v]
                };
                block[u * COEFFS + v] = if negate { -c } else { c };
            }
        }
        PdqHash {
            hash: threshold_at_median(&block),
            quality: self.quality,
        }
    }

    /// The hashes of all eight transforms, in [`Dihedral::ALL`] order.
    pub fn all_dihedral_hashes(&self) -> [PdqHash; 8] {
        Dihedral::ALL.map(|t| self.dihedral_hash(t))
    }
}

/// PDQ of a luminance plane.
pub fn pdq_hash(luma: &LumaPlane) -> PdqHash {
    pdq_coefficients(luma).hash()
}

/// The shortest side, in pixels, that PDQ hashes (Meta's `MIN_HASHABLE_DIM`): a picture with a
/// side under it has no PDQ, which Meta's hasher gives as the all-zero hash of quality 0, so the
/// quality rule keeps it from ever matching. A 20000x3 strip otherwise filtered up to 64 rows
/// "had" quality 82. The 64-bit hashes follow the same rule ([`super::perceptual64::quality`]).
pub const MIN_SIDE: usize = 5;

/// The PDQ pipeline up to the 16x16 DCT, with the quality score. A plane with a side under
/// [`MIN_SIDE`] gives all-zero coefficients of quality 0: every transform's hash is then all
/// zeros, as Meta's.
pub fn pdq_coefficients(luma: &LumaPlane) -> PdqCoefficients {
    // A reduced plane stands for a larger source (never a smaller one): its own sides decide.
    if luma.width.min(luma.height) < MIN_SIDE {
        return PdqCoefficients {
            coeffs: [[0.0; COEFFS]; COEFFS],
            quality: 0,
        };
    }
    let block = downsample_to_64(luma);
    let quality = quality_score(&block);
    let coeffs = dct16(&block);
    PdqCoefficients { coeffs, quality }
}

/// Box width for the Jarosz filter along an axis of `old` pixels decimated to `new`:
/// `ceil(old / (2 * new))`, half the decimation step, so that two passes span one step.
fn jarosz_window(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new).max(1)
}

/// Steps 2 and 3: Jarosz filter, then decimate to 64x64 by centre sampling.
///
/// The filter is linear and separable, and only 64x64 samples of its output are kept, so instead
/// of filtering every pixel four times (rows, columns, rows, columns) this computes, for each
/// output sample, the weight every source pixel gets (row and column passes commute, so the
/// filter is `R^2 C^2`: along each axis, the row of the twice-applied clipped box operator at the
/// sample position) and takes one weighted sum per axis: about one multiply-add per pixel instead
/// of eight reads and writes of a full-size plane, and no full-size scratch plane.
///
/// For a reduced plane (see [`LumaPlane::with_source`]) the weights are those of the full-size
/// source, summed over the block of source pixels each plane pixel stands for: exact when each
/// block is flat, which is what a 1/8-scale JPEG decode (DC coefficient = block mean) gives.
fn downsample_to_64(luma: &LumaPlane) -> [[f32; BLOCK]; BLOCK] {
    let (w, h) = (luma.width, luma.height);
    let (scale_x, scale_y) = luma.source_scale();
    let across = axis_weights(w, luma.source_width, scale_x);
    let down = axis_weights(h, luma.source_height, scale_y);
    ROW_SUMS.with(|cell| {
        let mut row_sums = cell.borrow_mut();
        row_sums.clear();
        row_sums.resize(h * BLOCK, 0.0);
        // Horizontal: each row's 64 weighted sums.
        for (line, sums) in luma
            .data
            .chunks_exact(w)
            .zip(row_sums.chunks_exact_mut(BLOCK))
        {
            for (sum, taps) in sums.iter_mut().zip(&across) {
                *sum = taps.dot(line);
            }
        }
        // Vertical: each output cell is a weighted sum of its column of row sums.
        let mut block = [[0f32; BLOCK]; BLOCK];
        for (out_row, taps) in block.iter_mut().zip(&down) {
            for (k, &weight) in taps.weights.iter().enumerate() {
                let sums = &row_sums[(taps.start + k) * BLOCK..(taps.start + k + 1) * BLOCK];
                out_row
                    .iter_mut()
                    .zip(sums)
                    .for_each(|(o, s)| *o += weight * s);
            }
        }
        block
    })
}

thread_local! {
    /// Scratch for [`downsample_to_64`]: reused, so hashing allocates nothing per picture here.
    static ROW_SUMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The weights of one output sample along one axis: `weights[k]` applies to plane pixel `start + k`.
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

impl Taps {
    #[inline]
    fn dot(&self, line: &[f32]) -> f32 {
        self.weights
            .iter()
            .zip(&line[self.start..self.start + self.weights.len()])
            .map(|(w, v)| w * v)
            .sum()
    }
}

/// For each of the 64 samples along an axis of `plane_len` pixels reduced from `source_len` by
/// `scale`: the source pixel it samples (the centre of its cell, as Meta's decimation), the row
/// of the clipped box operator applied twice at that pixel (computed in `f64`), and those weights
/// folded onto plane pixels.
fn axis_weights(plane_len: usize, source_len: usize, scale: usize) -> Vec<Taps> {
    let window = jarosz_window(source_len, BLOCK);
    let (behind, ahead) = box_span(window);
    let span = |p: usize| (p.saturating_sub(behind), (p + ahead).min(source_len - 1));
    (0..BLOCK)
        .map(|i| {
            let x = ((((i as f64 + 0.5) * source_len as f64) / BLOCK as f64) as usize)
                .min(source_len - 1);
            // First pass: x averages [lo1, hi1]; second pass: each p there averages its own span.
            let (lo1, hi1) = span(x);
            let first = 1.0 / (hi1 - lo1 + 1) as f64;
            let (lo, _) = span(lo1);
            let (_, hi) = span(hi1);
            let mut source_weights = vec![0f64; hi - lo + 1];
            for p in lo1..=hi1 {
                let (a, b) = span(p);
                let second = first / (b - a + 1) as f64;
                for q in a..=b {
                    source_weights[q - lo] += second;
                }
            }
            let start = lo / scale;
            let end = (hi / scale).min(plane_len - 1);
            let mut weights = vec![0f64; end - start + 1];
            for (offset, wq) in source_weights.iter().enumerate() {
                let k = ((lo + offset) / scale).min(plane_len - 1);
                weights[k - start] += wq;
            }
            Taps {
                start,
                weights: weights.into_iter().map(|v| v as f32).collect(),
            }
        })
        .collect()
}

/// Span of the centred box of width `window`: output `i` averages inputs `i - behind ..= i + ahead`,
/// clipped to the line (the average then divides by the clipped count). For even widths the extra
/// sample lies ahead; this matches the centring of Meta's published filter.
fn box_span(window: usize) -> (usize, usize) {
    let half = (window + 2) / 2;
    let ahead = half - 1;
    let behind = window - half;
    (behind, ahead)
}

/// One box pass along each row (horizontal smoothing), `src` into `dst`.
#[cfg(test)]
fn box_filter_rows(src: &[f32], dst: &mut [f32], w: usize, h: usize, window: usize) {
    let (behind, ahead) = box_span(window);
    for y in 0..h {
        let line = &src[y * w..(y + 1) * w];
        let out = &mut dst[y * w..(y + 1) * w];
        // Running sum over the clipped window [lo, hi].
        let mut sum = 0f32;
        let mut count = 0usize;
        let mut hi_next = 0usize; // next input index to add
        let mut lo_next = 0usize; // next input index to remove
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (i + ahead).min(w - 1);
            while hi_next <= hi {
                sum += line[hi_next];
                count += 1;
                hi_next += 1;
            }
            while lo_next + behind < i {
                sum -= line[lo_next];
                count -= 1;
                lo_next += 1;
            }
            *o = sum / count as f32;
        }
    }
}

/// One box pass down each column (vertical smoothing), `src` into `dst`. The running sums of all
/// columns advance together one row at a time, so memory is read row by row (cache-friendly), while
/// each column still sees the same sequence of additions and subtractions as a per-column filter.
#[cfg(test)]
fn box_filter_cols(src: &[f32], dst: &mut [f32], w: usize, h: usize, window: usize) {
    let (behind, ahead) = box_span(window);
    let mut sums = vec![0f32; w];
    let mut count = 0usize;
    let mut hi_next = 0usize;
    let mut lo_next = 0usize;
    for y in 0..h {
        let hi = (y + ahead).min(h - 1);
        while hi_next <= hi {
            let row = &src[hi_next * w..(hi_next + 1) * w];
            sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            count += 1;
            hi_next += 1;
        }
        while lo_next + behind < y {
            let row = &src[lo_next * w..(lo_next + 1) * w];
            sums.iter_mut().zip(row).for_each(|(s, v)| *s -= v);
            count -= 1;
            lo_next += 1;
        }
        let inv = count as f32;
        dst[y * w..(y + 1) * w]
            .iter_mut()
            .zip(&sums)
            .for_each(|(d, s)| *d = s / inv);
    }
}

/// Gradient-based quality: the sum over all vertically and horizontally adjacent pairs of the
/// 64x64 block of `|trunc((a - b) * 100 / 255)|`, divided by 90, capped at 100. A photo with any
/// texture reaches 100; a flat or near-flat picture stays near 0.
fn quality_score(block: &[[f32; BLOCK]; BLOCK]) -> u8 {
    let step = |a: f32, b: f32| -> i64 { (((a - b) * 100.0) / 255.0) as i64 };
    let mut gradient_sum: i64 = 0;
    for (upper, lower) in block.iter().zip(block.iter().skip(1)) {
        for (&a, &b) in upper.iter().zip(lower) {
            gradient_sum += step(a, b).abs();
        }
    }
    for row in block.iter() {
        for j in 0..BLOCK - 1 {
            gradient_sum += step(row[j], row[j + 1]).abs();
        }
    }
    (gradient_sum / 90).min(100) as u8
}

/// [`dct_matrix`] transposed: row `j` holds `D[k][j]` for the 16 frequencies `k`.
fn dct_matrix_transposed() -> &'static [[f32; COEFFS]; BLOCK] {
    static MATRIX: std::sync::OnceLock<[[f32; COEFFS]; BLOCK]> = std::sync::OnceLock::new();
    MATRIX.get_or_init(|| {
        let d = dct_matrix();
        let mut m = [[0f32; COEFFS]; BLOCK];
        for (j, row) in m.iter_mut().enumerate() {
            for (k, cell) in row.iter_mut().enumerate() {
                *cell = d[k][j];
            }
        }
        m
    })
}

/// The 16x64 DCT-II basis without the DC row: `D[k][j] = sqrt(2/64) cos(pi/128 (k+1) (2j+1))`.
fn dct_matrix() -> &'static [[f32; BLOCK]; COEFFS] {
    static MATRIX: std::sync::OnceLock<[[f32; BLOCK]; COEFFS]> = std::sync::OnceLock::new();
    MATRIX.get_or_init(|| {
        let scale = (2.0f64 / BLOCK as f64).sqrt();
        let mut m = [[0f32; BLOCK]; COEFFS];
        for (k, row) in m.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                let angle = std::f64::consts::PI / (2.0 * BLOCK as f64)
                    * (k as f64 + 1.0)
                    * (2.0 * j as f64 + 1.0);
                *cell = (scale * angle.cos()) as f32;
            }
        }
        m
    })
}

/// Step 4: `C = D B D^T` (16x64 by 64x64 by 64x16).
fn dct16(block: &[[f32; BLOCK]; BLOCK]) -> [[f32; COEFFS]; COEFFS] {
    let d = dct_matrix();
    // T = D B: vertical frequencies.
    let mut t = [[0f32; BLOCK]; COEFFS];
    for (k, t_row) in t.iter_mut().enumerate() {
        for (r, b_row) in block.iter().enumerate() {
            let dk = d[k][r];
            t_row
                .iter_mut()
                .zip(b_row)
                .for_each(|(acc, b)| *acc += dk * b);
        }
    }
    // C = T D^T: horizontal frequencies. Each coefficient is summed over j in order, as a dot
    // product would be (so the result is the same to the bit), but sixteen of them at a time
    // from D's transpose: sixteen independent sums the compiler vectorises, not one long chain.
    let dt = dct_matrix_transposed();
    let mut c = [[0f32; COEFFS]; COEFFS];
    for (c_row, t_row) in c.iter_mut().zip(&t) {
        for (&tj, d_col) in t_row.iter().zip(dt) {
            c_row
                .iter_mut()
                .zip(d_col)
                .for_each(|(acc, dv)| *acc += tj * dv);
        }
    }
    c
}

/// Step 5: bit `u * 16 + v` is set when coefficient `(u, v)` is strictly above the median. The
/// median of 256 values is taken as the 128th smallest (the lower median), so a picture without
/// ties sets exactly 128 bits.
fn threshold_at_median(block: &[f32; COEFFS * COEFFS]) -> Hash256 {
    let mut order = *block;
    let (_, &mut median, _) = order.select_nth_unstable_by(COEFFS * COEFFS / 2 - 1, f32::total_cmp);
    let mut hash = Hash256::zero();
    for (k, &c) in block.iter().enumerate() {
        if c > median {
            hash.set_bit(k);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter as Meta's description gives it: four full-size box passes, then centre sampling.
    /// The oracle for [`downsample_to_64`].
    fn downsample_by_full_passes(luma: &LumaPlane) -> [[f32; BLOCK]; BLOCK] {
        let (w, h) = (luma.width, luma.height);
        let mut plane = luma.data.clone();
        let mut scratch = vec![0f32; w * h];
        let window_along_rows = jarosz_window(w, BLOCK);
        let window_along_cols = jarosz_window(h, BLOCK);
        for _ in 0..JAROSZ_PASSES {
            box_filter_rows(&plane, &mut scratch, w, h, window_along_rows);
            box_filter_cols(&scratch, &mut plane, w, h, window_along_cols);
        }
        let mut block = [[0f32; BLOCK]; BLOCK];
        for (i, row) in block.iter_mut().enumerate() {
            let y = ((((i as f64 + 0.5) * h as f64) / BLOCK as f64) as usize).min(h - 1);
            for (j, cell) in row.iter_mut().enumerate() {
                let x = ((((j as f64 + 0.5) * w as f64) / BLOCK as f64) as usize).min(w - 1);
                *cell = plane[y * w + x];
            }
        }
        block
    }

    #[test]
    fn weighted_sampling_equals_the_four_box_passes() {
        for (w, h, seed) in [
            (64, 64, 1),
            (1, 1, 2),
            (3, 200, 3),
            (517, 389, 4),
            (1024, 576, 5),
            (130, 70, 6),
        ] {
            let plane = pseudo_random_plane(w, h, seed);
            let fast = downsample_to_64(&plane);
            let oracle = downsample_by_full_passes(&plane);
            for (i, (a, b)) in fast
                .iter()
                .flatten()
                .zip(oracle.iter().flatten())
                .enumerate()
            {
                assert!((a - b).abs() < 1e-2, "{w}x{h} cell {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_reduced_plane_of_flat_blocks_hashes_like_its_source() {
        // A source made of flat 8x8 blocks, and its 1/8 reduction (one pixel per block): the
        // reduction declared with its source size gives the source's samples.
        let (bw, bh) = (60usize, 45usize);
        let small = pseudo_random_plane(bw, bh, 9);
        let mut big = vec![0f32; bw * 8 * bh * 8];
        for y in 0..bh * 8 {
            for x in 0..bw * 8 {
                big[y * bw * 8 + x] = small.data[(y / 8) * bw + x / 8];
            }
        }
        let source = LumaPlane::new(bw * 8, bh * 8, big);
        let reduced = small.clone().with_source(bw * 8, bh * 8);
        let a = downsample_to_64(&source);
        let b = downsample_to_64(&reduced);
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-2, "{x} vs {y}");
        }
        assert_eq!(pdq_hash(&source).hash, pdq_hash(&reduced).hash);
        // Without the declaration the reduction is filtered as a small picture: a different hash.
        assert_ne!(pdq_hash(&small).hash, pdq_hash(&source).hash);
    }

    fn pseudo_random_plane(w: usize, h: usize, seed: u64) -> LumaPlane {
        let mut state = seed;
        let mut data = Vec::with_capacity(w * h);
        // Smooth-ish content: a few sinusoids plus noise, so the DCT has structure.
        for y in 0..h {
            for x in 0..w {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 40) as f32 / (1u64 << 24) as f32 * 40.0;
                let v = 100.0
                    + 60.0 * ((x as f32) * 0.05 + (seed as f32)).sin()
                    + 50.0 * ((y as f32) * 0.08).cos()
                    + noise;
                data.push(v.clamp(0.0, 255.0));
            }
        }
        LumaPlane::new(w, h, data)
    }

    #[test]
    fn box_span_is_centred_with_extra_sample_ahead() {
        assert_eq!(box_span(1), (0, 0));
        assert_eq!(box_span(2), (0, 1));
        assert_eq!(box_span(3), (1, 1));
        assert_eq!(box_span(4), (1, 2));
        assert_eq!(box_span(5), (2, 2));
    }

    #[test]
    fn box_filters_average_the_clipped_window() {
        let w = 5;
        let src: Vec<f32> = (0..w).map(|v| v as f32).collect();
        let mut dst = vec![0f32; w];
        box_filter_rows(&src, &mut dst, w, 1, 3);
        assert_eq!(dst, vec![0.5, 1.0, 2.0, 3.0, 3.5]);
        // The same line as a column.
        let mut col = vec![0f32; w];
        box_filter_cols(&src, &mut col, 1, w, 3);
        assert_eq!(col, dst);
    }

    #[test]
    fn a_picture_without_ties_sets_half_the_bits() {
        let h = pdq_hash(&pseudo_random_plane(300, 200, 7));
        assert_eq!(h.hash.count_ones(), 128);
        assert_eq!(h.quality, 100);
    }

    #[test]
    fn flat_picture_has_quality_zero() {
        let h = pdq_hash(&LumaPlane::new(100, 100, vec![128.0; 100 * 100]));
        assert_eq!(h.quality, 0);
    }

    #[test]
    fn a_side_under_five_pixels_has_no_hash_as_meta() {
        for (w, h) in [(1, 1), (4, 4000), (20000, 3), (2, 3), (4, 5)] {
            let c = pdq_coefficients(&pseudo_random_plane(w, h, 7));
            assert_eq!(c.quality, 0, "{w}x{h}");
            for p in c.all_dihedral_hashes() {
                assert_eq!(p.hash, Hash256::zero(), "{w}x{h}");
                assert_eq!(p.quality, 0);
            }
        }
        // From five pixels on, a textured picture hashes.
        let c = pdq_coefficients(&pseudo_random_plane(5, 7, 7));
        assert!(c.quality > 0);
        assert_ne!(c.hash().hash, Hash256::zero());
    }

    #[test]
    fn dihedral_hashes_equal_hashes_of_transformed_pictures() {
        // On a 64x64 plane the filter is the identity and decimation samples every pixel, so the
        // coefficient rules must reproduce the transformed picture's hash exactly.
        let plane = pseudo_random_plane(64, 64, 3);
        let coeffs = pdq_coefficients(&plane);
        for t in Dihedral::ALL {
            let direct = pdq_hash(&plane.transformed(t));
            let derived = coeffs.dihedral_hash(t);
            assert_eq!(
                direct.hash.distance(&derived.hash),
                0,
                "transform {}",
                t.name()
            );
        }
        // And the transforms are distinct from one another.
        let all = coeffs.all_dihedral_hashes();
        for a in 0..8 {
            for b in a + 1..8 {
                assert!(all[a].hash.distance(&all[b].hash) > 32, "{a} vs {b}");
            }
        }
    }

    /// A smooth picture with structure at every frequency the hash looks at: a sum of random
    /// plane waves of up to 7 cycles across the picture (the band the 16x16 coefficients see) (like a photo's low frequencies, without
    /// the pixel noise that makes near-median coefficients flip under any resampling).
    fn smooth_random_plane(w: usize, h: usize, seed: u64) -> LumaPlane {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let waves: Vec<(f64, f64, f64, f64)> = (0..60)
            .map(|_| {
                (
                    next() * 7.0,
                    next() * 7.0,
                    next() * std::f64::consts::TAU,
                    5.0 + next() * 20.0,
                )
            })
            .collect();
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
                let v: f64 = waves
                    .iter()
                    .map(|(cx, cy, phase, amp)| {
                        amp * (std::f64::consts::TAU * (cx * fx + cy * fy) + phase).cos()
                    })
                    .sum();
                data.push((128.0 + v).clamp(0.0, 255.0) as f32);
            }
        }
        LumaPlane::new(w, h, data)
    }

    #[test]
    fn dihedral_rules_hold_on_non_square_pictures_within_a_few_bits() {
        // Non-square, with an even box width along one axis (400 / 128 -> 4): PDQ's box filter
        // and centre-sampling grid are not mirror-symmetric there (a one-pixel shift), so the
        // derived hash drifts by some bits. It must stay well inside the match threshold (31) and be
        // the nearest of the eight, i.e. a rotated re-upload still matches the right transform.
        let plane = smooth_random_plane(640, 400, 11);
        let coeffs = pdq_coefficients(&plane);
        let derived = coeffs.all_dihedral_hashes();
        for (i, t) in Dihedral::ALL.into_iter().enumerate() {
            let direct = pdq_hash(&plane.transformed(t)).hash;
            let d = direct.distance(&derived[i].hash);
            assert!(d <= 24, "transform {} drifts {d} bits", t.name());
            let nearest = (0..8).min_by_key(|&j| direct.distance(&derived[j].hash));
            assert_eq!(nearest, Some(i), "transform {}", t.name());
        }
    }

    #[test]
    fn transforms_compose_as_expected() {
        let plane = pseudo_random_plane(7, 5, 1);
        for t in Dihedral::ALL {
            assert_eq!(
                plane.transformed(t).transformed(t.inverse()),
                plane,
                "{}",
                t.name()
            );
        }
        let r90 = plane.transformed(Dihedral::Rotate90);
        assert_eq!((r90.width, r90.height), (5, 7));
        // Rotating clockwise puts the bottom-left pixel at the top-left.
        assert_eq!(r90.at(0, 0), plane.at(0, 4));
        assert_eq!(
            r90.transformed(Dihedral::Rotate90)
                .transformed(Dihedral::Rotate90)
                .transformed(Dihedral::Rotate90),
            plane
        );
    }

    #[test]
    fn tiny_pictures_hash_without_panicking() {
        for (w, h) in [(1, 1), (1, 50), (50, 1), (2, 3)] {
            let plane = pseudo_random_plane(w, h, 5);
            let _ = pdq_hash(&plane);
        }
    }
}

//! The 64-bit perceptual hashes, through `image_hasher` (the maintained continuation of `img_hash`).
//!
//! Each hash is pinned to one exact `HasherConfig`: a hash bank is only as good as the promise that
//! the same picture hashes the same way next year. `tests/hashing/hash_stability.rs` fails with the
//! Hamming drift if an upgrade of `image_hasher` or `image` changes either hash.

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage};
use image_hasher::{BitOrder, HashAlg, Hasher, HasherConfig};

use crate::bits::Hash64;

/// pHash: the picture reduced to greyscale and resized to 16x16 with Lanczos3 (`hash_size` 8x8;
/// the DCT preprocessing doubles each side), a 2-D DCT, the top-left (lowest-frequency) 8x8
/// coefficients compared with their median: 64 bits, about half of them set. This is the classic
/// DCT pHash (Zauner, "Implementation and Benchmarking of Perceptual Image Hash Functions", 2010)
/// as `image_hasher` implements it. The median, not the mean: the DC coefficient dwarfs the others,
/// so a mean threshold leaves nearly every bit 0 and the hash tells pictures apart poorly.
pub fn phash_config() -> HasherConfig<[u8; 8]> {
    base_config().hash_alg(HashAlg::Median).preproc_dct()
}

/// dHash: greyscale, resized to 9x8 with Lanczos3, each bit says whether a pixel is brighter than
/// its right-hand neighbour (Krawetz, "Kind of Like That", 2013): 64 bits.
pub fn dhash_config() -> HasherConfig<[u8; 8]> {
    base_config().hash_alg(HashAlg::Gradient)
}

/// What both hashes share: 8x8 = 64 bits in an inline 8-byte container, Lanczos3 resizing, bits
/// packed most significant first within each byte. With the bytes printed in order (see
/// `crate::bits`), the hex text is then the grid row-major with its first bit the most
/// significant, which is how Python `imagehash` writes a hash (`str(imagehash.phash(img))`), the
/// source of most 64-bit hash lists: such a list imports and matches as it is. Until schema 5
/// (issue 15) vigie used `image_hasher`'s default, least significant bit first, so every byte of
/// its hex was bit-reversed against imagehash's and lists from imagehash never matched (26-40
/// bits off); the store migration reversed the stored hashes' bytes to this order. Pinned here
/// so a change of default cannot move the hashes.
fn base_config() -> HasherConfig<[u8; 8]> {
    HasherConfig::with_bytes_type::<[u8; 8]>()
        .hash_size(8, 8)
        .resize_filter(FilterType::Lanczos3)
        .bit_order(BitOrder::MsbFirst)
}

/// The grid `image_hasher` resizes to for pHash: twice the 8x8 hash size (DCT preprocessing).
const PHASH_GRID: (u32, u32) = (16, 16);
/// The grid for dHash: one column more than the 8x8 hash (each bit compares two neighbours).
const DHASH_GRID: (u32, u32) = (9, 8);

/// The transforms dHash is also computed under, from its resized grid: those that keep the
/// grid's shape (a quarter turn would make the 9x8 grid 8x9, a second resize). The mirror is the
/// flip reposters make; the half turn the one PDQ's own rotations miss most on small pictures
/// (`vigie eval`).
pub const GRID_TRANSFORMS: [super::Dihedral; 2] =
    [super::Dihedral::FlipHorizontal, super::Dihedral::Rotate180];

/// The transforms pHash is also computed under: its 16x16 grid is square, so the quarter turns
/// come free as well.
pub const PHASH_TRANSFORMS: [super::Dihedral; 4] = [
    super::Dihedral::FlipHorizontal,
    super::Dihedral::Rotate180,
    super::Dihedral::Rotate90,
    super::Dihedral::Rotate270,
];

fn turn_grid(grid: &GrayImage, t: super::Dihedral) -> GrayImage {
    use super::Dihedral::*;
    match t {
        Original => grid.clone(),
        FlipHorizontal => imageops::flip_horizontal(grid),
        FlipVertical => imageops::flip_vertical(grid),
        Rotate180 => imageops::rotate180(grid),
        Rotate90 => imageops::rotate90(grid),
        Rotate270 => imageops::rotate270(grid),
        Transpose => imageops::flip_horizontal(&imageops::rotate90(grid)),
        Transverse => imageops::flip_horizontal(&imageops::rotate270(grid)),
    }
}

/// `imageops::resize(gray, width, height, Lanczos3)`, bit for bit, for a grey picture: the same
/// weights (Lanczos3 windowed sinc, support widened by the reduction ratio, normalised to sum 1),
/// the same passes (columns first into `f32`, then rows, clamped and rounded) and the same order
/// of `f32` additions. The generic version carries four `f32` channels per pixel through
/// `get_pixel`/`put_pixel` for a one-channel picture; this one runs the vertical pass over whole
/// rows, several times faster, which is where the 64-bit hashes spent most of their time.
fn lanczos3_gray(gray: &GrayImage, width: u32, height: u32) -> GrayImage {
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        return GrayImage::new(width, height);
    }
    if (width, height) == (w, h) {
        return gray.clone();
    }
    let src = gray.as_raw();
    let (w_us, new_h) = (w as usize, height as usize);
    // Columns: `height` rows of `w` values.
    let mut columns = vec![0f32; w_us * new_h];
    let mut weights = Vec::new();
    for (out_y, row) in columns.chunks_exact_mut(w_us).enumerate() {
        let left = lanczos3_weights(out_y as u32, h, height, &mut weights);
        for (i, wt) in weights.iter().enumerate() {
            let line = &src[(left + i) * w_us..(left + i + 1) * w_us];
            for (acc, &p) in row.iter_mut().zip(line) {
                *acc += f32::from(p) * wt;
            }
        }
    }
    // Rows: each output pixel from one row of `columns`.
    let mut out = vec![0u8; width as usize * new_h];
    for out_x in 0..width as usize {
        let left = lanczos3_weights(out_x as u32, w, width, &mut weights);
        for y in 0..new_h {
            let line = &columns[y * w_us..(y + 1) * w_us];
            let mut acc = 0f32;
            for (i, wt) in weights.iter().enumerate() {
                acc += line[left + i] * wt;
            }
            out[y * width as usize + out_x] = acc.clamp(0.0, 255.0).round() as u8;
        }
    }
    GrayImage::from_raw(width, height, out).unwrap_or_else(|| GrayImage::new(width, height))
}

/// The normalised Lanczos3 weights of output sample `out` when `len` samples become `new_len`
/// (as `imageops`' samplers compute them), into `weights`; returns the first input index.
fn lanczos3_weights(out: u32, len: u32, new_len: u32, weights: &mut Vec<f32>) -> usize {
    const SUPPORT: f32 = 3.0;
    let ratio = len as f32 / new_len as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let src_support = SUPPORT * sratio;
    let centre = (out as f32 + 0.5) * ratio;
    let left = ((centre - src_support).floor() as i64).clamp(0, i64::from(len) - 1);
    let right = ((centre + src_support).ceil() as i64).clamp(left + 1, i64::from(len));
    let centre = centre - 0.5;
    weights.clear();
    let mut sum = 0.0;
    for i in left..right {
        let wt = lanczos3((i as f32 - centre) / sratio);
        weights.push(wt);
        sum += wt;
    }
    for wt in weights.iter_mut() {
        *wt /= sum;
    }
    left as usize
}

/// Lanczos windowed sinc with a = 3 (`imageops`' `lanczos3_kernel`).
fn lanczos3(x: f32) -> f32 {
    fn sinc(t: f32) -> f32 {
        let a = t * std::f32::consts::PI;
        if t == 0.0 { 1.0 } else { a.sin() / a }
    }
    if x.abs() < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Ready-built hashers for both 64-bit hashes (building one computes DCT tables: do it once).
pub struct Perceptual64 {
    phash: Hasher<[u8; 8]>,
    dhash: Hasher<[u8; 8]>,
}

impl Default for Perceptual64 {
    fn default() -> Self {
        Perceptual64 {
            phash: phash_config().to_hasher(),
            dhash: dhash_config().to_hasher(),
        }
    }
}

impl Perceptual64 {
    /// pHash of a greyscale picture as made by [`hash_input`] (no conversion, no copy).
    pub fn phash_gray(&self, gray: &GrayImage) -> Hash64 {
        self.phash_grid(&lanczos3_gray(gray, PHASH_GRID.0, PHASH_GRID.1))
    }

    /// dHash of a greyscale picture as made by [`hash_input`].
    pub fn dhash_gray(&self, gray: &GrayImage) -> Hash64 {
        self.dhash_grid(&lanczos3_gray(gray, DHASH_GRID.0, DHASH_GRID.1))
    }

    /// pHash of a picture already resized to its grid: `image_hasher` copies it, not resamples.
    fn phash_grid(&self, grid: &GrayImage) -> Hash64 {
        Hash64::from_bytes(self.phash.hash_image(grid).into_inner())
    }

    fn dhash_grid(&self, grid: &GrayImage) -> Hash64 {
        Hash64::from_bytes(self.dhash.hash_image(grid).into_inner())
    }

    /// pHash of a greyscale picture, and of the picture under each of [`PHASH_TRANSFORMS`].
    ///
    /// `image_hasher` first resizes to a fixed grid (Lanczos3) and an input already of that size
    /// is copied, not resampled (`imageops::resize`), so resizing here gives exactly the hash of
    /// [`Self::phash_gray`] plus a grid to transform: the resampling kernel is symmetric, so the
    /// mirrored (or turned) 16x16 grid stands for the mirrored (turned) picture, up to float
    /// rounding (checked in the tests), at no second resize.
    pub fn phash_gray_turned(&self, gray: &GrayImage) -> (Hash64, [Hash64; 4]) {
        let grid = lanczos3_gray(gray, PHASH_GRID.0, PHASH_GRID.1);
        (
            self.phash_grid(&grid),
            PHASH_TRANSFORMS.map(|t| self.phash_grid(&turn_grid(&grid, t))),
        )
    }

    /// dHash of a greyscale picture and under each of [`GRID_TRANSFORMS`] (see
    /// [`Self::phash_gray_turned`]).
    pub fn dhash_gray_turned(&self, gray: &GrayImage) -> (Hash64, [Hash64; 2]) {
        let grid = lanczos3_gray(gray, DHASH_GRID.0, DHASH_GRID.1);
        (
            self.dhash_grid(&grid),
            GRID_TRANSFORMS.map(|t| self.dhash_grid(&turn_grid(&grid, t))),
        )
    }

    /// pHash of any picture, converted and resized by `image_hasher` itself (the reference the
    /// reduced path is measured against in `tests/hashing/hash_stability.rs`).
    pub fn phash(&self, picture: &DynamicImage) -> Hash64 {
        Hash64::from_bytes(self.phash.hash_image(picture).into_inner())
    }

    /// dHash of any picture, converted and resized by `image_hasher` itself.
    pub fn dhash(&self, picture: &DynamicImage) -> Hash64 {
        Hash64::from_bytes(self.dhash.hash_image(picture).into_inner())
    }
}

/// Side of the grid [`quality`] measures: PDQ's 64x64, so the two qualities read alike.
const QUALITY_GRID: usize = 64;

/// How much there is to hash in the grey picture the 64-bit hashes read (0..=100): the picture
/// box-averaged onto a 64x64 grid (each cell the mean of the pixels it covers; a picture smaller
/// than that repeats its pixels), then PDQ's own gradient measure of that grid, the sum over all
/// horizontally and vertically adjacent cells of `|trunc((a - b) * 100 / 255)|` divided by 90 and
/// capped at 100 (Meta, "The TMK+PDQF video-hashing algorithm and the PDQ image-hashing
/// algorithm", the quality metric). A flat or near-flat picture scores near 0: its pHash and
/// dHash bits are decided by rounding noise (flat cards, plain white and plain navy all have the
/// dHash `0000000000000000`), so they match one another and anything close to that. A picture
/// with a side under 5 pixels scores 0, as PDQ gives it no hash at all ([`super::pdq::MIN_SIDE`]).
///
/// Measured on the 64-bit hashes' own input rather than taken from PDQ's, so that pHash and dHash
/// carry their quality where PDQ is not computed, and content boxes have their own. Costs one
/// pass over the (already reduced) grey picture.
pub fn quality(gray: &GrayImage) -> u8 {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    if w < super::pdq::MIN_SIDE || h < super::pdq::MIN_SIDE {
        return 0;
    }
    // Cell i covers source pixels [i * n / 64, max((i + 1) * n / 64, that + 1)).
    let span = |i: usize, n: usize| {
        let start = (i * n / QUALITY_GRID).min(n - 1);
        let end = ((i + 1) * n / QUALITY_GRID).clamp(start + 1, n);
        (start, end)
    };
    let raw = gray.as_raw();
    let mut grid = [[0f32; QUALITY_GRID]; QUALITY_GRID];
    let mut band = vec![0u32; w];
    for (gy, row) in grid.iter_mut().enumerate() {
        let (y0, y1) = span(gy, h);
        band.iter_mut().for_each(|s| *s = 0);
        for line in raw[y0 * w..y1 * w].chunks_exact(w) {
            band.iter_mut()
                .zip(line)
                .for_each(|(s, &v)| *s += u32::from(v));
        }
        for (gx, cell) in row.iter_mut().enumerate() {
            let (x0, x1) = span(gx, w);
            let sum: u64 = band[x0..x1].iter().map(|&v| u64::from(v)).sum();
            *cell = sum as f32 / ((x1 - x0) * (y1 - y0)) as f32;
        }
    }
    let step = |a: f32, b: f32| ((((a - b) * 100.0) / 255.0) as i64).abs();
    let mut gradient_sum: i64 = 0;
    for y in 0..QUALITY_GRID {
        for x in 0..QUALITY_GRID {
            if x + 1 < QUALITY_GRID {
                gradient_sum += step(grid[y][x], grid[y][x + 1]);
            }
            if y + 1 < QUALITY_GRID {
                gradient_sum += step(grid[y][x], grid[y + 1][x]);
            }
        }
    }
    (gradient_sum / 90).min(100) as u8
}

/// A content box's grey picture is box-averaged down to a shorter side of this to twice it before
/// its 64-bit hashes: these are looked up, never stored, so they need not match `image_hasher`
/// bit for bit, and a box holds one or two thirds of the Lanczos3 work of the whole picture.
pub const REGION_REDUCED_SIDE: u32 = 48;

/// Pictures whose shorter side is at least twice this are box-averaged by an integer factor
/// before the 64-bit hashes, down to a shorter side in `REDUCED_SIDE..2 * REDUCED_SIDE`.
pub const REDUCED_SIDE: u32 = 128;

/// The greyscale picture both 64-bit hashes read: composited on white (as displayed), `image`'s
/// own luma (`to_luma8`, exactly what `image_hasher` would compute), box-averaged by `k = shorter side / REDUCED_SIDE` when that is 2 or more, then
/// turned upright by `orientation`.
///
/// Why reduce: both hashes end in a Lanczos3 resize to 16x16 or 9x8, whose cost grows with the
/// input's area (about `6 W H` multiply-adds for the vertical pass); a box average is one add per
/// pixel and removes nothing those 16 samples can see. Pictures under `2 * REDUCED_SIDE` on the
/// shorter side hash exactly as `image_hasher` alone would; for larger ones the drift is
/// measured in `tests/hashing/hash_stability.rs`.
pub fn hash_input(stored: &DynamicImage, orientation: super::Dihedral) -> GrayImage {
    let (w, h) = (stored.width(), stored.height());
    // At most 255 so that `box_average`'s 32-bit column sums cannot overflow (a shorter side of
    // 32,640 pixels, far past the decode limits).
    let k = (w.min(h) / REDUCED_SIDE).clamp(1, 255);
    let gray = match (k, stored) {
        // Reduced anyway: a direct pass from RGB (integer Rec. 709 weights) saves `to_luma8`'s
        // general colour-space conversion.
        (2.., DynamicImage::ImageRgb8(rgb)) => reduce_rgb(rgb, k),
        (2.., DynamicImage::ImageLuma8(gray)) => reduce(gray, k),
        (2.., _) => reduce(&super::on_white(stored).to_luma8(), k),
        _ => super::on_white(stored).to_luma8(),
    };
    let mut picture = DynamicImage::ImageLuma8(gray);
    super::apply_dihedral(&mut picture, orientation);
    match picture {
        DynamicImage::ImageLuma8(gray) => gray,
        other => other.to_luma8(),
    }
}

/// `reduce` of the luma of an RGB picture, without the full-size grey picture in between.
fn reduce_rgb(rgb: &image::RgbImage, k: u32) -> GrayImage {
    let (w, h) = rgb.dimensions();
    let raw = rgb.as_raw();
    // Weights scaled by 2^16 (Rec. 709: 0.2126, 0.7152, 0.0722 sum to 65536).
    box_average(w, h, k, 16, |y, columns| {
        let line = &raw[(3 * y * w) as usize..(3 * (y + 1) * w) as usize];
        for (p, sum) in line.chunks_exact(3).zip(columns.iter_mut()) {
            *sum += 13933 * u32::from(p[0]) + 46871 * u32::from(p[1]) + 4732 * u32::from(p[2]);
        }
    })
}

/// Box-average `k x k` blocks (partial blocks at the right and bottom edges average what they
/// have), rounding to nearest.
pub(crate) fn reduce(gray: &GrayImage, k: u32) -> GrayImage {
    let (w, h) = gray.dimensions();
    let raw = gray.as_raw();
    box_average(w, h, k, 0, |y, columns| {
        let line = &raw[(y * w) as usize..((y + 1) * w) as usize];
        for (&v, sum) in line.iter().zip(columns.iter_mut()) {
            *sum += u32::from(v);
        }
    })
}

/// The block averages of a `w x h` picture whose row `y` `add_row` adds, pixel by pixel, into the
/// per-column sums it is given, each value scaled by `2^shift` (at most 16: a column sum of up to
/// 255 rows of `255 << 16` fits 32 bits; `k` is far smaller than that). Rows are added column by
/// column first (straight loops the compiler vectorises), and each band of `k` rows is cut into
/// blocks once: the sums are integers, so the order of additions changes nothing.
fn box_average(
    w: u32,
    h: u32,
    k: u32,
    shift: u32,
    mut add_row: impl FnMut(u32, &mut [u32]),
) -> GrayImage {
    let (out_w, out_h) = (w.div_ceil(k), h.div_ceil(k));
    let mut columns = vec![0u32; w as usize];
    let mut out = Vec::with_capacity((out_w * out_h) as usize);
    for oy in 0..out_h {
        columns.iter_mut().for_each(|s| *s = 0);
        let rows = oy * k..((oy + 1) * k).min(h);
        let row_count = rows.len() as u64;
        for y in rows {
            add_row(y, &mut columns);
        }
        for block in columns.chunks(k.max(1) as usize) {
            let s: u64 = block.iter().map(|&v| u64::from(v)).sum();
            let divisor = (row_count * block.len() as u64) << shift;
            out.push(((s + divisor / 2) / divisor) as u8);
        }
    }
    GrayImage::from_raw(out_w, out_h, out).unwrap_or_else(|| GrayImage::new(out_w, out_h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pictures_hash_exactly_as_image_hasher_alone() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(200, 150, |x, y| {
            image::Rgb([
                (x * 3 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        }));
        let p = Perceptual64::default();
        let gray = hash_input(&img, super::super::Dihedral::Original);
        assert_eq!(gray, img.to_luma8());
        assert_eq!(p.phash_gray(&gray), p.phash(&img));
        assert_eq!(p.dhash_gray(&gray), p.dhash(&img));
    }

    #[test]
    fn the_grid_route_gives_the_same_hashes_and_the_turned_hashes() {
        let p = Perceptual64::default();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bridge.jpg");
        let photo = image::open(path).expect("fixture").to_luma8();
        let pattern = GrayImage::from_fn(173, 131, |x, y| {
            image::Luma([((x * x / 3 + y * 7 + (x ^ y)) % 256) as u8])
        });
        for gray in [photo, pattern] {
            let (ph, ph_turned) = p.phash_gray_turned(&gray);
            let (dh, dh_turned) = p.dhash_gray_turned(&gray);
            // The upright hashes are exactly image_hasher's.
            assert_eq!(ph, p.phash_gray(&gray));
            assert_eq!(dh, p.dhash_gray(&gray));
            let turned = |t: super::super::Dihedral| {
                let mut turned = DynamicImage::ImageLuma8(gray.clone());
                super::super::apply_dihedral(&mut turned, t);
                turned.to_luma8()
            };
            // The turned grid stands for the turned picture up to float rounding in the
            // resampling: at most a bit or two, far inside the matching radius of 8. And the
            // turned picture is not the same picture to the hash.
            for (i, t) in PHASH_TRANSFORMS.iter().enumerate() {
                let drift = ph_turned[i].distance(&p.phash_gray(&turned(*t)));
                assert!(drift <= 2, "pHash {t:?}: {drift}");
                assert!(ph_turned[i].distance(&ph) > 8, "pHash {t:?}");
            }
            for (i, t) in GRID_TRANSFORMS.iter().enumerate() {
                let drift = dh_turned[i].distance(&p.dhash_gray(&turned(*t)));
                assert!(drift <= 2, "dHash {t:?}: {drift}");
                assert!(dh_turned[i].distance(&dh) > 8, "dHash {t:?}");
            }
        }
    }

    #[test]
    fn the_grey_lanczos3_is_imageops_resize_bit_for_bit() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bridge.jpg");
        let photo = image::open(path).expect("fixture").to_luma8();
        let noise = GrayImage::from_fn(97, 203, |x, y| {
            image::Luma([((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) >> 3) as u8])
        });
        let tiny = GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 50 + y * 20) as u8]));
        for gray in [photo, noise, tiny] {
            for (w, h) in [(16, 16), (9, 8), (8, 9), (40, 7), (200, 300)] {
                assert_eq!(
                    lanczos3_gray(&gray, w, h),
                    imageops::resize(&gray, w, h, FilterType::Lanczos3),
                    "{:?} -> {w}x{h}",
                    gray.dimensions()
                );
            }
        }
    }

    #[test]
    fn the_direct_rgb_reduction_agrees_with_reducing_image_luma() {
        let rgb = image::RgbImage::from_fn(700, 300, |x, y| {
            image::Rgb([(x % 256) as u8, ((x * y) % 256) as u8, (y % 256) as u8])
        });
        let direct = reduce_rgb(&rgb, 3);
        let via_luma = reduce(&DynamicImage::ImageRgb8(rgb).to_luma8(), 3);
        assert_eq!(direct.dimensions(), via_luma.dimensions());
        for (a, b) in direct.pixels().zip(via_luma.pixels()) {
            assert!(
                (i32::from(a[0]) - i32::from(b[0])).abs() <= 1,
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn box_reduction_averages_blocks_and_partial_edges() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(600, 257, |x, _| {
            image::Luma([if x % 2 == 0 { 100 } else { 200 }])
        }));
        // 257 / 128 = 2: 2x2 blocks, 300x129 out; the last row averages one source row.
        let gray = hash_input(&img, super::super::Dihedral::Original);
        assert_eq!(gray.dimensions(), (300, 129));
        assert!(gray.pixels().all(|p| p[0] == 150));
        let rotated = hash_input(&img, super::super::Dihedral::Rotate90);
        assert_eq!(rotated.dimensions(), (129, 300));
    }
}

//! The ad formats of issue 17 for [`super::edits`]: stickers and mosaics over the photo, the
//! shared templates ad sites and apps put every photo in (story frame, dark chat screenshot,
//! flyer, tiled watermark), collages with other photos, corner crops, a photo of a screen, and
//! colour filters (sepia, vignette, hue).
//!
//! Every template draws the same frame, text and overlay around whatever photo it is given, so
//! that two different photos in one template share everything but the photo: what a bank entry
//! made from a templated copy must not be matched on. Text is DejaVu Sans Bold (high-contrast
//! strokes, what a corner or edge detector sees in real ad text). Each function's geometry is
//! stated by a `*_rect` function the tests check against the pixels.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use rand::{Rng, rngs::StdRng};

use super::edits::{blend, draw_text_fitted, fill_rect, pad, sample_bilinear};

/// SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): a seed mixed into well-spread bits, for choices a test predicts.
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `(w, h)` scaled to fit inside `(bw, bh)`, keeping its aspect ratio (each side at least 1).
pub fn fit(w: u32, h: u32, bw: u32, bh: u32) -> (u32, u32) {
    let s = (bw as f32 / w.max(1) as f32).min(bh as f32 / h.max(1) as f32);
    (
        ((w as f32 * s).round() as u32).clamp(1, bw.max(1)),
        ((h as f32 * s).round() as u32).clamp(1, bh.max(1)),
    )
}

/// `img` resized to cover `(cw, ch)` and cropped to it about the centre.
fn cover(img: &RgbImage, cw: u32, ch: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = (cw as f32 / w.max(1) as f32).max(ch as f32 / h.max(1) as f32);
    let (rw, rh) = (
        ((w as f32 * s).ceil() as u32).max(cw),
        ((h as f32 * s).ceil() as u32).max(ch),
    );
    let big = imageops::resize(img, rw, rh, FilterType::Triangle);
    imageops::crop_imm(&big, (rw - cw) / 2, (rh - ch) / 2, cw, ch).to_image()
}

/// Fills the disc of radius `r` about `(cx, cy)` with `colour`.
fn disc(img: &mut RgbImage, cx: f32, cy: f32, r: f32, colour: [u8; 3]) {
    shape(img, cx, cy, r, colour, |dx, dy| dx * dx + dy * dy <= r * r);
}

/// Fills the pixels within `r` of `(cx, cy)` (a bounding square) for which `inside(dx, dy)`
/// holds, `dx, dy` the pixel centre's offset from `(cx, cy)`.
fn shape(
    img: &mut RgbImage,
    cx: f32,
    cy: f32,
    r: f32,
    colour: [u8; 3],
    inside: impl Fn(f32, f32) -> bool,
) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let x0 = (cx - r).floor().max(0.0) as u32;
    let y0 = (cy - r).floor().max(0.0) as u32;
    let x1 = (cx + r).ceil().min(w) as u32;
    let y1 = (cy + r).ceil().min(h) as u32;
    for y in y0..y1 {
        for x in x0..x1 {
            if inside(x as f32 + 0.5 - cx, y as f32 + 0.5 - cy) {
                img.put_pixel(x, y, Rgb(colour));
            }
        }
    }
}

/// Fills the rectangle `(x, y, w, h)` with rounded corners of radius `r`.
fn rounded_rect(img: &mut RgbImage, rect: (u32, u32, u32, u32), r: f32, colour: [u8; 3]) {
    let (x0, y0, w, h) = rect;
    for y in y0..(y0 + h).min(img.height()) {
        for x in x0..(x0 + w).min(img.width()) {
            if in_rounded(x - x0, y - y0, w, h, r) {
                img.put_pixel(x, y, Rgb(colour));
            }
        }
    }
}

/// Whether pixel `(x, y)` of a `w` x `h` box lies inside its rounded corners of radius `r`.
fn in_rounded(x: u32, y: u32, w: u32, h: u32, r: f32) -> bool {
    let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
    let cx = fx.clamp(r, (w as f32 - r).max(r));
    let cy = fy.clamp(r, (h as f32 - r).max(r));
    (fx - cx).powi(2) + (fy - cy).powi(2) <= r * r
}

/// `count` emoji-like die-cut stickers (a white disc holding a smiling face, a heart or a star),
/// each 14-22% of the shorter side, at seeded places inside the picture.
pub fn stickers(img: &RgbImage, count: u8, rng: &mut StdRng) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = img.dimensions();
    let short = w.min(h) as f32;
    for _ in 0..count {
        let size = short * rng.random_range(0.14..0.22);
        let r = size / 2.0;
        let cx = rng.random_range(r..(w as f32 - r).max(r + 1.0));
        let cy = rng.random_range(r..(h as f32 - r).max(r + 1.0));
        let kind: u8 = rng.random_range(0..3);
        disc(&mut out, cx, cy, r, [255, 255, 255]);
        let s = r * 0.84;
        match kind {
            0 => {
                // Smiling face: yellow disc, dark rim, two eyes, a smile.
                disc(&mut out, cx, cy, s, [70, 45, 0]);
                disc(&mut out, cx, cy, s * 0.92, [255, 204, 40]);
                for ex in [-0.33, 0.33] {
                    shape(
                        &mut out,
                        cx + ex * s,
                        cy - 0.22 * s,
                        s,
                        [40, 25, 0],
                        |dx, dy| (dx / (0.11 * s)).powi(2) + (dy / (0.17 * s)).powi(2) <= 1.0,
                    );
                }
                shape(&mut out, cx, cy, s, [120, 30, 10], |dx, dy| {
                    let d = (dx * dx + (dy + 0.05 * s).powi(2)).sqrt();
                    d >= 0.5 * s && d <= 0.64 * s && dy > 0.12 * s
                });
            }
            1 => {
                // Heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, y up.
                shape(&mut out, cx, cy, s, [225, 25, 60], |dx, dy| {
                    let x = dx / s * 1.25;
                    let y = -dy / s * 1.25 + 0.25;
                    (x * x + y * y - 1.0).powi(3) - x * x * y.powi(3) <= 0.0
                });
            }
            _ => {
                // Five-pointed star: inside when the angle's radius allows it.
                shape(&mut out, cx, cy, s, [255, 160, 0], |dx, dy| {
                    let a = dy.atan2(dx) + std::f32::consts::FRAC_PI_2;
                    let sector = std::f32::consts::TAU / 5.0;
                    let t = (a.rem_euclid(sector) / sector - 0.5).abs() * 2.0;
                    let limit = s * (0.42 + 0.58 * t);
                    (dx * dx + dy * dy).sqrt() <= limit
                });
            }
        }
    }
    out
}

/// The region [`mosaic`] pixelates: `(x, y, w, h)`, `fraction` of each side, at the seeded place
/// (the first two draws of `rng`).
fn mosaic_region(w: u32, h: u32, fraction: f32, rng: &mut StdRng) -> (u32, u32, u32, u32) {
    let rw = ((w as f32 * fraction).round() as u32).clamp(1, w);
    let rh = ((h as f32 * fraction).round() as u32).clamp(1, h);
    let x = rng.random_range(0..=w - rw);
    let y = rng.random_range(0..=h - rh);
    (x, y, rw, rh)
}

/// A seeded region of `fraction` of each side replaced by blocks of its own mean colour, blocks
/// of a thirtieth of the shorter side (at least 4 pixels).
pub fn mosaic(img: &RgbImage, fraction: f32, rng: &mut StdRng) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = img.dimensions();
    let (rx, ry, rw, rh) = mosaic_region(w, h, fraction, rng);
    let block = (w.min(h) / 30).max(4);
    let mut by = ry;
    while by < ry + rh {
        let bh = block.min(ry + rh - by);
        let mut bx = rx;
        while bx < rx + rw {
            let bw = block.min(rx + rw - bx);
            let mut sum = [0u64; 3];
            for y in by..by + bh {
                for x in bx..bx + bw {
                    let p = img.get_pixel(x, y);
                    for c in 0..3 {
                        sum[c] += u64::from(p[c]);
                    }
                }
            }
            let n = u64::from(bw * bh).max(1);
            let mean = [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8];
            fill_rect(&mut out, bx, by, bw, bh, mean, 1.0);
            bx += bw;
        }
        by += bh;
    }
    out
}

/// Size of the story frame.
pub const STORY_W: u32 = 720;
/// Height of the story frame (9:16).
pub const STORY_H: u32 = 1280;

/// Where a `w` x `h` photo sits in [`story_frame`]: `(x, y, width, height)`, fitted into the box
/// from (40, 250) of 640 x 900 and centred in it.
pub fn story_photo_rect(w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (pw, ph) = fit(w, h, 640, 900);
    (40 + (640 - pw) / 2, 250 + (900 - ph) / 2, pw, ph)
}

/// The photo in a 9:16 story (720x1280) over a blurred, enlarged and darkened copy of itself,
/// with a white text sticker above it and a coloured handle sticker below.
pub fn story_frame(img: &RgbImage) -> RgbImage {
    // The background: the photo covering the frame, blurred at an eighth of the size (a wide
    // blur, cheaply) and enlarged back.
    let small = cover(img, STORY_W / 8, STORY_H / 8);
    let small = imageops::blur(&small, 2.5);
    let mut out = imageops::resize(&small, STORY_W, STORY_H, FilterType::Triangle);
    for v in out.iter_mut() {
        *v = (f32::from(*v) * 0.75) as u8;
    }
    let (x, y, pw, ph) = story_photo_rect(img.width(), img.height());
    let photo = imageops::resize(img, pw, ph, FilterType::Triangle);
    imageops::replace(&mut out, &photo, i64::from(x), i64::from(y));
    rounded_rect(&mut out, (130, 100, 460, 110), 30.0, [255, 255, 255]);
    draw_text_fitted(
        &mut out,
        "NOUVELLE - DISPO",
        140,
        105,
        440,
        100,
        [10, 10, 10],
        1.0,
    );
    rounded_rect(&mut out, (190, 1170, 340, 70), 35.0, [230, 40, 120]);
    draw_text_fitted(
        &mut out,
        "@annonces.paris",
        200,
        1172,
        320,
        66,
        [255, 255, 255],
        1.0,
    );
    out
}

/// Size of the chat screenshot.
pub const CHAT_W: u32 = 720;
/// Height of the chat screenshot.
pub const CHAT_H: u32 = 1480;

/// Where a `w` x `h` photo sits in [`chat_dark`]: `(x, y, width, height)`, fitted into 460 x 620,
/// right-aligned 12 pixels from the right edge (inside its bubble), from y = 276.
pub fn chat_photo_rect(w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (pw, ph) = fit(w, h, 460, 620);
    (CHAT_W - 26 - pw, 276, pw, ph)
}

/// A dark-mode messaging app screenshot (720x1480): header with avatar and name, text bubbles,
/// the photo in a rounded outgoing bubble with the time over its corner, the input bar.
pub fn chat_dark(img: &RgbImage) -> RgbImage {
    let bg = [11, 20, 26];
    let bar = [31, 44, 52];
    let incoming = [32, 44, 51];
    let outgoing = [0, 92, 75];
    let text = [233, 237, 239];
    let mut out = RgbImage::from_pixel(CHAT_W, CHAT_H, Rgb(bg));
    fill_rect(&mut out, 0, 0, CHAT_W, 140, bar, 1.0);
    disc(&mut out, 70.0, 76.0, 38.0, [110, 120, 130]);
    draw_text_fitted(&mut out, "Julie", 125, 28, 220, 56, text, 1.0);
    draw_text_fitted(&mut out, "en ligne", 125, 84, 160, 34, [140, 150, 160], 1.0);
    rounded_rect(&mut out, (20, 168, 440, 76), 18.0, incoming);
    draw_text_fitted(
        &mut out,
        "Tu es dispo ce soir ?",
        34,
        176,
        412,
        60,
        text,
        1.0,
    );
    let (x, y, pw, ph) = chat_photo_rect(img.width(), img.height());
    rounded_rect(&mut out, (x - 6, y - 6, pw + 12, ph + 12), 20.0, outgoing);
    let photo = imageops::resize(img, pw, ph, FilterType::Triangle);
    for py in 0..ph {
        for px in 0..pw {
            if in_rounded(px, py, pw, ph, 16.0) {
                out.put_pixel(x + px, y + py, *photo.get_pixel(px, py));
            }
        }
    }
    // The time over the photo's corner, on a translucent dark pill.
    let (tx, ty) = (x + pw.saturating_sub(104), y + ph.saturating_sub(44));
    fill_rect(&mut out, tx, ty, 94, 34, [0, 0, 0], 0.35);
    draw_text_fitted(&mut out, "21:43", tx, ty, 94, 34, [255, 255, 255], 1.0);
    let below = y + ph + 40;
    rounded_rect(&mut out, (20, below, 300, 76), 18.0, incoming);
    draw_text_fitted(&mut out, "Combien ?", 34, below + 8, 272, 60, text, 1.0);
    rounded_rect(&mut out, (380, below + 100, 320, 76), 18.0, outgoing);
    draw_text_fitted(
        &mut out,
        "150 la nuit",
        394,
        below + 108,
        292,
        60,
        text,
        1.0,
    );
    rounded_rect(&mut out, (12, CHAT_H - 92, 600, 76), 38.0, bar);
    draw_text_fitted(
        &mut out,
        "Message",
        40,
        CHAT_H - 84,
        180,
        60,
        [140, 150, 160],
        1.0,
    );
    disc(&mut out, 664.0, (CHAT_H - 54) as f32, 38.0, [0, 168, 132]);
    out
}

/// Size of the flyer.
pub const FLYER_W: u32 = 1000;
/// Height of the flyer.
pub const FLYER_H: u32 = 700;
/// The flyer's background colour.
pub const FLYER_COLOUR: [u8; 3] = [176, 18, 96];

/// Where a `w` x `h` photo sits in [`flyer`]: `(x, y, width, height)`, fitted into the box from
/// (40, 60) of 500 x 580 and centred in it.
pub fn flyer_photo_rect(w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (pw, ph) = fit(w, h, 500, 580);
    (40 + (500 - pw) / 2, 60 + (580 - ph) / 2, pw, ph)
}

/// A flyer (1000x700): the photo in a white frame on the left, large text lines on a magenta
/// background on the right.
pub fn flyer(img: &RgbImage) -> RgbImage {
    let mut out = RgbImage::from_pixel(FLYER_W, FLYER_H, Rgb(FLYER_COLOUR));
    let (x, y, pw, ph) = flyer_photo_rect(img.width(), img.height());
    fill_rect(
        &mut out,
        x - 8,
        y - 8,
        pw + 16,
        ph + 16,
        [255, 255, 255],
        1.0,
    );
    let photo = imageops::resize(img, pw, ph, FilterType::Triangle);
    imageops::replace(&mut out, &photo, i64::from(x), i64::from(y));
    let yellow = [255, 226, 0];
    let white = [255, 255, 255];
    for (line, top, height, colour) in [
        ("NOUVELLE", 70, 120, white),
        ("100% REELLE", 200, 80, yellow),
        ("06 12 34 56 78", 310, 90, white),
        ("PARIS 11e", 420, 80, white),
        ("7j/7 - 24h/24", 530, 70, yellow),
    ] {
        draw_text_fitted(&mut out, line, 570, top, 400, height, colour, 1.0);
    }
    out
}

/// The text [`tiled_watermark`] repeats.
pub const TILED_TEXT: &str = "HOT-ADS.example";

/// [`TILED_TEXT`] tiled over the picture in rows turned 30 degrees (counter-clockwise), white at
/// 45% opacity over a dark shadow 2 pixels down-right at 30%; each tile is 40% of the longer
/// side wide.
pub fn tiled_watermark(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let tw = ((w.max(h) as f32 * 0.4) as u32).max(60);
    let th = (tw / 6).max(10);
    let mut mask = RgbImage::new(tw, th);
    draw_text_fitted(&mut mask, TILED_TEXT, 0, 0, tw, th, [255, 255, 255], 1.0);
    let (period_x, period_y) = (tw as f32 * 1.2, th as f32 * 2.8);
    let (s, c) = (-30f32).to_radians().sin_cos();
    let coverage = |x: f32, y: f32| -> f32 {
        let u = c * x + s * y;
        let v = -s * x + c * y;
        let row = (v / period_y).floor();
        let tu = (u + row * period_x / 2.0).rem_euclid(period_x);
        let tv = v.rem_euclid(period_y);
        if tu < tw as f32 && tv < th as f32 {
            f32::from(mask.get_pixel(tu as u32, tv as u32)[0]) / 255.0
        } else {
            0.0
        }
    };
    let mut out = img.clone();
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            let shadow = coverage(fx - 2.0, fy - 2.0);
            let text = coverage(fx, fy);
            let p = out.get_pixel_mut(x, y);
            if shadow > 0.0 {
                blend(p, [0, 0, 0], 0.3 * shadow);
            }
            if text > 0.0 {
                blend(p, [255, 255, 255], 0.45 * text);
            }
        }
    }
    out
}

/// The cell (0-based, row by row) a collage of `cells` puts the photo in, from the seed.
pub fn collage_photo_cell(seed: u64, cells: u8) -> usize {
    (mix(seed) % u64::from(cells.max(1))) as usize
}

/// Gutter between collage cells and around them, in pixels.
pub const COLLAGE_GUTTER: u32 = 8;

/// Cell `cell` of a collage of `cells` (2: side by side; otherwise 2x2) made for a `w` x `h`
/// photo: `(x, y, width, height)`. Every cell is the photo's size scaled so its longer side is
/// 512 pixels, with [`COLLAGE_GUTTER`] white pixels between and around cells.
pub fn collage_cell_rect(cells: u8, cell: usize, w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (cw, ch) = fit(w, h, 512, 512);
    let g = COLLAGE_GUTTER;
    let (col, row) = if cells == 2 {
        (cell as u32 % 2, 0)
    } else {
        (cell as u32 % 2, cell as u32 / 2 % 2)
    };
    (g + col * (cw + g), g + row * (ch + g), cw, ch)
}

/// The photo in its cell ([`collage_photo_cell`], [`collage_cell_rect`]) of a collage, the other
/// cells filled with `others` (each cropped to the cell; chosen from the seed), or mid-grey when
/// there are none.
pub fn collage(img: &RgbImage, cells: u8, seed: u64, others: &[&RgbImage]) -> RgbImage {
    let cells = if cells == 2 { 2 } else { 4 };
    let (w, h) = img.dimensions();
    let (_, _, cw, ch) = collage_cell_rect(cells, 0, w, h);
    let g = COLLAGE_GUTTER;
    let rows = if cells == 2 { 1 } else { 2 };
    let mut out = RgbImage::from_pixel(2 * cw + 3 * g, rows * ch + (rows + 1) * g, Rgb([255; 3]));
    let mine = collage_photo_cell(seed, cells);
    for cell in 0..cells as usize {
        let (x, y, _, _) = collage_cell_rect(cells, cell, w, h);
        let tile = if cell == mine {
            imageops::resize(img, cw, ch, FilterType::Triangle)
        } else if others.is_empty() {
            RgbImage::from_pixel(cw, ch, Rgb([128; 3]))
        } else {
            let pick = mix(seed ^ (0xC0_11A6E + cell as u64)) % others.len() as u64;
            cover(others[pick as usize], cw, ch)
        };
        imageops::replace(&mut out, &tile, i64::from(x), i64::from(y));
    }
    out
}

/// A corner of the picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corner {
    /// Top left.
    TopLeft,
    /// Top right.
    TopRight,
    /// Bottom left.
    BottomLeft,
    /// Bottom right.
    BottomRight,
}

/// The corner [`crop_corner_keep`] keeps, from the seed.
pub fn crop_corner(seed: u64) -> Corner {
    match mix(seed ^ 0xC0_4E4) % 4 {
        0 => Corner::TopLeft,
        1 => Corner::TopRight,
        2 => Corner::BottomLeft,
        _ => Corner::BottomRight,
    }
}

/// The window [`crop_corner_keep`] keeps of a `w` x `h` picture: `(x, y, width, height)`,
/// `keep` of each side (rounded) against `corner`.
pub fn crop_corner_rect(w: u32, h: u32, keep: f32, corner: Corner) -> (u32, u32, u32, u32) {
    let kw = ((w as f32 * keep).round() as u32).clamp(1, w.max(1));
    let kh = ((h as f32 * keep).round() as u32).clamp(1, h.max(1));
    let x = match corner {
        Corner::TopLeft | Corner::BottomLeft => 0,
        _ => w - kw,
    };
    let y = match corner {
        Corner::TopLeft | Corner::TopRight => 0,
        _ => h - kh,
    };
    (x, y, kw, kh)
}

/// `keep` of each side of the picture from the seeded corner ([`crop_corner`]).
pub fn crop_corner_keep(img: &RgbImage, keep: f32, seed: u64) -> RgbImage {
    let (x, y, w, h) = crop_corner_rect(img.width(), img.height(), keep, crop_corner(seed));
    imageops::crop_imm(img, x, y, w, h).to_image()
}

/// The homography taking each `from[i]` to `to[i]` (four points, no three on a line): the
/// 3x3 matrix with its last entry 1, by the direct linear transform (Hartley and Zisserman,
/// "Multiple View Geometry", 2nd ed., section 4.1) solved by Gaussian elimination. `None` when
/// the points are degenerate.
pub fn homography(from: [(f64, f64); 4], to: [(f64, f64); 4]) -> Option<[f64; 9]> {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let ((x, y), (u, v)) = (from[i], to[i]);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        for row in 0..8 {
            if row != col {
                let f = a[row][col] / a[col][col];
                let pivot_row = a[col];
                for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut hm = [0f64; 9];
    for i in 0..8 {
        hm[i] = a[i][8] / a[i][i];
    }
    hm[8] = 1.0;
    Some(hm)
}

/// Applies homography `hm` to `(x, y)`.
pub fn project(hm: &[f64; 9], x: f64, y: f64) -> (f64, f64) {
    let d = hm[6] * x + hm[7] * y + hm[8];
    (
        (hm[0] * x + hm[1] * y + hm[2]) / d,
        (hm[3] * x + hm[4] * y + hm[5]) / d,
    )
}

/// Where [`screen_photo`] puts the monitor's four corners (top left, top right, bottom right,
/// bottom left), as fractions of the output's width and height.
pub const SCREEN_QUAD: [(f64, f64); 4] = [(0.09, 0.10), (0.90, 0.05), (0.93, 0.90), (0.07, 0.84)];

/// The picture on a monitor photographed at an angle: scaled to 640 pixels on its longer side,
/// lifted blacks and a glare band as a screen shows it, a 22-pixel dark bezel, warped onto
/// [`SCREEN_QUAD`] of a 900x675 (or 675x900 for a portrait picture) wall, then camera blur
/// (sigma 0.9 px) and seeded noise (sigma 4).
pub fn screen_photo(img: &RgbImage, rng: &mut StdRng) -> RgbImage {
    let (w, h) = img.dimensions();
    let (pw, ph) = fit(w, h, 640, 640);
    let mut screen = imageops::resize(img, pw, ph, FilterType::Triangle);
    for (x, y, p) in screen.enumerate_pixels_mut() {
        let t = x as f32 / pw as f32 - y as f32 / ph as f32 - 0.2;
        let glare = 45.0 * (1.0 - t.abs() / 0.18).max(0.0);
        for c in 0..3 {
            p[c] = (18.0 + f32::from(p[c]) * 0.88 + glare).min(255.0) as u8;
        }
    }
    let monitor = pad(&screen, 22, 22, 22, 22, [18, 18, 20]);
    let (mw, mh) = (f64::from(monitor.width()), f64::from(monitor.height()));
    let (ow, oh) = if w >= h { (900u32, 675u32) } else { (675, 900) };
    let quad = SCREEN_QUAD.map(|(fx, fy)| (fx * f64::from(ow), fy * f64::from(oh)));
    let corners = [(0.0, 0.0), (mw, 0.0), (mw, mh), (0.0, mh)];
    let mut out = RgbImage::from_fn(ow, oh, |_, y| {
        let t = y as f32 / oh as f32;
        Rgb([
            (172.0 - 50.0 * t) as u8,
            (162.0 - 50.0 * t) as u8,
            (150.0 - 48.0 * t) as u8,
        ])
    });
    if let Some(hm) = homography(quad, corners) {
        for (x, y, p) in out.enumerate_pixels_mut() {
            let (sx, sy) = project(&hm, f64::from(x) + 0.5, f64::from(y) + 0.5);
            if let Some(v) = sample_bilinear(&monitor, sx as f32 - 0.5, sy as f32 - 0.5) {
                *p = v;
            }
        }
    }
    let mut out = imageops::blur(&out, 0.9);
    for v in out.iter_mut() {
        let u1: f32 = rng.random_range(f32::EPSILON..1.0);
        let u2: f32 = rng.random();
        let n = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        *v = (f32::from(*v) + 4.0 * n).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// The sepia tone (the matrix Microsoft published for it, which photo apps copy).
pub fn sepia(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
        let m =
            |a: f32, bb: f32, cc: f32| (a * r + bb * g + cc * b).round().clamp(0.0, 255.0) as u8;
        *p = Rgb([
            m(0.393, 0.769, 0.189),
            m(0.349, 0.686, 0.168),
            m(0.272, 0.534, 0.131),
        ]);
    }
    out
}

/// Darkened corners: each pixel times `1 - strength * d^2`, `d` its distance from the centre
/// over the centre-to-corner distance (0 at the centre, 1 at a corner).
pub fn vignette(img: &RgbImage, strength: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let r2 = (cx * cx + cy * cy).max(1.0);
    let mut out = img.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let f = (1.0 - strength * (dx * dx + dy * dy) / r2).max(0.0);
        for c in 0..3 {
            p[c] = (f32::from(p[c]) * f).round() as u8;
        }
    }
    out
}

/// Hue turned by `degrees` in HSV (saturation and value kept).
pub fn hue_shift(img: &RgbImage, degrees: f32) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let (r, g, b) = (
            f32::from(p[0]) / 255.0,
            f32::from(p[1]) / 255.0,
            f32::from(p[2]) / 255.0,
        );
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        if d <= 0.0 {
            continue;
        }
        let hue = if max == r {
            60.0 * ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / d + 2.0)
        } else {
            60.0 * ((r - g) / d + 4.0)
        };
        let hue = (hue + degrees).rem_euclid(360.0);
        let (v, s) = (max, d / max);
        let c = v * s;
        let x = c * (1.0 - ((hue / 60.0).rem_euclid(2.0) - 1.0).abs());
        let (r1, g1, b1) = match (hue / 60.0) as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = v - c;
        let to = |v: f32| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
        *p = Rgb([to(r1), to(g1), to(b1)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::edits::{Edit, Encoding, Op, catalogue};
    use super::*;
    use rand::SeedableRng;

    /// A picture whose every pixel differs from its neighbours' (so a misplaced copy shows).
    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) % 97) as u8,
            ])
        })
    }

    fn render(op: Op, img: &RgbImage, others: &[&RgbImage], seed: u64) -> RgbImage {
        Edit {
            name: "t",
            ops: vec![op],
            encoding: Encoding::Png,
        }
        .render_with(img, others, seed)
    }

    /// Mean absolute difference per channel between `img`'s `rect` and `expected` (same size).
    fn diff_at(img: &RgbImage, rect: (u32, u32, u32, u32), expected: &RgbImage) -> f64 {
        let (x0, y0, w, h) = rect;
        assert_eq!(expected.dimensions(), (w, h));
        let mut sum = 0u64;
        for y in 0..h {
            for x in 0..w {
                let a = img.get_pixel(x0 + x, y0 + y);
                let b = expected.get_pixel(x, y);
                for c in 0..3 {
                    sum += u64::from(a[c].abs_diff(b[c]));
                }
            }
        }
        sum as f64 / f64::from(w * h * 3)
    }

    fn resized(img: &RgbImage, rect: (u32, u32, u32, u32)) -> RgbImage {
        imageops::resize(img, rect.2, rect.3, FilterType::Triangle)
    }

    #[test]
    fn a_collage_cell_holds_the_photo_and_the_others_hold_other_photos() {
        let photo = gradient(400, 300);
        let red = RgbImage::from_pixel(300, 300, Rgb([220, 0, 0]));
        let blue = RgbImage::from_pixel(500, 200, Rgb([0, 0, 220]));
        for (cells, seeds) in [(4u8, 0..12u64), (2, 0..6)] {
            let mut cells_seen = std::collections::BTreeSet::new();
            for seed in seeds {
                let out = render(Op::Collage { cells }, &photo, &[&red, &blue], seed);
                let mine = collage_photo_cell(seed, cells);
                cells_seen.insert(mine);
                let rect = collage_cell_rect(cells, mine, 400, 300);
                assert_eq!(
                    (rect.2, rect.3),
                    (512, 384),
                    "cells are the photo at 512 px"
                );
                let g = COLLAGE_GUTTER;
                let rows = if cells == 2 { 1 } else { 2 };
                assert_eq!(
                    out.dimensions(),
                    (2 * 512 + 3 * g, rows * 384 + (rows + 1) * g)
                );
                assert!(diff_at(&out, rect, &resized(&photo, rect)) < 0.5);
                for other in (0..cells as usize).filter(|c| *c != mine) {
                    let (x, y, w, h) = collage_cell_rect(cells, other, 400, 300);
                    let p = out.get_pixel(x + w / 2, y + h / 2);
                    assert!(
                        *p == Rgb([220, 0, 0]) || *p == Rgb([0, 0, 220]),
                        "cell {other} holds another photo: {p:?}"
                    );
                }
                // The gutter is white.
                assert_eq!(*out.get_pixel(g / 2, g / 2), Rgb([255, 255, 255]));
            }
            assert_eq!(
                cells_seen.len(),
                cells as usize,
                "the seed moves the photo to every cell"
            );
        }
    }

    #[test]
    fn a_corner_crop_keeps_the_stated_fraction_from_the_seeded_corner() {
        let img = gradient(400, 300);
        let mut corners = Vec::new();
        for seed in 0..16u64 {
            let out = render(Op::CropCorner { keep: 0.6 }, &img, &[], seed);
            assert_eq!(out.dimensions(), (240, 180));
            let corner = crop_corner(seed);
            corners.push(corner);
            let (x, y, w, h) = crop_corner_rect(400, 300, 0.6, corner);
            assert_eq!((w, h), (240, 180));
            match corner {
                Corner::TopLeft => assert_eq!((x, y), (0, 0)),
                Corner::TopRight => assert_eq!((x, y), (160, 0)),
                Corner::BottomLeft => assert_eq!((x, y), (0, 120)),
                Corner::BottomRight => assert_eq!((x, y), (160, 120)),
            }
            assert_eq!(out.get_pixel(0, 0), img.get_pixel(x, y));
            assert_eq!(out.get_pixel(239, 179), img.get_pixel(x + 239, y + 179));
        }
        for c in [
            Corner::TopLeft,
            Corner::TopRight,
            Corner::BottomLeft,
            Corner::BottomRight,
        ] {
            assert!(corners.contains(&c), "{c:?} never chosen");
        }
        // The 70% off-centre crop of the catalogue keeps 70% of each side, not centred.
        let e = catalogue()
            .into_iter()
            .find(|e| e.name == "crop_70pc_offcentre")
            .unwrap();
        let out = e.render(&img, 1);
        assert_eq!(out.dimensions(), (280, 210));
        assert_ne!(out.get_pixel(0, 0), img.get_pixel(60, 45), "off-centre");
    }

    #[test]
    fn the_story_frame_shows_the_whole_photo_over_its_blurred_copy_with_a_text_sticker() {
        let photo = gradient(400, 300);
        let out = render(Op::StoryFrame, &photo, &[], 1);
        assert_eq!(out.dimensions(), (STORY_W, STORY_H));
        let rect = story_photo_rect(400, 300);
        assert_eq!(rect, (40, 460, 640, 480));
        assert!(diff_at(&out, rect, &resized(&photo, rect)) < 0.5);
        // Background: darker than the photo, and not flat (the blurred copy).
        let top = out.get_pixel(20, 300);
        let bottom = out.get_pixel(700, 1100);
        assert_ne!(top, bottom);
        // The sticker: white with dark text strokes.
        let sticker: Vec<_> = (105..205)
            .flat_map(|y| (140..580).map(move |x| (x, y)))
            .map(|(x, y)| out.get_pixel(x, y)[0])
            .collect();
        let white = sticker.iter().filter(|v| **v > 240).count();
        let dark = sticker.iter().filter(|v| **v < 40).count();
        assert!(
            white > sticker.len() / 3 && dark > sticker.len() / 20,
            "{white} {dark}"
        );
    }

    #[test]
    fn the_dark_chat_puts_the_photo_in_a_rounded_bubble() {
        let photo = gradient(300, 400);
        let out = render(Op::ChatDark, &photo, &[], 1);
        assert_eq!(out.dimensions(), (CHAT_W, CHAT_H));
        let (x, y, w, h) = chat_photo_rect(300, 400);
        assert_eq!((w, h), (460, 613));
        let expected = resized(&photo, (x, y, w, h));
        // The middle of the photo is the photo; its corner is rounded off into the bubble.
        let inner = (x + 40, y + 40, w - 80, h / 2);
        let sub = imageops::crop_imm(&expected, 40, 40, w - 80, h / 2).to_image();
        assert!(diff_at(&out, inner, &sub) < 0.5);
        assert_eq!(*out.get_pixel(x, y), Rgb([0, 92, 75]));
        // Dark mode: the page is dark, its text light.
        assert_eq!(*out.get_pixel(5, 700), Rgb([11, 20, 26]));
        assert!((176..236).any(|yy| (34..446).any(|xx| out.get_pixel(xx, yy)[0] > 200)));
    }

    #[test]
    fn the_flyer_puts_the_photo_beside_large_text_on_colour() {
        let photo = gradient(400, 300);
        let out = render(Op::Flyer, &photo, &[], 1);
        assert_eq!(out.dimensions(), (FLYER_W, FLYER_H));
        let rect = flyer_photo_rect(400, 300);
        assert_eq!(rect, (40, 162, 500, 375));
        assert!(diff_at(&out, rect, &resized(&photo, rect)) < 0.5);
        assert_eq!(*out.get_pixel(990, 5), Rgb(FLYER_COLOUR));
        // The text panel: white and yellow strokes on the background, a good share of it.
        let panel: Vec<_> = (70..600)
            .flat_map(|y| (570..970).map(move |x| (x, y)))
            .map(|(x, y)| *out.get_pixel(x, y))
            .collect();
        let strokes = panel.iter().filter(|p| p[1] > 200).count();
        assert!(strokes > panel.len() / 12, "{strokes} of {}", panel.len());
    }

    #[test]
    fn the_tiled_watermark_covers_the_whole_picture() {
        let img = RgbImage::from_pixel(600, 400, Rgb([100, 100, 100]));
        let out = render(Op::TiledWatermark, &img, &[], 1);
        assert_eq!(out.dimensions(), (600, 400));
        for (qx, qy) in [(0, 0), (300, 0), (0, 200), (300, 200)] {
            let lighter = (qy..qy + 200)
                .flat_map(|y| (qx..qx + 300).map(move |x| (x, y)))
                .filter(|&(x, y)| out.get_pixel(x, y)[0] > 150)
                .count();
            let darker = (qy..qy + 200)
                .flat_map(|y| (qx..qx + 300).map(move |x| (x, y)))
                .filter(|&(x, y)| out.get_pixel(x, y)[0] < 85)
                .count();
            assert!(
                lighter > 300 && darker > 100,
                "quadrant ({qx}, {qy}): {lighter} {darker}"
            );
        }
        let changed = out.pixels().filter(|p| p[0] != 100).count();
        assert!(
            changed < 600 * 400 / 2,
            "the picture still shows: {changed}"
        );
    }

    #[test]
    fn stickers_and_mosaic_cover_seeded_parts_of_the_picture() {
        let img = gradient(400, 300);
        let s1 = render(Op::Stickers { count: 4 }, &img, &[], 3);
        assert_eq!(s1, render(Op::Stickers { count: 4 }, &img, &[], 3));
        assert_ne!(s1, render(Op::Stickers { count: 4 }, &img, &[], 4));
        let covered = s1
            .pixels()
            .zip(img.pixels())
            .filter(|(a, b)| a != b)
            .count();
        let total = 400 * 300;
        assert!(covered > total / 25 && covered < total / 2, "{covered}");
        let m = render(Op::Mosaic { fraction: 0.3 }, &img, &[], 3);
        let mut rng = StdRng::seed_from_u64(3);
        let (rx, ry, rw, rh) = mosaic_region(400, 300, 0.3, &mut rng);
        assert_eq!((rw, rh), (120, 90));
        // Outside the region nothing changed; inside, blocks of 10 pixels are flat.
        for (x, y, p) in m.enumerate_pixels() {
            let inside = (rx..rx + rw).contains(&x) && (ry..ry + rh).contains(&y);
            if !inside {
                assert_eq!(p, img.get_pixel(x, y));
            }
        }
        let block = |x: u32, y: u32| *m.get_pixel(rx + x, ry + y);
        assert_eq!(block(0, 0), block(9, 9));
        assert_ne!(block(0, 0), block(10, 0));
    }

    #[test]
    fn turns_of_8_and_15_degrees_crop_to_picture_or_keep_a_white_canvas() {
        let img = gradient(400, 300);
        for degrees in [8.0f32, -15.0] {
            let cropped = render(
                Op::RotateSmall {
                    degrees,
                    fill_corners: false,
                },
                &img,
                &[],
                1,
            );
            let (w, h) = cropped.dimensions();
            for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
                assert_ne!(*cropped.get_pixel(x, y), Rgb([255, 255, 255]), "{degrees}");
            }
            let canvas = render(
                Op::RotateSmall {
                    degrees,
                    fill_corners: true,
                },
                &img,
                &[],
                1,
            );
            let (s, c) = degrees.abs().to_radians().sin_cos();
            assert_eq!(canvas.width(), (400.0 * c + 300.0 * s).round() as u32);
            assert_eq!(*canvas.get_pixel(0, 0), Rgb([255, 255, 255]));
        }
    }

    #[test]
    fn the_screen_photo_warps_the_picture_onto_the_quad() {
        let img = RgbImage::from_pixel(400, 300, Rgb([200, 40, 40]));
        let out = render(Op::ScreenPhoto, &img, &[], 1);
        assert_eq!(out.dimensions(), (900, 675));
        // The monitor is the 640x480 screen plus a 22-pixel bezel: its centre lands at the
        // homography's image of the monitor's centre, showing the screen's lifted red.
        let corners = [(0.0, 0.0), (684.0, 0.0), (684.0, 524.0), (0.0, 524.0)];
        let quad = SCREEN_QUAD.map(|(fx, fy)| (fx * 900.0, fy * 675.0));
        let hm = homography(corners, quad).unwrap();
        let (cx, cy) = project(&hm, 342.0, 262.0);
        let p = out.get_pixel(cx as u32, cy as u32);
        assert!(p[0].abs_diff(194) < 16 && p[1].abs_diff(53) < 16, "{p:?}");
        // Outside the quad: the wall.
        let wall = out.get_pixel(10, 600);
        assert!(
            wall[0] > 100 && wall[0] < 160 && wall[0] > wall[2],
            "{wall:?}"
        );
        for (i, &(x, y)) in corners.iter().enumerate() {
            let (u, v) = project(&hm, x, y);
            assert!((u - quad[i].0).abs() < 1e-6 && (v - quad[i].1).abs() < 1e-6);
        }
    }

    #[test]
    fn colour_filters_and_thumbnails() {
        let grey = RgbImage::from_pixel(200, 100, Rgb([128, 128, 128]));
        let s = render(Op::Sepia, &grey, &[], 1);
        let p = s.get_pixel(0, 0);
        assert!(p[0] > p[1] && p[1] > p[2], "{p:?}");
        let v = render(Op::Vignette(0.8), &grey, &[], 1);
        assert!(v.get_pixel(100, 50)[0] >= 127);
        assert!(v.get_pixel(0, 0)[0] < 35, "{:?}", v.get_pixel(0, 0));
        let red = RgbImage::from_pixel(10, 10, Rgb([255, 0, 0]));
        assert_eq!(
            *render(Op::HueShift(90.0), &red, &[], 1).get_pixel(0, 0),
            Rgb([128, 255, 0])
        );
        assert_eq!(
            *render(Op::Darken(0.35), &grey, &[], 1).get_pixel(0, 0),
            Rgb([45, 45, 45])
        );
        let t = render(Op::FitLongest(160), &gradient(400, 300), &[], 1);
        assert_eq!(t.dimensions(), (160, 120));
        let jpeg = catalogue()
            .into_iter()
            .find(|e| e.name == "jpeg_q6")
            .unwrap();
        assert!(matches!(jpeg.encoding, Encoding::Jpeg(q) if q < 10));
    }

    #[test]
    fn templates_are_named_and_every_template_draws_the_same_frame() {
        let names: Vec<_> = catalogue()
            .iter()
            .filter(|e| e.ops.len() == 1)
            .filter_map(|e| e.template())
            .collect();
        assert_eq!(
            names,
            vec![
                "screenshot",
                "story_frame",
                "chat_dark",
                "flyer",
                "tiled_watermark"
            ]
        );
        // Two different photos in the flyer share every pixel outside the photo's box.
        let a = render(Op::Flyer, &gradient(400, 300), &[], 1);
        let b = render(
            Op::Flyer,
            &RgbImage::from_pixel(400, 300, Rgb([9, 200, 9])),
            &[],
            2,
        );
        let (x, y, w, h) = flyer_photo_rect(400, 300);
        for (px, py, p) in a.enumerate_pixels() {
            if !(x..x + w).contains(&px) || !(y..y + h).contains(&py) {
                assert_eq!(p, b.get_pixel(px, py));
            }
        }
    }
}

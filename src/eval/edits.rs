//! Edited copies of a picture, as reposted ads come back: recompressed, resized, cropped, turned,
//! framed, stamped with text, recoloured, or shown inside an app screenshot.
//!
//! An [`Edit`] is a list of pixel [`Op`]s followed by an encoding; [`Edit::render`] gives the
//! pixels (what the geometry tests look at) and [`Edit::apply`] the encoded bytes the harness
//! screens. Every random choice (noise) comes from a seed, so a run is reproducible.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::imageops::{self, FilterType};
use image::{ImageEncoder, Rgb, RgbImage};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::templates;

/// How the edited pixels are written out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// Baseline JPEG at this quality (1..=100), by the `image` crate's encoder.
    Jpeg(u8),
    /// Lossy WebP at this quality (0..=100).
    Webp(f32),
    /// Lossless PNG (fast compression, adaptive filter).
    Png,
}

/// One pixel operation. Fractions are of the picture's current width or height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// Resize both sides by this factor.
    Scale(f32),
    /// Resize width and height by different factors.
    Stretch {
        /// Factor on the width (1.3 makes it 30% wider).
        x: f32,
        /// Factor on the height.
        y: f32,
    },
    /// Keep the window left after cutting these fractions off each side.
    Crop {
        /// Fraction of the width cut off the left.
        left: f32,
        /// Fraction of the height cut off the top.
        top: f32,
        /// Fraction of the width cut off the right.
        right: f32,
        /// Fraction of the height cut off the bottom.
        bottom: f32,
    },
    /// Left-right mirror.
    Mirror,
    /// Turn 90 degrees clockwise.
    Rotate90,
    /// Turn 180 degrees.
    Rotate180,
    /// Rotate by a few degrees (clockwise) about the centre; `fill_corners` keeps the whole picture
    /// on a larger white canvas, otherwise the largest upright window inside is kept.
    RotateSmall {
        /// The turn in degrees, clockwise when positive.
        degrees: f32,
        /// Keep the whole turned picture on a white canvas (true) or crop to the upright window
        /// inside it (false).
        fill_corners: bool,
    },
    /// A uniform border of `fraction` of the longer side on every side.
    Border {
        /// Border width as a fraction of the longer side (0.1 is 10%).
        fraction: f32,
        /// Border colour, RGB.
        colour: [u8; 3],
    },
    /// Black bars that make the picture fill a canvas of this width:height ratio.
    Letterbox {
        /// Canvas width divided by height (16/9 adds bars above and below a square picture).
        aspect: f32,
    },
    /// A coloured band across the picture with a phone number on it.
    PhoneBanner,
    /// A white strip added under the picture with a line of caption text.
    Caption,
    /// Large semi-transparent text across the middle.
    Watermark,
    /// Add this to every channel.
    Brightness(i32),
    /// Scale the distance from mid-grey.
    Contrast(f32),
    /// Scale the distance of each channel from the pixel's luma.
    Saturation(f32),
    /// Every pixel set to its BT.601 luma on all three channels.
    Greyscale,
    /// Gaussian blur, sigma as a fraction of the longer side.
    Blur(f32),
    /// Gaussian noise of this standard deviation (0..255 scale).
    Noise(f32),
    /// The picture inside a phone app screenshot: status bar, app bar, listing text, nav bar.
    Screenshot,
    /// Emoji-like stickers (faces, hearts, stars) pasted over parts of the picture: `count` of
    /// them, each 14-22% of the shorter side, at seeded places.
    Stickers {
        /// How many stickers.
        count: u8,
    },
    /// A region of `fraction` of each side, at a seeded place, pixelated into blocks of a
    /// thirtieth of the picture's shorter side (a face or a phone number hidden).
    Mosaic {
        /// The region's width and height as fractions of the picture's.
        fraction: f32,
    },
    /// The photo in a 9:16 story frame (720x1280) over a blurred, enlarged, darkened copy of
    /// itself, with a text sticker above it ([`super::templates::story_photo_rect`]). A template.
    StoryFrame,
    /// A dark-mode chat screenshot (720x1480) with the photo in a rounded bubble among text
    /// bubbles ([`super::templates::chat_photo_rect`]). A template.
    ChatDark,
    /// A flyer (1000x700): the photo on the left, large text on a coloured background on the
    /// right ([`super::templates::flyer_photo_rect`]). A template.
    Flyer,
    /// A text watermark tiled diagonally over the whole picture (white strokes with a dark
    /// shadow, 40% opaque). A template.
    TiledWatermark,
    /// The photo in one cell of a collage with other photos (the harness's unbanked photos):
    /// `cells` 2 (side by side) or 4 (2x2); the cell from [`super::templates::collage_photo_cell`]
    /// ([`super::templates::collage_cell_rect`]).
    Collage {
        /// 2 or 4 cells.
        cells: u8,
    },
    /// Keep `keep` of each side from one corner (the corner from
    /// [`super::templates::crop_corner`]).
    CropCorner {
        /// Fraction of each side kept (0.6 keeps 60% of the width and 60% of the height).
        keep: f32,
    },
    /// The picture shown on a monitor, photographed at an angle: bezel, glare, a perspective
    /// warp onto a wall, camera blur and noise ([`super::templates::screen_photo`]).
    ScreenPhoto,
    /// Resize so that the longer side is this many pixels (a thumbnail).
    FitLongest(u32),
    /// The sepia tone matrix (Microsoft's, as photo apps use it).
    Sepia,
    /// Darkened corners: each pixel times `1 - strength * d^2`, `d` its distance from the centre
    /// over the centre-to-corner distance.
    Vignette(f32),
    /// Hue turned by this many degrees (HSV), saturation and value kept.
    HueShift(f32),
    /// Every channel multiplied by this factor (0.4 keeps 40% of the light).
    Darken(f32),
}

/// The edits of the first harness (2026-11-28), in catalogue order: their recall stays listed and
/// comparable as the catalogue grows.
pub const ORIGINAL_EDITS: [&str; 35] = [
    "jpeg_q15",
    "webp_q15",
    "downscale_quarter",
    "upscale_2x",
    "aspect_wide_1.3",
    "aspect_tall_1.25",
    "crop_5pc_sides",
    "crop_11pc_sides",
    "crop_15pc_offcentre",
    "crop_20pc_top",
    "crop_25pc_offcentre",
    "mirror",
    "rotate_90",
    "rotate_180",
    "rotate_2deg_fill",
    "rotate_5deg_crop",
    "border_white_8pc",
    "border_red_4pc",
    "letterbox_16_9",
    "pillarbox_9_16",
    "phone_banner",
    "caption",
    "watermark",
    "brightness_+45",
    "contrast_0.6",
    "saturation_1.8",
    "greyscale",
    "blur",
    "noise_15",
    "screenshot",
    "combo_crop_scale_jpeg",
    "combo_mirror_banner_webp",
    "combo_border_bright_jpeg",
    "combo_screenshot_jpeg",
    "combo_rotate_caption",
];

/// A named edit.
#[derive(Clone, Debug)]
pub struct Edit {
    /// Short snake_case name, as the report prints it (e.g. `crop_5pc_sides`).
    pub name: &'static str,
    /// Pixel operations, applied in order.
    pub ops: Vec<Op>,
    /// How the result is written out.
    pub encoding: Encoding,
}

/// Why an edited copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The encoder failed; its message.
    #[error("encoding the edited picture: {0}")]
    Encode(String),
    /// The operations left a picture of zero width or height.
    #[error("the edit leaves an empty picture")]
    Empty,
}

const HIGH_JPEG: Encoding = Encoding::Jpeg(90);

fn edit(name: &'static str, ops: Vec<Op>, encoding: Encoding) -> Edit {
    Edit {
        name,
        ops,
        encoding,
    }
}

/// The edits `vigie eval` makes of every picture.
pub fn catalogue() -> Vec<Edit> {
    use Op::*;
    let crop = |left, top, right, bottom| Crop {
        left,
        top,
        right,
        bottom,
    };
    vec![
        edit("jpeg_q15", vec![], Encoding::Jpeg(15)),
        edit("webp_q15", vec![], Encoding::Webp(15.0)),
        edit("downscale_quarter", vec![Scale(0.25)], HIGH_JPEG),
        edit("upscale_2x", vec![Scale(2.0)], HIGH_JPEG),
        edit(
            "aspect_wide_1.3",
            vec![Stretch { x: 1.3, y: 1.0 }],
            HIGH_JPEG,
        ),
        edit(
            "aspect_tall_1.25",
            vec![Stretch { x: 1.0, y: 1.25 }],
            HIGH_JPEG,
        ),
        edit(
            "crop_5pc_sides",
            vec![crop(0.05, 0.05, 0.05, 0.05)],
            HIGH_JPEG,
        ),
        edit(
            "crop_11pc_sides",
            vec![crop(0.11, 0.11, 0.11, 0.11)],
            HIGH_JPEG,
        ),
        edit(
            "crop_15pc_offcentre",
            vec![crop(0.12, 0.03, 0.03, 0.12)],
            HIGH_JPEG,
        ),
        edit("crop_20pc_top", vec![crop(0.0, 0.20, 0.0, 0.0)], HIGH_JPEG),
        edit(
            "crop_25pc_offcentre",
            vec![crop(0.0, 0.20, 0.25, 0.05)],
            HIGH_JPEG,
        ),
        edit("mirror", vec![Mirror], HIGH_JPEG),
        edit("rotate_90", vec![Rotate90], HIGH_JPEG),
        edit("rotate_180", vec![Rotate180], HIGH_JPEG),
        edit(
            "rotate_2deg_fill",
            vec![RotateSmall {
                degrees: 2.0,
                fill_corners: true,
            }],
            HIGH_JPEG,
        ),
        edit(
            "rotate_5deg_crop",
            vec![RotateSmall {
                degrees: -5.0,
                fill_corners: false,
            }],
            HIGH_JPEG,
        ),
        edit(
            "border_white_8pc",
            vec![Border {
                fraction: 0.08,
                colour: [255, 255, 255],
            }],
            HIGH_JPEG,
        ),
        edit(
            "border_red_4pc",
            vec![Border {
                fraction: 0.04,
                colour: [200, 20, 30],
            }],
            HIGH_JPEG,
        ),
        edit(
            "letterbox_16_9",
            vec![Letterbox { aspect: 16.0 / 9.0 }],
            HIGH_JPEG,
        ),
        edit(
            "pillarbox_9_16",
            vec![Letterbox { aspect: 9.0 / 16.0 }],
            HIGH_JPEG,
        ),
        edit("phone_banner", vec![PhoneBanner], HIGH_JPEG),
        edit("caption", vec![Caption], HIGH_JPEG),
        edit("watermark", vec![Watermark], HIGH_JPEG),
        edit("brightness_+45", vec![Brightness(45)], HIGH_JPEG),
        edit("contrast_0.6", vec![Contrast(0.6)], HIGH_JPEG),
        edit("saturation_1.8", vec![Saturation(1.8)], HIGH_JPEG),
        edit("greyscale", vec![Greyscale], HIGH_JPEG),
        edit("blur", vec![Blur(0.004)], HIGH_JPEG),
        edit("noise_15", vec![Noise(15.0)], HIGH_JPEG),
        edit("screenshot", vec![Screenshot], Encoding::Png),
        edit(
            "combo_crop_scale_jpeg",
            vec![crop(0.08, 0.05, 0.04, 0.07), Scale(0.5)],
            Encoding::Jpeg(40),
        ),
        edit(
            "combo_mirror_banner_webp",
            vec![Mirror, PhoneBanner],
            Encoding::Webp(40.0),
        ),
        edit(
            "combo_border_bright_jpeg",
            vec![
                Brightness(-30),
                Border {
                    fraction: 0.06,
                    colour: [0, 0, 0],
                },
            ],
            Encoding::Jpeg(50),
        ),
        edit(
            "combo_screenshot_jpeg",
            vec![Contrast(1.2), Screenshot],
            Encoding::Jpeg(60),
        ),
        edit(
            "combo_rotate_caption",
            vec![
                RotateSmall {
                    degrees: 3.0,
                    fill_corners: false,
                },
                Caption,
            ],
            Encoding::Jpeg(70),
        ),
        // Issue 17: what ads do.
        edit("emoji_stickers", vec![Stickers { count: 4 }], HIGH_JPEG),
        edit("mosaic_region", vec![Mosaic { fraction: 0.3 }], HIGH_JPEG),
        edit("story_frame", vec![StoryFrame], Encoding::Jpeg(85)),
        edit("chat_dark", vec![ChatDark], Encoding::Png),
        edit("flyer", vec![Flyer], Encoding::Jpeg(85)),
        edit("tiled_watermark", vec![TiledWatermark], HIGH_JPEG),
        edit("collage_2x2", vec![Collage { cells: 4 }], HIGH_JPEG),
        edit(
            "collage_side_by_side",
            vec![Collage { cells: 2 }],
            HIGH_JPEG,
        ),
        edit(
            "crop_60pc_corner",
            vec![CropCorner { keep: 0.6 }],
            HIGH_JPEG,
        ),
        edit(
            "crop_70pc_offcentre",
            vec![crop(0.06, 0.21, 0.24, 0.09)],
            HIGH_JPEG,
        ),
        edit(
            "rotate_8deg_crop",
            vec![RotateSmall {
                degrees: 8.0,
                fill_corners: false,
            }],
            HIGH_JPEG,
        ),
        edit(
            "rotate_15deg_crop",
            vec![RotateSmall {
                degrees: -15.0,
                fill_corners: false,
            }],
            HIGH_JPEG,
        ),
        edit(
            "rotate_8deg_canvas",
            vec![RotateSmall {
                degrees: -8.0,
                fill_corners: true,
            }],
            HIGH_JPEG,
        ),
        edit(
            "rotate_15deg_canvas",
            vec![RotateSmall {
                degrees: 15.0,
                fill_corners: true,
            }],
            HIGH_JPEG,
        ),
        edit("screen_photo", vec![ScreenPhoto], Encoding::Jpeg(80)),
        edit("jpeg_q6", vec![], Encoding::Jpeg(6)),
        edit("thumbnail_160", vec![FitLongest(160)], Encoding::Jpeg(80)),
        edit("sepia_vignette", vec![Sepia, Vignette(0.6)], HIGH_JPEG),
        edit("hue_shift_90", vec![HueShift(90.0)], HIGH_JPEG),
        // Edits that push pictures toward each other (and toward featureless ones).
        edit("vignette_strong", vec![Vignette(0.85)], HIGH_JPEG),
        edit("contrast_2.2", vec![Contrast(2.2)], HIGH_JPEG),
        edit("darken_0.35", vec![Darken(0.35)], HIGH_JPEG),
        // Combinations.
        edit(
            "combo_mirror_crop_emoji",
            vec![Mirror, crop(0.04, 0.12, 0.14, 0.04), Stickers { count: 3 }],
            HIGH_JPEG,
        ),
        edit(
            "combo_collage_jpeg",
            vec![Collage { cells: 4 }],
            Encoding::Jpeg(45),
        ),
        edit(
            "combo_rotate8_crop_text",
            vec![
                RotateSmall {
                    degrees: -8.0,
                    fill_corners: false,
                },
                crop(0.0, 0.0, 0.15, 0.15),
                PhoneBanner,
            ],
            Encoding::Jpeg(70),
        ),
        edit(
            "combo_story_thumbnail",
            vec![StoryFrame, FitLongest(640)],
            Encoding::Jpeg(60),
        ),
        edit(
            "combo_dark_vignette_mosaic",
            vec![Darken(0.55), Vignette(0.7), Mosaic { fraction: 0.25 }],
            Encoding::Jpeg(70),
        ),
    ]
}

impl Op {
    /// The name of the shared template this operation puts a picture in (`screenshot`,
    /// `story_frame`, `chat_dark`, `flyer`, `tiled_watermark`): every picture in it gets the same
    /// frame, text or overlay, which a bank entry made from such a copy shares with every other
    /// picture in the template. `None` for any other operation.
    pub fn template(self) -> Option<&'static str> {
        match self {
            Op::Screenshot => Some("screenshot"),
            Op::StoryFrame => Some("story_frame"),
            Op::ChatDark => Some("chat_dark"),
            Op::Flyer => Some("flyer"),
            Op::TiledWatermark => Some("tiled_watermark"),
            _ => None,
        }
    }
}

impl Edit {
    /// The edited pixels. Collage cells other than the photo's get a grey fill (see
    /// [`Edit::render_with`] for other photos there).
    pub fn render(&self, source: &RgbImage, seed: u64) -> RgbImage {
        self.render_with(source, &[], seed)
    }

    /// The edited pixels, with `others` (other photos, never the source itself) for the other
    /// cells of a collage; each other cell takes one of them, chosen from the seed.
    pub fn render_with(&self, source: &RgbImage, others: &[&RgbImage], seed: u64) -> RgbImage {
        let mut ctx = Ctx {
            rng: StdRng::seed_from_u64(seed),
            seed,
            others,
        };
        let mut img = source.clone();
        for op in &self.ops {
            img = apply_op(&img, *op, &mut ctx);
        }
        img
    }

    /// The edited picture, encoded.
    pub fn apply(&self, source: &RgbImage, seed: u64) -> Result<Vec<u8>, EditError> {
        self.apply_with(source, &[], seed)
    }

    /// [`Edit::render_with`], encoded. Errors: [`EditError::Empty`] for a picture left with no
    /// pixels, [`EditError::Encode`] when the encoder fails.
    pub fn apply_with(
        &self,
        source: &RgbImage,
        others: &[&RgbImage],
        seed: u64,
    ) -> Result<Vec<u8>, EditError> {
        let img = self.render_with(source, others, seed);
        if img.width() == 0 || img.height() == 0 {
            return Err(EditError::Empty);
        }
        encode(&img, self.encoding)
    }

    /// The shared template the edit puts the picture in (the first of its operations that is
    /// one, see [`Op::template`]); `None` for an edit of the picture alone.
    pub fn template(&self) -> Option<&'static str> {
        self.ops.iter().find_map(|op| op.template())
    }

    /// Whether the edit was in the first harness's catalogue ([`ORIGINAL_EDITS`]).
    pub fn is_original(&self) -> bool {
        ORIGINAL_EDITS.contains(&self.name)
    }
}

/// What the operations of one edit share: the seeded random source, the seed itself (for
/// choices a test must be able to predict: a collage cell, a crop corner) and the other photos.
pub(crate) struct Ctx<'a> {
    pub(crate) rng: StdRng,
    pub(crate) seed: u64,
    pub(crate) others: &'a [&'a RgbImage],
}

/// Writes pixels in `encoding`.
pub fn encode(img: &RgbImage, encoding: Encoding) -> Result<Vec<u8>, EditError> {
    let mut out = Vec::new();
    let err = |e: image::ImageError| EditError::Encode(e.to_string());
    match encoding {
        Encoding::Jpeg(q) => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(err)?,
        Encoding::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(err)?,
        Encoding::Webp(q) => {
            let memory = webp::Encoder::from_rgb(img.as_raw(), img.width(), img.height())
                .encode_simple(false, q)
                .map_err(|e| EditError::Encode(format!("webp: {e:?}")))?;
            out.extend_from_slice(&memory);
        }
    }
    Ok(out)
}

pub(crate) fn scaled(v: u32, f: f32) -> u32 {
    ((v as f32 * f).round() as u32).max(1)
}

fn apply_op(img: &RgbImage, op: Op, ctx: &mut Ctx<'_>) -> RgbImage {
    let (w, h) = img.dimensions();
    let rng = &mut ctx.rng;
    match op {
        Op::Scale(f) => imageops::resize(img, scaled(w, f), scaled(h, f), FilterType::Triangle),
        Op::Stretch { x, y } => {
            imageops::resize(img, scaled(w, x), scaled(h, y), FilterType::Triangle)
        }
        Op::Crop {
            left,
            top,
            right,
            bottom,
        } => {
            let x0 = (w as f32 * left).round() as u32;
            let y0 = (h as f32 * top).round() as u32;
            let x1 = w - (w as f32 * right).round() as u32;
            let y1 = h - (h as f32 * bottom).round() as u32;
            imageops::crop_imm(
                img,
                x0,
                y0,
                x1.saturating_sub(x0).max(1),
                y1.saturating_sub(y0).max(1),
            )
            .to_image()
        }
        Op::Mirror => imageops::flip_horizontal(img),
        Op::Rotate90 => imageops::rotate90(img),
        Op::Rotate180 => imageops::rotate180(img),
        Op::RotateSmall {
            degrees,
            fill_corners,
        } => rotate_small(img, degrees, fill_corners),
        Op::Border { fraction, colour } => {
            let b = (w.max(h) as f32 * fraction).round() as u32;
            pad(img, b, b, b, b, colour)
        }
        Op::Letterbox { aspect } => {
            let (cw, ch) = if (w as f32 / h as f32) < aspect {
                ((h as f32 * aspect).round() as u32, h)
            } else {
                (w, (w as f32 / aspect).round() as u32)
            };
            let (l, t) = ((cw - w) / 2, (ch - h) / 2);
            pad(img, l, t, cw - w - l, ch - h - t, [0, 0, 0])
        }
        Op::PhoneBanner => {
            let mut out = img.clone();
            let band_h = (h as f32 * 0.16).round().max(8.0) as u32;
            let y0 = (h as f32 * 0.62) as u32;
            fill_rect(&mut out, 0, y0, w, band_h, [250, 220, 0], 1.0);
            draw_text_fitted(
                &mut out,
                "CALL 07 81 55 23 94",
                0,
                y0,
                w,
                band_h,
                [20, 20, 20],
                1.0,
            );
            out
        }
        Op::Caption => {
            let strip = (h as f32 * 0.15).round().max(10.0) as u32;
            let mut out = pad(img, 0, 0, 0, strip, [255, 255, 255]);
            draw_text_fitted(
                &mut out,
                "New in town, discreet, available tonight",
                0,
                h,
                w,
                strip,
                [0, 0, 0],
                1.0,
            );
            out
        }
        Op::Watermark => {
            let mut out = img.clone();
            let band = (h as f32 * 0.3) as u32;
            draw_text_fitted(
                &mut out,
                "HOT-ADS.example",
                0,
                (h - band) / 2,
                w,
                band,
                [255, 255, 255],
                0.45,
            );
            out
        }
        Op::Brightness(d) => map_channels(img, |v| (i32::from(v) + d).clamp(0, 255) as u8),
        Op::Contrast(c) => map_channels(img, |v| {
            (128.0 + (f32::from(v) - 128.0) * c)
                .round()
                .clamp(0.0, 255.0) as u8
        }),
        Op::Saturation(s) => {
            let mut out = img.clone();
            for p in out.pixels_mut() {
                let y = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
                for c in 0..3 {
                    p[c] = (y + (f32::from(p[c]) - y) * s).round().clamp(0.0, 255.0) as u8;
                }
            }
            out
        }
        Op::Greyscale => {
            let mut out = img.clone();
            for p in out.pixels_mut() {
                let y =
                    (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
                        .round() as u8;
                *p = Rgb([y, y, y]);
            }
            out
        }
        Op::Blur(f) => imageops::blur(img, (w.max(h) as f32 * f).max(0.5)),
        Op::Noise(sigma) => {
            let mut out = img.clone();
            for v in out.iter_mut() {
                // Box-Muller: one normal sample per channel.
                let u1: f32 = rng.random_range(f32::EPSILON..1.0);
                let u2: f32 = rng.random();
                let n = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                *v = (f32::from(*v) + n * sigma).round().clamp(0.0, 255.0) as u8;
            }
            out
        }
        Op::Screenshot => screenshot(img),
        Op::Stickers { count } => templates::stickers(img, count, rng),
        Op::Mosaic { fraction } => templates::mosaic(img, fraction, rng),
        Op::StoryFrame => templates::story_frame(img),
        Op::ChatDark => templates::chat_dark(img),
        Op::Flyer => templates::flyer(img),
        Op::TiledWatermark => templates::tiled_watermark(img),
        Op::Collage { cells } => templates::collage(img, cells, ctx.seed, ctx.others),
        Op::CropCorner { keep } => templates::crop_corner_keep(img, keep, ctx.seed),
        Op::ScreenPhoto => templates::screen_photo(img, rng),
        Op::FitLongest(side) => {
            let f = side as f32 / w.max(h).max(1) as f32;
            imageops::resize(img, scaled(w, f), scaled(h, f), FilterType::Triangle)
        }
        Op::Sepia => templates::sepia(img),
        Op::Vignette(strength) => templates::vignette(img, strength),
        Op::HueShift(degrees) => templates::hue_shift(img, degrees),
        Op::Darken(factor) => map_channels(img, |v| {
            (f32::from(v) * factor).round().clamp(0.0, 255.0) as u8
        }),
    }
}

pub(crate) fn map_channels(img: &RgbImage, f: impl Fn(u8) -> u8) -> RgbImage {
    let mut out = img.clone();
    for v in out.iter_mut() {
        *v = f(*v);
    }
    out
}

/// The picture on a larger canvas of `colour`.
pub fn pad(
    img: &RgbImage,
    left: u32,
    top: u32,
    right: u32,
    bottom: u32,
    colour: [u8; 3],
) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = RgbImage::from_pixel(w + left + right, h + top + bottom, Rgb(colour));
    imageops::replace(&mut out, img, i64::from(left), i64::from(top));
    out
}

pub(crate) fn fill_rect(
    img: &mut RgbImage,
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
    colour: [u8; 3],
    alpha: f32,
) {
    for y in y0..(y0 + h).min(img.height()) {
        for x in x0..(x0 + w).min(img.width()) {
            blend(img.get_pixel_mut(x, y), colour, alpha);
        }
    }
}

pub(crate) fn blend(p: &mut Rgb<u8>, colour: [u8; 3], alpha: f32) {
    for c in 0..3 {
        p[c] = (f32::from(p[c]) * (1.0 - alpha) + f32::from(colour[c]) * alpha).round() as u8;
    }
}

/// Draws one line of text (DejaVu Sans Bold) centred in the box, as large as fits.
#[allow(clippy::too_many_arguments)] // a box, a colour and an opacity: grouping them hides nothing
pub(crate) fn draw_text_fitted(
    img: &mut RgbImage,
    text: &str,
    x0: u32,
    y0: u32,
    bw: u32,
    bh: u32,
    colour: [u8; 3],
    alpha: f32,
) {
    // The embedded font is a fixed, valid TTF: parsing it cannot fail.
    let Ok(font) = FontRef::try_from_slice(dejavu::sans::bold()) else {
        return;
    };
    let probe = font.as_scaled(PxScale::from(100.0));
    let width_at_100: f32 = text
        .chars()
        .map(|c| probe.h_advance(font.glyph_id(c)))
        .sum();
    let px = (bh as f32 * 0.7)
        .min(bw as f32 * 0.92 / width_at_100 * 100.0)
        .max(4.0);
    let scaled = font.as_scaled(PxScale::from(px));
    let text_w = width_at_100 * px / 100.0;
    let mut x = x0 as f32 + (bw as f32 - text_w) / 2.0;
    let baseline = y0 as f32 + (bh as f32 + scaled.ascent() + scaled.descent()) / 2.0;
    for c in text.chars() {
        let id = font.glyph_id(c);
        let glyph = id.with_scale_and_position(px, point(x, baseline));
        x += scaled.h_advance(id);
        if let Some(outlined) = font.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + i64::from(gx);
                let py = bounds.min.y as i64 + i64::from(gy);
                if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                    blend(
                        img.get_pixel_mut(px as u32, py as u32),
                        colour,
                        coverage * alpha,
                    );
                }
            });
        }
    }
}

/// Rotation by a small angle with bilinear sampling.
fn rotate_small(img: &RgbImage, degrees: f32, fill_corners: bool) -> RgbImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (s, c) = degrees.to_radians().sin_cos();
    let (sa, ca) = (s.abs(), c.abs());
    // Output canvas: the rotated bounding box, or the largest upright window of the same aspect
    // ratio inside the rotated picture (for a small angle: scale by 1 / (cos + sin * max(w/h, h/w))).
    let (ow, oh) = if fill_corners {
        (w * ca + h * sa, w * sa + h * ca)
    } else {
        let k = 1.0 / (ca + sa * (w / h).max(h / w));
        (w * k, h * k)
    };
    let (ow, oh) = (ow.round().max(1.0) as u32, oh.round().max(1.0) as u32);
    let (cx, cy, ocx, ocy) = (w / 2.0, h / 2.0, ow as f32 / 2.0, oh as f32 / 2.0);
    RgbImage::from_fn(ow, oh, |x, y| {
        // Inverse rotation of the output pixel centre into the source.
        let (dx, dy) = (x as f32 + 0.5 - ocx, y as f32 + 0.5 - ocy);
        let sx = c * dx + s * dy + cx - 0.5;
        let sy = -s * dx + c * dy + cy - 0.5;
        sample_bilinear(img, sx, sy).unwrap_or(Rgb([255, 255, 255]))
    })
}

pub(crate) fn sample_bilinear(img: &RgbImage, x: f32, y: f32) -> Option<Rgb<u8>> {
    let (w, h) = (img.width() as f32, img.height() as f32);
    if x < -0.5 || y < -0.5 || x > w - 0.5 || y > h - 0.5 {
        return None;
    }
    let x = x.clamp(0.0, w - 1.0);
    let y = y.clamp(0.0, h - 1.0);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = (
        (x0 + 1).min(img.width() - 1),
        (y0 + 1).min(img.height() - 1),
    );
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let p = |xx, yy| f32::from(img.get_pixel(xx, yy)[c]);
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        *o = (top * (1.0 - fy) + bottom * fy).round() as u8;
    }
    Some(Rgb(out))
}

/// Screen width of the phone screenshot, in pixels.
pub const SCREEN_W: u32 = 720;
/// Screen height of the phone screenshot.
pub const SCREEN_H: u32 = 1480;

/// Where the picture sits inside [`screenshot`]'s canvas: (x, y, width, height).
pub fn screenshot_picture_rect(w: u32, h: u32) -> (u32, u32, u32, u32) {
    let top = 48 + 112;
    let max_h = SCREEN_H - top - 420;
    let (pw, ph) = if (h as f32 / w as f32) * SCREEN_W as f32 <= max_h as f32 {
        (
            SCREEN_W,
            ((h as f32 / w as f32) * SCREEN_W as f32).round().max(1.0) as u32,
        )
    } else {
        (
            ((w as f32 / h as f32) * max_h as f32).round().max(1.0) as u32,
            max_h,
        )
    };
    ((SCREEN_W - pw) / 2, top, pw, ph)
}

/// A listing page of a classified-ads app, 720x1480, with the picture under the app bar.
fn screenshot(img: &RgbImage) -> RgbImage {
    let mut out = RgbImage::from_pixel(SCREEN_W, SCREEN_H, Rgb([255, 255, 255]));
    // Status bar with the time and battery.
    fill_rect(&mut out, 0, 0, SCREEN_W, 48, [30, 30, 30], 1.0);
    draw_text_fitted(&mut out, "9:41", 10, 6, 90, 36, [255, 255, 255], 1.0);
    fill_rect(&mut out, SCREEN_W - 70, 14, 50, 20, [255, 255, 255], 1.0);
    // App bar with a back arrow box and a title.
    fill_rect(&mut out, 0, 48, SCREEN_W, 112, [0, 110, 200], 1.0);
    fill_rect(&mut out, 24, 80, 48, 48, [255, 255, 255], 1.0);
    draw_text_fitted(
        &mut out,
        "Annonces - Escorts",
        90,
        68,
        500,
        72,
        [255, 255, 255],
        1.0,
    );
    let (px, py, pw, ph) = screenshot_picture_rect(img.width(), img.height());
    let picture = imageops::resize(img, pw, ph, FilterType::Triangle);
    imageops::replace(&mut out, &picture, i64::from(px), i64::from(py));
    // Listing text under the picture.
    let mut y = py + ph + 20;
    for (line, size) in [
        ("120 EUR - Paris 11e", 56),
        ("Call or text 06 12 34 56 78", 44),
        ("Posted 2 hours ago", 36),
    ] {
        draw_text_fitted(
            &mut out,
            line,
            20,
            y,
            SCREEN_W - 40,
            size,
            [40, 40, 40],
            1.0,
        );
        y += size + 16;
    }
    // Navigation bar with four icon squares.
    fill_rect(
        &mut out,
        0,
        SCREEN_H - 96,
        SCREEN_W,
        96,
        [245, 245, 245],
        1.0,
    );
    for i in 0..4 {
        fill_rect(
            &mut out,
            70 + i * 170,
            SCREEN_H - 70,
            44,
            44,
            [120, 120, 120],
            1.0,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        })
    }

    fn render(op: Op, img: &RgbImage) -> RgbImage {
        Edit {
            name: "t",
            ops: vec![op],
            encoding: Encoding::Png,
        }
        .render(img, 1)
    }

    #[test]
    fn resizes_have_the_asked_size() {
        let img = gradient(400, 300);
        assert_eq!(render(Op::Scale(0.25), &img).dimensions(), (100, 75));
        assert_eq!(render(Op::Scale(2.0), &img).dimensions(), (800, 600));
        assert_eq!(
            render(Op::Stretch { x: 1.3, y: 1.0 }, &img).dimensions(),
            (520, 300)
        );
    }

    #[test]
    fn crop_keeps_the_right_window() {
        let img = gradient(400, 300);
        let out = render(
            Op::Crop {
                left: 0.1,
                top: 0.2,
                right: 0.05,
                bottom: 0.0,
            },
            &img,
        );
        assert_eq!(out.dimensions(), (340, 240));
        assert_eq!(out.get_pixel(0, 0), img.get_pixel(40, 60));
        assert_eq!(out.get_pixel(339, 239), img.get_pixel(379, 299));
    }

    #[test]
    fn turns_move_pixels_where_expected() {
        let img = gradient(40, 30);
        let m = render(Op::Mirror, &img);
        assert_eq!(m.get_pixel(0, 5), img.get_pixel(39, 5));
        let r = render(Op::Rotate90, &img);
        assert_eq!(r.dimensions(), (30, 40));
        // Clockwise: the top-left corner goes to the top-right.
        assert_eq!(r.get_pixel(29, 0), img.get_pixel(0, 0));
        let r = render(Op::Rotate180, &img);
        assert_eq!(r.get_pixel(0, 0), img.get_pixel(39, 29));
    }

    #[test]
    fn small_rotation_canvas_and_centre() {
        let img = gradient(400, 300);
        let filled = render(
            Op::RotateSmall {
                degrees: 3.0,
                fill_corners: true,
            },
            &img,
        );
        let (s, c) = 3f32.to_radians().sin_cos();
        assert_eq!(filled.width(), (400.0 * c + 300.0 * s).round() as u32);
        assert_eq!(filled.height(), (400.0 * s + 300.0 * c).round() as u32);
        // Corners are the white fill; the centre is the picture's centre.
        assert_eq!(*filled.get_pixel(0, 0), Rgb([255, 255, 255]));
        let centre = filled.get_pixel(filled.width() / 2, filled.height() / 2);
        let orig = img.get_pixel(200, 150);
        assert!(
            (i32::from(centre[0]) - i32::from(orig[0])).abs() <= 3,
            "{centre:?} vs {orig:?}"
        );
        let cropped = render(
            Op::RotateSmall {
                degrees: -5.0,
                fill_corners: false,
            },
            &img,
        );
        assert!(cropped.width() < 400 && cropped.width() > 300);
        // No fill shows inside the cropped window: every corner is picture.
        for (x, y) in [(0, 0), (cropped.width() - 1, 0), (0, cropped.height() - 1)] {
            assert_ne!(*cropped.get_pixel(x, y), Rgb([255, 255, 255]));
        }
    }

    #[test]
    fn borders_and_letterboxes_frame_the_picture() {
        let img = gradient(400, 300);
        let b = render(
            Op::Border {
                fraction: 0.05,
                colour: [255, 0, 0],
            },
            &img,
        );
        assert_eq!(b.dimensions(), (440, 340));
        assert_eq!(*b.get_pixel(5, 170), Rgb([255, 0, 0]));
        assert_eq!(b.get_pixel(20, 20), img.get_pixel(0, 0));
        let l = render(Op::Letterbox { aspect: 16.0 / 9.0 }, &img);
        assert_eq!(l.dimensions(), (533, 300));
        assert_eq!(*l.get_pixel(10, 150), Rgb([0, 0, 0]));
        let p = render(Op::Letterbox { aspect: 9.0 / 16.0 }, &img);
        assert_eq!(p.dimensions(), (400, 711));
        assert_eq!(*p.get_pixel(200, 10), Rgb([0, 0, 0]));
    }

    #[test]
    fn text_edits_draw_text() {
        let img = RgbImage::from_pixel(400, 300, Rgb([90, 90, 90]));
        let banner = render(Op::PhoneBanner, &img);
        let band: Vec<_> = (186..234)
            .flat_map(|y| (0..400).map(move |x| (x, y)))
            .map(|(x, y)| *banner.get_pixel(x, y))
            .collect();
        assert!(band.contains(&Rgb([250, 220, 0])), "banner colour");
        assert!(band.iter().any(|p| p[0] < 60), "dark text on the banner");
        let caption = render(Op::Caption, &img);
        assert_eq!(caption.dimensions(), (400, 345));
        assert!(
            (300..345).any(|y| (0..400).any(|x| caption.get_pixel(x, y)[0] < 100)),
            "caption text"
        );
        let mark = render(Op::Watermark, &img);
        let lighter = mark.pixels().filter(|p| p[0] > 100).count();
        assert!(
            lighter > 500 && mark.pixels().all(|p| p[0] < 200),
            "semi-transparent: {lighter}"
        );
    }

    #[test]
    fn colour_edits() {
        let img = gradient(64, 64);
        let g = render(Op::Greyscale, &img);
        assert!(g.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        let b = render(Op::Brightness(45), &img);
        assert_eq!(b.get_pixel(0, 0)[2], 173);
        let c = render(Op::Contrast(0.5), &img);
        assert_eq!(c.get_pixel(0, 0)[0], 64);
        let noisy = render(Op::Noise(15.0), &img);
        assert_ne!(noisy, img);
        assert_eq!(
            noisy,
            render(Op::Noise(15.0), &img),
            "same seed, same noise"
        );
    }

    #[test]
    fn screenshot_places_the_picture() {
        let img = gradient(400, 300);
        let s = render(Op::Screenshot, &img);
        assert_eq!(s.dimensions(), (SCREEN_W, SCREEN_H));
        let (x, y, w, h) = screenshot_picture_rect(400, 300);
        assert_eq!((x, y, w, h), (0, 160, 720, 540));
        let mid = s.get_pixel(x + w / 2, y + h / 2);
        assert!((i32::from(mid[0]) - 127).abs() < 4 && (i32::from(mid[1]) - 127).abs() < 4);
        assert_eq!(*s.get_pixel(5, 60), Rgb([0, 110, 200]));
    }

    #[test]
    fn every_edit_encodes_and_decodes() {
        let img = gradient(200, 150);
        for e in catalogue() {
            let bytes = e.apply(&img, 7).unwrap();
            let back = image::load_from_memory(&bytes).unwrap();
            assert!(back.width() > 10 && back.height() > 10, "{}", e.name);
        }
    }
}

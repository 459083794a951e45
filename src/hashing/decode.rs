//! Safe decoding of untrusted image bytes, shared by every perceptual hash.
//!
//! Every upload is hostile until checked. The order of checks matters: the encoded size is checked
//! before anything is parsed, the header's dimensions and the decoder's memory estimate before any
//! pixel buffer is allocated, and the decoder itself runs under `image`'s allocation limit and
//! inside `catch_unwind`, so a decoder bug on a crafted file becomes a `corrupt` error, not a
//! crashed request.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::metadata::Orientation;
use image::{
    AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits,
    RgbaImage,
};

use super::pdq::Dihedral;
use super::{jpeg, turbo};

/// Limits on one decode. Defaults: 32 MiB encoded, 100 megapixels, 1 GiB of decoder memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest input accepted, in encoded bytes (checked before anything is parsed).
    pub max_encoded_bytes: usize,
    /// Largest width x height accepted, in pixels, as the header gives it.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate: checked against the decoder's own estimate
    /// before decoding, and passed to `image` as its allocation limit.
    pub max_decoder_memory: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_encoded_bytes: 32 << 20,
            max_pixels: 100_000_000,
            max_decoder_memory: 1 << 30,
        }
    }
}

/// The kind of a decode failure: a stable name that clients and metrics key on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// No bytes at all.
    Empty,
    /// Not an image in a format vigie reads.
    UnsupportedFormat,
    /// Looks like a supported image but cannot be decoded (truncated, damaged, inconsistent).
    Corrupt,
    /// Over one of the [`DecodeLimits`].
    TooLarge,
}

impl DecodeErrorKind {
    /// The stable name: `empty`, `unsupported_format`, `corrupt` or `too_large`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeErrorKind::Empty => "empty",
            DecodeErrorKind::UnsupportedFormat => "unsupported_format",
            DecodeErrorKind::Corrupt => "corrupt",
            DecodeErrorKind::TooLarge => "too_large",
        }
    }
}

/// Which limit refused a too-large image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitCheck {
    /// [`DecodeLimits::max_encoded_bytes`].
    EncodedBytes,
    /// [`DecodeLimits::max_pixels`].
    Pixels,
    /// [`DecodeLimits::max_decoder_memory`] (the header's estimate, or `image`'s
    /// allocation limit while decoding).
    DecoderMemory,
}

/// Why untrusted bytes were refused: a stable kind and a message; displays as
/// `kind: message` (e.g. `too_large: ...`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct DecodeError {
    /// What went wrong: the part clients and metrics key on.
    pub kind: DecodeErrorKind,
    /// Set when `kind` is `TooLarge`: the check that refused the image.
    pub limit: Option<LimitCheck>,
    /// The details, for people (free text: key on `kind`, not on this).
    pub message: String,
}

impl DecodeError {
    fn new(kind: DecodeErrorKind, message: impl Into<String>) -> Self {
        DecodeError {
            kind,
            limit: None,
            message: message.into(),
        }
    }

    fn too_large(limit: LimitCheck, message: impl Into<String>) -> Self {
        DecodeError {
            kind: DecodeErrorKind::TooLarge,
            limit: Some(limit),
            message: message.into(),
        }
    }
}

/// A decoded picture as stored in the file (no EXIF orientation applied yet).
pub struct DecodedImage {
    /// The format detected from the bytes.
    pub format: ImageFormat,
    /// Pixels as stored in the file, possibly reduced while decoding (see `scale_denominator`).
    pub stored: DynamicImage,
    /// The transform that turns the stored pixels into the picture a viewer sees (EXIF orientation).
    pub orientation: Dihedral,
    /// `stored` holds the file's picture at `1/scale_denominator` (1, 2, 4 or 8) of its size: a JPEG
    /// decoded with a reduced inverse DCT (see [`decode_for_hashing`]). 1 for a full decode.
    pub scale_denominator: u32,
    /// Width and height of the picture in the file, as stored (before any reduction).
    pub file_dimensions: (u32, u32),
    /// What is wrong with a file that still gave a picture: cut short or damaged data, whose
    /// missing part the decoder filled in (libjpeg-turbo with grey). Empty for a sound file.
    pub warnings: Vec<String>,
}

impl DecodedImage {
    /// Width and height of the file's picture as displayed (after the EXIF orientation), whatever
    /// the decoding scale.
    pub fn display_dimensions(&self) -> (u32, u32) {
        let (w, h) = self.file_dimensions;
        if self.orientation.swaps_axes() {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Whether `stored` has an alpha channel (by its colour type, whatever its pixels).
    pub fn has_alpha(&self) -> bool {
        self.stored.color().has_alpha()
    }
}

/// Header facts, read without decoding pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The format detected from the bytes.
    pub format: ImageFormat,
    /// Width in pixels as stored (before the EXIF orientation).
    pub width: u32,
    /// Height in pixels as stored (before the EXIF orientation).
    pub height: u32,
    /// The transform from stored pixels to the displayed picture (EXIF
    /// orientation; [`Dihedral::Original`] when the file has none).
    pub orientation: Dihedral,
}

impl ImageHeader {
    /// Width and height in pixels as displayed: swapped when the EXIF orientation
    /// turns the picture a quarter turn.
    pub fn display_dimensions(&self) -> (u32, u32) {
        if self.orientation.swaps_axes() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Formats vigie accepts (the `image` features compiled in).
const ACCEPTED: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

/// The checks before any parsing: some bytes, not too many, of a format vigie accepts.
fn accepted_format(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageFormat, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::new(DecodeErrorKind::Empty, "no image bytes"));
    }
    if bytes.len() > limits.max_encoded_bytes {
        return Err(DecodeError::too_large(
            LimitCheck::EncodedBytes,
            format!(
                "{} encoded bytes exceed the limit of {}",
                bytes.len(),
                limits.max_encoded_bytes
            ),
        ));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        DecodeError::new(
            DecodeErrorKind::UnsupportedFormat,
            "not a recognised image format",
        )
    })?;
    if !ACCEPTED.contains(&format) {
        return Err(DecodeError::new(
            DecodeErrorKind::UnsupportedFormat,
            format!("{format:?} images are not accepted"),
        ));
    }
    Ok(format)
}

/// Refuse a picture of `width x height` whose decoding needs `needed` bytes, when over a limit.
fn check_size(
    width: u32,
    height: u32,
    needed: u64,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::new(
            DecodeErrorKind::Corrupt,
            format!("header gives a {width}x{height} image"),
        ));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::too_large(
            LimitCheck::Pixels,
            format!(
                "{width}x{height} is {pixels} pixels, over the limit of {}",
                limits.max_pixels
            ),
        ));
    }
    if needed > limits.max_decoder_memory {
        return Err(DecodeError::too_large(
            LimitCheck::DecoderMemory,
            format!(
                "decoding needs {needed} bytes, over the limit of {}",
                limits.max_decoder_memory
            ),
        ));
    }
    Ok(())
}

/// A JPEG's header from its markers (see [`jpeg`]), every limit checked: its frame header must be
/// legal (else `corrupt`) and give both dimensions. Whether libjpeg-turbo can decode the coding is
/// [`jpeg::Layout::unsupported`]'s, asked only when pixels are wanted (the exact hashes of a
/// lossless JPEG need none).
fn open_jpeg(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<(ImageHeader, jpeg::Layout), DecodeError> {
    let layout =
        jpeg::read_layout(bytes).map_err(|e| DecodeError::new(DecodeErrorKind::Corrupt, e.0))?;
    if let Some(damage) = layout.damage() {
        return Err(DecodeError::new(DecodeErrorKind::Corrupt, damage));
    }
    if layout.height == 0 {
        // Only a DNL marker after the first scan would say: refuse before anything is sized.
        return Err(DecodeError::new(
            DecodeErrorKind::UnsupportedFormat,
            layout.unsupported().unwrap_or_default(),
        ));
    }
    let (width, height) = (u32::from(layout.width), u32::from(layout.height));
    // Decoded samples: grey 1 byte a pixel, colour 3, CMYK 4 (before it becomes RGB).
    let channels = layout.components.len().clamp(1, 4) as u64;
    check_size(
        width,
        height,
        u64::from(width) * u64::from(height) * channels,
        limits,
    )?;
    let orientation = layout
        .exif(bytes)
        .and_then(Orientation::from_exif_chunk)
        .map(orientation_transform)
        .unwrap_or(Dihedral::Original);
    Ok((
        ImageHeader {
            format: ImageFormat::Jpeg,
            width,
            height,
            orientation,
        },
        layout,
    ))
}

/// Read the header and check every limit; returns the header and a decoder ready to run. Not for
/// JPEGs (see [`open_jpeg`]).
fn open<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<(ImageHeader, Box<dyn ImageDecoder + 'a>), DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoder_memory);
    reader.limits(decoder_limits);
    let mut decoder = catch_decoder_panic(|| reader.into_decoder())?.map_err(map_image_error)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, decoder.total_bytes(), limits)?;
    let orientation = decoder
        .orientation()
        .map(orientation_transform)
        .unwrap_or(Dihedral::Original);
    Ok((
        ImageHeader {
            format,
            width,
            height,
            orientation,
        },
        Box::new(decoder),
    ))
}

/// Read and check the header only.
pub fn read_header(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageHeader, DecodeError> {
    match accepted_format(bytes, limits)? {
        ImageFormat::Jpeg => open_jpeg(bytes, limits).map(|(header, _)| header),
        format => open(bytes, format, limits).map(|(header, _)| header),
    }
}

/// Decode untrusted bytes under `limits`, at full size. Animations give their default image (the
/// first frame of a GIF or WebP; see [`for_each_frame`] for the others).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    decode_for_hashing(bytes, limits, None)
}

/// The reduction a JPEG of `width x height` may be decoded at so that its shorter side keeps at
/// least `min_side` pixels: the largest of 1/8, 1/4, 1/2 that does, else 1 (full size).
pub fn scale_denominator_for(width: u32, height: u32, min_side: Option<u32>) -> u32 {
    let Some(min_side) = min_side else {
        return 1;
    };
    let shorter = width.min(height);
    [8, 4, 2]
        .into_iter()
        .find(|&d| turbo::scaled_side(shorter, d) >= min_side)
        .unwrap_or(1)
}

/// Decode untrusted bytes under `limits` for hashing. With `min_side`, a JPEG is decoded directly
/// at a reduced scale (see [`scale_denominator_for`]) by libjpeg-turbo's reduced inverse DCT, so
/// a 12 MP photo never exists as 12 million pixels. Every JPEG is decoded by libjpeg-turbo (the
/// decoder Meta's tool chain uses, so full-size pixels agree with Meta's), whatever its sampling
/// factors, Huffman or arithmetic coded, baseline or progressive; the layouts it cannot decode
/// are `unsupported_format` with the reason ([`jpeg::Layout::unsupported`]). The other formats are
/// decoded by the `image` crate.
///
/// A file cut short (or damaged) that still gives a picture is decoded, and says so in
/// [`DecodedImage::warnings`]: libjpeg-turbo fills a JPEG's missing rows with grey. The `image`
/// crate's decoders refuse a truncated PNG, WebP, BMP or TIFF (`corrupt`); a GIF's frames are
/// checked by [`for_each_frame`].
pub fn decode_for_hashing(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: Option<u32>,
) -> Result<DecodedImage, DecodeError> {
    let format = accepted_format(bytes, limits)?;
    if format == ImageFormat::Jpeg {
        return decode_jpeg(bytes, limits, min_side);
    }
    let (header, decoder) = open(bytes, format, limits)?;
    let mut stored =
        catch_decoder_panic(|| DynamicImage::from_decoder(decoder))?.map_err(map_image_error)?;
    if header.format == ImageFormat::Bmp {
        drop_unused_alpha(&mut stored);
    }
    Ok(DecodedImage {
        format: header.format,
        stored,
        orientation: header.orientation,
        scale_denominator: 1,
        file_dimensions: (header.width, header.height),
        warnings: Vec::new(),
    })
}

/// A turbo error as a decode error: a coding libjpeg does not implement is `unsupported_format`,
/// anything else damaged data.
fn turbo_error(e: turbo::TurboError) -> DecodeError {
    let kind = if e.is_unsupported() {
        DecodeErrorKind::UnsupportedFormat
    } else {
        DecodeErrorKind::Corrupt
    };
    DecodeError::new(kind, e.0)
}

fn decode_jpeg(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: Option<u32>,
) -> Result<DecodedImage, DecodeError> {
    let (header, layout) = open_jpeg(bytes, limits)?;
    if let Some(reason) = layout.unsupported() {
        return Err(DecodeError::new(DecodeErrorKind::UnsupportedFormat, reason));
    }
    let jpeg = turbo::read_header(bytes).map_err(turbo_error)?;
    if (jpeg.width, jpeg.height) != (header.width, header.height) {
        return Err(DecodeError::new(
            DecodeErrorKind::Corrupt,
            format!(
                "inconsistent JPEG headers: {}x{} and {}x{}",
                jpeg.width, jpeg.height, header.width, header.height
            ),
        ));
    }
    let denominator = scale_denominator_for(jpeg.width, jpeg.height, min_side);
    // A reduced decode is not Meta's pixels anyway: take the luma alone (every hash reads luma),
    // which spares the chroma work. A full-size decode stays RGB so that PDQ agrees with Meta's
    // bit for bit.
    let luma_only = denominator > 1;
    let pixels = turbo::decode_scaled(bytes, &jpeg, denominator, luma_only).map_err(turbo_error)?;
    let mut warnings = Vec::new();
    if let jpeg::End::Cut { scan } = layout.end {
        warnings.push(format!(
            "truncated: the JPEG ends before its end marker (in scan {scan} of {}); the missing \
             part of the picture was filled with grey",
            layout.scans
        ));
    } else if let Some(w) = pixels
        .warning
        .as_deref()
        .filter(|w| !turbo::is_harmless_warning(w))
    {
        warnings.push(format!(
            "damaged: libjpeg-turbo decoded what it could of this JPEG ({w})"
        ));
    }
    let (width, height) = (pixels.width, pixels.height);
    let stored = match pixels.channels {
        1 => image::GrayImage::from_raw(width, height, pixels.data).map(DynamicImage::ImageLuma8),
        3 => image::RgbImage::from_raw(width, height, pixels.data).map(DynamicImage::ImageRgb8),
        _ => image::RgbImage::from_raw(width, height, turbo::cmyk_to_rgb(&pixels.data))
            .map(DynamicImage::ImageRgb8),
    }
    .ok_or_else(|| DecodeError::new(DecodeErrorKind::Corrupt, "decoded buffer size mismatch"))?;
    Ok(DecodedImage {
        format: header.format,
        stored,
        orientation: header.orientation,
        scale_denominator: denominator,
        file_dimensions: (header.width, header.height),
        warnings,
    })
}

/// A BMP's alpha channel when every alpha value is 0: the file declares an alpha mask (BMP V3-V5
/// bitfields) but writes nothing in it, which is what many encoders do with the fourth byte of a
/// 32-bit pixel. Every viewer (browsers, Windows, the `bmp-alpha-all-zero` field case) shows such a
/// BMP opaque rather than as an empty page, so it is dropped here and the picture is hashed as
/// shown. An alpha channel with any non-zero value is honoured, as viewers do. (PNG, WebP, GIF
/// and TIFF viewers honour alpha even when it is all 0: the picture is then blank as displayed,
/// and the hasher screens the stored pixels too, see `pdq_meta`.)
fn drop_unused_alpha(stored: &mut DynamicImage) {
    let unused = match stored {
        DynamicImage::ImageRgba8(img) => img.pixels().all(|p| p[3] == 0),
        DynamicImage::ImageLumaA8(img) => img.pixels().all(|p| p[1] == 0),
        DynamicImage::ImageRgba16(img) => img.pixels().all(|p| p[3] == 0),
        _ => false,
    };
    if unused {
        *stored = match stored {
            DynamicImage::ImageRgba16(_) => DynamicImage::ImageRgb16(stored.to_rgb16()),
            DynamicImage::ImageLumaA8(_) => DynamicImage::ImageLuma8(stored.to_luma8()),
            _ => DynamicImage::ImageRgb8(stored.to_rgb8()),
        };
    }
}

/// Most frames of one animation decoded for screening. An ad's animation runs 10 to 60 frames (a
/// 5-second loop at 10 frames a second is 50); 100 covers ten seconds of it. Past the limit (or
/// the pixel budget) the remaining frames are not screened and the answer says so.
pub const MAX_ANIMATION_FRAMES: u32 = 100;

/// Most canvas pixels decoded across the frames of one animation (12 MP): every frame is
/// decoded and composited on the whole canvas, then hashed, so an animation costs its canvas
/// times its frames. Measured in the test build on this shared 2-core machine (`vigie bench hash`
/// and timing `hash_bytes`): 100 frames of 640x480 (30.7 MP) took 1.0 to 1.8 s (GIF, APNG,
/// lossy WebP), 31 to 58 ms a megapixel of frames, against 0.37 s for a 12 MP JPEG decoded and
/// hashed at full size. 12 MP of frames keeps an animation near that, and covers the animations
/// ads use whole: 50 frames of a 300x250 banner are 3.75 MP, 30 frames of 640x480 9.2 MP.
pub const ANIMATION_PIXEL_BUDGET: u64 = 12_000_000;

/// One frame of an animation as a viewer shows it: the whole canvas, composited (GIF disposal,
/// APNG blend and dispose operations, WebP alpha blending), in stored orientation.
pub struct AnimationFrame {
    /// The frame's place in the animation, from 0 (an APNG's default image that is not part of
    /// the animation is not counted).
    pub index: u32,
    /// The frame as a viewer shows it at that point of the animation (the canvas, composited).
    pub picture: RgbaImage,
    /// This frame is the default image [`decode_for_hashing`] gave, pixel for pixel (a GIF's or
    /// WebP's first frame; an APNG's first when its IDAT image is part of the animation).
    pub is_default_image: bool,
}

/// What [`for_each_frame`] did: how many frames it decoded, and what it could not screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FramesRead {
    /// Frames decoded (the default image included).
    pub decoded: u32,
    /// Frames left unscreened (a limit), or an animation cut short or damaged.
    pub warnings: Vec<String>,
}

/// Decode each frame of an animated GIF, APNG or WebP in turn and hand it to `f`, within
/// [`MAX_ANIMATION_FRAMES`] and [`ANIMATION_PIXEL_BUDGET`] (one frame past either is decoded to
/// tell whether any frame was left out). A still picture, or any other format, gives no frame.
/// `bytes` must have passed [`decode_for_hashing`] (format and limits are checked again, not
/// reported: an error here gives no frame). A frame the decoder refuses ends the walk with a
/// warning: the frames before it were screened.
pub fn for_each_frame(
    bytes: &[u8],
    limits: &DecodeLimits,
    mut f: impl FnMut(AnimationFrame),
) -> FramesRead {
    let mut read = FramesRead::default();
    let Ok(frames) = animation_frames(bytes, limits) else {
        return read;
    };
    let Some((mut frames, (width, height), first_is_default)) = frames else {
        return read;
    };
    let canvas = u64::from(width) * u64::from(height);
    let mut pixels = 0u64;
    loop {
        let over = read.decoded >= MAX_ANIMATION_FRAMES || pixels + canvas > ANIMATION_PIXEL_BUDGET;
        let next = catch_decoder_panic(|| frames.next());
        let frame = match next {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                read.warnings.push(format!(
                    "truncated or damaged animation: frame {} could not be decoded ({}); the {} \
                     frames before it were screened",
                    read.decoded,
                    map_image_error(e).message,
                    read.decoded
                ));
                break;
            }
            Err(e) => {
                read.warnings.push(format!(
                    "damaged animation: frame {} could not be decoded ({}); the {} frames before \
                     it were screened",
                    read.decoded, e.message, read.decoded
                ));
                break;
            }
        };
        if over {
            read.warnings.push(format!(
                "not every frame of this animation was screened: frames from {} on were left out \
                 (at most {MAX_ANIMATION_FRAMES} frames and {ANIMATION_PIXEL_BUDGET} pixels of \
                 frames are decoded)",
                read.decoded
            ));
            break;
        }
        pixels += canvas;
        f(AnimationFrame {
            index: read.decoded,
            picture: frame.into_buffer(),
            is_default_image: first_is_default && read.decoded == 0,
        });
        read.decoded += 1;
    }
    read
}

/// The frames of an animation, its canvas size, and whether its first frame is its default image.
type Animation<'a> = (image::Frames<'a>, (u32, u32), bool);

/// The frames of an animated file, or `None` for a still picture.
fn animation_frames<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Option<Animation<'a>>, DecodeError> {
    let format = accepted_format(bytes, limits)?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoder_memory);
    let cursor = Cursor::new(bytes);
    catch_decoder_panic(|| -> Result<_, ImageError> {
        Ok(match format {
            ImageFormat::Png => {
                let decoder = image::codecs::png::PngDecoder::with_limits(cursor, decoder_limits)?;
                if !decoder.is_apng()? {
                    return Ok(None);
                }
                let size = decoder.dimensions();
                let first_is_default = apng_default_image_is_a_frame(bytes);
                Some((decoder.apng()?.into_frames(), size, first_is_default))
            }
            ImageFormat::Gif => {
                let mut decoder = image::codecs::gif::GifDecoder::new(cursor)?;
                decoder.set_limits(decoder_limits)?;
                let size = decoder.dimensions();
                // `read_image` composites the first frame exactly as the frame iterator does.
                Some((decoder.into_frames(), size, true))
            }
            ImageFormat::WebP => {
                let mut decoder = image::codecs::webp::WebPDecoder::new(cursor)?;
                if !decoder.has_animation() {
                    return Ok(None);
                }
                decoder.set_limits(decoder_limits)?;
                let size = decoder.dimensions();
                // image-webp's `read_image` of an animation reads its first frame.
                Some((decoder.into_frames(), size, true))
            }
            _ => None,
        })
    })?
    .map_err(map_image_error)
}

/// Whether an APNG's IDAT image is the first frame of its animation: an fcTL chunk comes before
/// the first IDAT (APNG specification, "Structure"). Otherwise it is only shown by decoders
/// without APNG support.
fn apng_default_image_is_a_frame(bytes: &[u8]) -> bool {
    let mut at = 8; // the PNG signature
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        match &header[4..8] {
            b"fcTL" => return true,
            b"IDAT" => return false,
            _ => {}
        }
        at = at.saturating_add(12).saturating_add(length);
    }
    false
}

fn catch_decoder_panic<T>(f: impl FnOnce() -> T) -> Result<T, DecodeError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| DecodeError::new(DecodeErrorKind::Corrupt, "the decoder failed on this file"))
}

fn map_image_error(e: ImageError) -> DecodeError {
    match e {
        ImageError::Unsupported(u) => {
            DecodeError::new(DecodeErrorKind::UnsupportedFormat, u.to_string())
        }
        ImageError::Limits(l) => DecodeError::too_large(LimitCheck::DecoderMemory, l.to_string()),
        ImageError::Decoding(d) => DecodeError::new(DecodeErrorKind::Corrupt, d.to_string()),
        ImageError::Parameter(p) => DecodeError::new(DecodeErrorKind::Corrupt, p.to_string()),
        ImageError::Encoding(e) => DecodeError::new(DecodeErrorKind::Corrupt, e.to_string()),
        ImageError::IoError(io) => DecodeError::new(
            DecodeErrorKind::Corrupt,
            format!("truncated or unreadable: {io}"),
        ),
    }
}

/// EXIF orientation as the transform from stored pixels to the displayed picture
/// (EXIF 2.32, tag 0x0112: 6 means "rotate 90 degrees clockwise to display").
fn orientation_transform(o: Orientation) -> Dihedral {
    match o {
        Orientation::NoTransforms => Dihedral::Original,
        Orientation::Rotate90 => Dihedral::Rotate90,
        Orientation::Rotate180 => Dihedral::Rotate180,
        Orientation::Rotate270 => Dihedral::Rotate270,
        Orientation::FlipHorizontal => Dihedral::FlipHorizontal,
        Orientation::FlipVertical => Dihedral::FlipVertical,
        Orientation::Rotate90FlipH => Dihedral::Transpose,
        Orientation::Rotate270FlipH => Dihedral::Transverse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0; 4]); // CRC: not read here
        out
    }

    #[test]
    fn an_apng_default_image_is_a_frame_when_an_fctl_comes_first() {
        let png = |chunks: &[(&[u8; 4], usize)]| {
            let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
            for (kind, len) in chunks {
                out.extend(chunk(kind, &vec![0; *len]));
            }
            out
        };
        assert!(apng_default_image_is_a_frame(&png(&[
            (b"IHDR", 13),
            (b"acTL", 8),
            (b"fcTL", 26),
            (b"IDAT", 40),
        ])));
        assert!(!apng_default_image_is_a_frame(&png(&[
            (b"IHDR", 13),
            (b"acTL", 8),
            (b"IDAT", 40),
            (b"fcTL", 26),
        ])));
        // Cut short, or a length past the end: no frame control seen.
        assert!(!apng_default_image_is_a_frame(&png(&[(b"IHDR", 13)])[..20]));
        let mut huge = png(&[(b"IHDR", 13)]);
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(!apng_default_image_is_a_frame(&huge));
    }
}

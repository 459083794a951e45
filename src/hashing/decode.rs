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
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::pdq::Dihedral;
use super::turbo;

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

/// Read the header and check every limit; returns the header and a decoder ready to run.
fn open<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(ImageHeader, Box<dyn ImageDecoder + 'a>), DecodeError> {
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
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoder_memory);
    reader.limits(decoder_limits);
    let mut decoder = catch_decoder_panic(|| reader.into_decoder())?.map_err(map_image_error)?;
    let (width, height) = decoder.dimensions();
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
    let needed = decoder.total_bytes();
    if needed > limits.max_decoder_memory {
        return Err(DecodeError::too_large(
            LimitCheck::DecoderMemory,
            format!(
                "decoding needs {needed} bytes, over the limit of {}",
                limits.max_decoder_memory
            ),
        ));
    }
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
    open(bytes, limits).map(|(header, _)| header)
}

/// Decode untrusted bytes under `limits`, at full size. GIFs give their first frame.
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
/// a 12 MP photo never exists as 12 million pixels. Every JPEG whose colours libjpeg-turbo returns
/// as RGB or grey is decoded by libjpeg-turbo (the decoder Meta's tool chain uses, so full-size
/// pixels agree with Meta's); CMYK JPEGs and the other formats by the `image` crate.
pub fn decode_for_hashing(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: Option<u32>,
) -> Result<DecodedImage, DecodeError> {
    let (header, decoder) = open(bytes, limits)?;
    if header.format == ImageFormat::Jpeg {
        let jpeg = turbo::read_header(bytes)
            .map_err(|e| DecodeError::new(DecodeErrorKind::Corrupt, e.0))?;
        if (jpeg.width, jpeg.height) != (header.width, header.height) {
            return Err(DecodeError::new(
                DecodeErrorKind::Corrupt,
                format!(
                    "inconsistent JPEG headers: {}x{} and {}x{}",
                    jpeg.width, jpeg.height, header.width, header.height
                ),
            ));
        }
        if jpeg.color != turbo::JpegColor::Other {
            drop(decoder);
            let denominator = scale_denominator_for(jpeg.width, jpeg.height, min_side);
            // A reduced decode is not Meta's pixels anyway: take the luma alone (every hash
            // reads luma), which spares the chroma work. A full-size decode stays RGB so that
            // PDQ agrees with Meta's bit for bit.
            let luma_only = denominator > 1;
            let pixels = turbo::decode_scaled(bytes, &jpeg, denominator, luma_only)
                .map_err(|e| DecodeError::new(DecodeErrorKind::Corrupt, e.0))?;
            let stored = match pixels.channels {
                1 => image::GrayImage::from_raw(pixels.width, pixels.height, pixels.data)
                    .map(DynamicImage::ImageLuma8),
                _ => image::RgbImage::from_raw(pixels.width, pixels.height, pixels.data)
                    .map(DynamicImage::ImageRgb8),
            }
            .ok_or_else(|| {
                DecodeError::new(DecodeErrorKind::Corrupt, "decoded buffer size mismatch")
            })?;
            return Ok(DecodedImage {
                format: header.format,
                stored,
                orientation: header.orientation,
                scale_denominator: denominator,
                file_dimensions: (header.width, header.height),
            });
        }
    }
    let stored =
        catch_decoder_panic(|| DynamicImage::from_decoder(decoder))?.map_err(map_image_error)?;
    Ok(DecodedImage {
        format: header.format,
        stored,
        orientation: header.orientation,
        scale_denominator: 1,
        file_dimensions: (header.width, header.height),
    })
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

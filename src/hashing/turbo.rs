//! JPEG decoding through libjpeg-turbo's TurboJPEG API (the system `libturbojpeg`).
//!
//! Why not the pure-Rust decoder `image` uses: two reasons, both measured (see
//! docs/PERFORMANCE.md).
//! 1. **Decoding only what hashing needs.** A JPEG stores 8x8 DCT blocks; libjpeg-turbo can run a
//!    reduced inverse DCT that yields each block at 4x4, 2x2 or 1x1 pixels (scale 1/2, 1/4, 1/8;
//!    ITU-T T.81 leaves the IDCT size to the decoder, libjpeg's `scale_denom`). At 1/8 only the DC
//!    coefficient is used, which is the block's mean: exactly the box average PDQ's Jarosz filter
//!    would compute anyway. Entropy decoding still reads every coefficient, but no pixel of the full
//!    picture is ever produced.
//! 2. **The same pixels as Meta's tool chain.** hasher-matcher-actioner decodes with Pillow, which
//!    links libjpeg-turbo with the same defaults (accurate integer IDCT, fancy upsampling), so at
//!    full scale vigie's PDQ sees the very pixels Meta's does.
//!
//! Safety: the TurboJPEG functions never `longjmp` across the FFI boundary (the library catches its
//! own libjpeg errors and returns -1), every length passed is the slice's length, and the output
//! buffer is allocated here at exactly `pitch * height` bytes for the dimensions the library will
//! write (computed with the same rounding as `TJSCALED`). Handles are per thread and reused.
//! libjpeg-turbo is fuzzed continuously by OSS-Fuzz; `TJFLAG_LIMITSCANS` guards against
//! progressive files with unbounded scan counts.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_uchar, c_ulong, c_void};

type TjHandle = *mut c_void;

#[link(name = "turbojpeg")]
unsafe extern "C" {
    fn tjInitDecompress() -> TjHandle;
    fn tjDestroy(handle: TjHandle) -> c_int;
    fn tjDecompressHeader3(
        handle: TjHandle,
        jpeg_buf: *const c_uchar,
        jpeg_size: c_ulong,
        width: *mut c_int,
        height: *mut c_int,
        jpeg_subsamp: *mut c_int,
        jpeg_colorspace: *mut c_int,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn tjDecompress2(
        handle: TjHandle,
        jpeg_buf: *const c_uchar,
        jpeg_size: c_ulong,
        dst_buf: *mut c_uchar,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjGetErrorStr2(handle: TjHandle) -> *mut c_char;
    fn tjGetErrorCode(handle: TjHandle) -> c_int;
}

// Values from turbojpeg.h (stable since libjpeg-turbo 1.4; the 2.x API is kept by 3.x).
const TJPF_RGB: c_int = 0;
const TJPF_GRAY: c_int = 6;
const TJPF_CMYK: c_int = 11;
const TJCS_RGB: c_int = 0;
const TJCS_YCBCR: c_int = 1;
const TJCS_GRAY: c_int = 2;
const TJCS_CMYK: c_int = 3;
const TJCS_YCCK: c_int = 4;
const TJFLAG_ACCURATEDCT: c_int = 4096;
const TJFLAG_LIMITSCANS: c_int = 32768;
const TJERR_WARNING: c_int = 0;

/// A decompressor handle owned by one thread.
struct Decompressor(TjHandle);

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress and is destroyed once.
        unsafe {
            tjDestroy(self.0);
        }
    }
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Colour layout of a JPEG as the header declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JpegColor {
    /// One component (greyscale): decoded to one channel.
    Gray,
    /// YCbCr or RGB: decoded to RGB.
    Color,
    /// CMYK or YCCK: TurboJPEG returns them as CMYK (YCCK converted), see [`cmyk_to_rgb`].
    Cmyk,
}

/// A JPEG's frame header as libjpeg-turbo reads it (see [`read_header`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegHeader {
    /// Width in pixels (at least 1).
    pub width: u32,
    /// Height in pixels (at least 1).
    pub height: u32,
    /// Colour layout: [`decode_scaled`] refuses [`JpegColor::Other`].
    pub color: JpegColor,
}

/// A picture decoded by libjpeg-turbo: `channels` is 1 (grey), 3 (RGB) or 4 (CMYK), rows packed.
pub struct TurboPixels {
    /// Width in pixels, after the scaling (see [`scaled_side`]).
    pub width: u32,
    /// Height in pixels, after the scaling (see [`scaled_side`]).
    pub height: u32,
    /// Bytes per pixel: 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// `width * height * channels` bytes, rows top to bottom, no padding.
    pub data: Vec<u8>,
    /// libjpeg reported a recoverable problem (e.g. a truncated file whose missing rows it filled
    /// in); the pixels are complete but may not be the whole picture.
    pub warning: Option<String>,
}

/// Why libjpeg-turbo refused a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurboError(pub String);

impl TurboError {
    /// Whether libjpeg refused a coding it does not implement (rather than damaged data): its
    /// messages for those (`JERR_SOF_UNSUPPORTED`, `JERR_BAD_PRECISION`, `JERR_ARITH_NOTIMPL`,
    /// `JERR_FRACT_SAMPLE_NOTIMPL`, `JERR_CONVERSION_NOTIMPL`, `JERR_NOT_COMPILED`, `JERR_EMPTY_IMAGE`
    /// for DNL, in jerror.h) say so in these words. [`super::jpeg::Layout::unsupported`] sorts
    /// those layouts out before decoding; this is the backstop.
    pub fn is_unsupported(&self) -> bool {
        let text = self.0.as_str();
        [
            "Unsupported",
            "not implemented",
            "not compiled",
            "Sorry",
            "DNL not supported",
        ]
        .iter()
        .any(|w| text.contains(w))
    }
}

/// Whether a TurboJPEG message is one of libjpeg's warnings (`JWRN_*` in jerror.h: the decoder
/// went on and every row was written) rather than an error that stopped it. TurboJPEG 2.1 reports
/// a fatal error that follows a warning with the warning's error code, so the text is what tells
/// them apart; libjpeg's message table has kept these texts since version 6b.
fn is_warning_text(text: &str) -> bool {
    [
        "Corrupt JPEG data",
        "Premature end of JPEG file",
        "Inconsistent progression sequence",
        "Invalid SOS parameters for sequential JPEG",
        "Unknown Adobe color transform code",
        "Warning: unknown JFIF revision number",
        "Application transferred too many scanlines",
    ]
    .iter()
    .any(|w| text.starts_with(w))
}

/// Whether a libjpeg warning says nothing about the pixels: stray bytes between segments
/// (`JWRN_EXTRANEOUS_DATA`, common in camera files), an unknown JFIF version or Adobe transform
/// code. Any other warning means damaged or missing data.
pub fn is_harmless_warning(text: &str) -> bool {
    text.contains("extraneous bytes before marker")
        || text.starts_with("Warning: unknown JFIF revision number")
        || text.starts_with("Unknown Adobe color transform code")
}

/// Run `f` with this thread's decompressor. `f` sets its flag when it leaves the handle in a
/// state the next file must not meet; the handle is then replaced, as after any error.
fn with_decompressor<T>(
    f: impl FnOnce(TjHandle, &mut bool) -> Result<T, TurboError>,
) -> Result<T, TurboError> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: no arguments; a null return is handled below.
            let handle = unsafe { tjInitDecompress() };
            if handle.is_null() {
                return Err(TurboError(
                    "libjpeg-turbo could not create a decompressor".into(),
                ));
            }
            *slot = Some(Decompressor(handle));
        }
        let mut stale = false;
        let result = match slot.as_ref() {
            Some(d) => f(d.0, &mut stale),
            None => Err(TurboError("no decompressor".into())),
        };
        if result.is_err() || stale {
            // TurboJPEG 2.1 leaves a handle whose header call failed half-way through a header
            // (it aborts only on success): the next file would then be read from that state and
            // refused, or given a 0x0 header. A fresh handle costs a few microseconds.
            *slot = None;
        }
        result
    })
}

fn last_error(handle: TjHandle) -> String {
    // SAFETY: tjGetErrorStr2 returns a pointer to a NUL-terminated string owned by the handle (or a
    // static buffer), valid until the next call on this handle; it is copied out at once.
    unsafe {
        let text = tjGetErrorStr2(handle);
        if text.is_null() {
            "unknown libjpeg-turbo error".to_string()
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}

fn jpeg_len(bytes: &[u8]) -> Result<c_ulong, TurboError> {
    c_ulong::try_from(bytes.len()).map_err(|_| TurboError("file too large".into()))
}

/// Read the frame header: dimensions and colour layout. Any sampling layout is accepted: TurboJPEG
/// 2.1 fails its header call on the ones it has no `TJSAMP_*` name for (4:1:0, 4:4:1, 3x1...)
/// after it has read and filled in everything else, and its decompressor does not need the name.
/// A header read with only warnings (stray bytes between segments) is a header read.
pub fn read_header(bytes: &[u8]) -> Result<JpegHeader, TurboError> {
    let len = jpeg_len(bytes)?;
    with_decompressor(|handle, stale| {
        let (mut w, mut h, mut subsamp, mut colorspace) = (0, 0, -1, -1);
        // SAFETY: the buffer pointer and length describe `bytes`; the out-pointers are locals.
        let rc = unsafe {
            tjDecompressHeader3(
                handle,
                bytes.as_ptr(),
                len,
                &mut w,
                &mut h,
                &mut subsamp,
                &mut colorspace,
            )
        };
        // The outputs are written only once libjpeg has read the whole header (tjDecompressHeader3
        // in turbojpeg.c): set, they mean the header was read, whatever the sampling name.
        if rc != 0 && (w <= 0 || h <= 0 || colorspace < 0) {
            return Err(TurboError(last_error(handle)));
        }
        // A failed header call leaves the handle mid-header.
        *stale = rc != 0;
        Ok((w, h, colorspace))
    })
    .and_then(|(w, h, colorspace)| {
        if w <= 0 || h <= 0 {
            return Err(TurboError(format!("header gives a {w}x{h} image")));
        }
        let color = match colorspace {
            TJCS_GRAY => JpegColor::Gray,
            TJCS_YCBCR | TJCS_RGB => JpegColor::Color,
            TJCS_CMYK | TJCS_YCCK => JpegColor::Cmyk,
            other => return Err(TurboError(format!("unknown JPEG colour space {other}"))),
        };
        Ok(JpegHeader {
            width: w as u32,
            height: h as u32,
            color,
        })
    })
}

/// Dimension of a side of `full` pixels decoded at `1/denominator` (libjpeg rounds up: `TJSCALED`).
pub fn scaled_side(full: u32, denominator: u32) -> u32 {
    full.div_ceil(denominator)
}

/// Decode at `1/denominator` scale (1, 2, 4 or 8). Gray JPEGs give one channel, CMYK and YCCK ones
/// four (CMYK, as stored), others RGB, or their luma alone with `luma_only` (for YCbCr files the Y
/// channel as coded: libjpeg-turbo then skips the chroma inverse DCT, which at reduced scale costs
/// more than luma's, and the colour conversion). `header` must come from [`read_header`] on the
/// same bytes. A file libjpeg could only partly decode (cut short, damaged entropy data) gives its
/// pixels with the warning; an error that stopped the decoder is an `Err`.
pub fn decode_scaled(
    bytes: &[u8],
    header: &JpegHeader,
    denominator: u32,
    luma_only: bool,
) -> Result<TurboPixels, TurboError> {
    if !matches!(denominator, 1 | 2 | 4 | 8) {
        return Err(TurboError(format!("unsupported scale 1/{denominator}")));
    }
    let (format, channels) = match header.color {
        JpegColor::Gray => (TJPF_GRAY, 1u8),
        JpegColor::Color if luma_only => (TJPF_GRAY, 1u8),
        JpegColor::Color => (TJPF_RGB, 3u8),
        JpegColor::Cmyk => (TJPF_CMYK, 4u8),
    };
    let width = scaled_side(header.width, denominator);
    let height = scaled_side(header.height, denominator);
    let pitch = width as usize * usize::from(channels);
    let (Ok(c_width), Ok(c_height), Ok(c_pitch)) = (
        c_int::try_from(width),
        c_int::try_from(height),
        c_int::try_from(pitch),
    ) else {
        return Err(TurboError(format!("{width}x{height} is too large")));
    };
    let mut data = vec![0u8; pitch * height as usize];
    let len = jpeg_len(bytes)?;
    with_decompressor(|handle, _| {
        // SAFETY: `data` holds exactly pitch * height bytes, the size TurboJPEG writes for a
        // width x height destination at this pitch; the input pointer/length describe `bytes`.
        let rc = unsafe {
            tjDecompress2(
                handle,
                bytes.as_ptr(),
                len,
                data.as_mut_ptr(),
                c_width,
                c_pitch,
                c_height,
                format,
                TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS,
            )
        };
        let mut warning = None;
        if rc != 0 {
            let message = last_error(handle);
            // SAFETY: the handle is valid; the call only reads its error state.
            let code = unsafe { tjGetErrorCode(handle) };
            if code != TJERR_WARNING || !is_warning_text(&message) {
                return Err(TurboError(message));
            }
            warning = Some(message);
        }
        Ok(TurboPixels {
            width,
            height,
            channels,
            data,
            warning,
        })
    })
}

/// CMYK as a JPEG stores it to RGB, the way browsers and the `image` crate show it: every CMYK
/// JPEG in use is Adobe's, whose values are stored inverted (255 = no ink), so each channel is
/// `stored C * stored K / 255`, rounded.
pub fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = u32::from(p[3]);
        for &c in &p[..3] {
            rgb.push(((u32::from(c) * k + 127) / 255) as u8);
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut out = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        img.write_with_encoder(enc).expect("encode");
        out
    }

    #[test]
    fn scaled_decodes_have_libjpeg_dimensions() {
        let bytes = encoded(203, 61);
        let header = read_header(&bytes).expect("header");
        assert_eq!((header.width, header.height), (203, 61));
        assert_eq!(header.color, JpegColor::Color);
        for (denominator, w, h) in [(1, 203, 61), (2, 102, 31), (4, 51, 16), (8, 26, 8)] {
            let pixels = decode_scaled(&bytes, &header, denominator, false).expect("decode");
            assert_eq!((pixels.width, pixels.height), (w, h), "1/{denominator}");
            assert_eq!(pixels.data.len(), (w * h * 3) as usize);
            assert!(pixels.warning.is_none());
        }
        assert!(decode_scaled(&bytes, &header, 3, false).is_err());
    }

    #[test]
    fn an_eighth_scale_pixel_is_its_block_mean() {
        // A picture of flat 8x8 blocks: the 1/8 decode (DC only) gives each block's value.
        let img = image::GrayImage::from_fn(64, 32, |x, y| {
            image::Luma([((x / 8) * 30 + (y / 8) * 7) as u8])
        });
        let mut bytes = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100);
        img.write_with_encoder(enc).expect("encode");
        let header = read_header(&bytes).expect("header");
        assert_eq!(header.color, JpegColor::Gray);
        let pixels = decode_scaled(&bytes, &header, 8, false).expect("decode");
        assert_eq!((pixels.width, pixels.height, pixels.channels), (8, 4, 1));
        for by in 0..4u32 {
            for bx in 0..8u32 {
                let expected = i32::from(img.get_pixel(bx * 8, by * 8)[0]);
                let got = i32::from(pixels.data[(by * 8 + bx) as usize]);
                assert!(
                    (expected - got).abs() <= 1,
                    "block ({bx},{by}): {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn damaged_files_are_errors_not_crashes() {
        let bytes = encoded(64, 64);
        assert!(read_header(b"\xff\xd8\xff\xe0 not a jpeg").is_err());
        assert!(read_header(&[]).is_err());
        // Truncated inside the entropy-coded data: libjpeg fills the missing rows and warns.
        let header = read_header(&bytes).expect("header");
        let cut = &bytes[..bytes.len() * 2 / 3];
        let pixels = decode_scaled(cut, &header, 1, false).expect("recoverable");
        assert!(pixels.warning.is_some());
    }
}

//! The structure of a JPEG file, read from its markers without decoding (ITU-T T.81 Annex B):
//! the coding process, sample precision, components and their sampling factors, the number of
//! scans, whether the file reaches its end marker, and the EXIF orientation.
//!
//! Why vigie reads this itself rather than asking a decoder: the decoders' header calls each
//! refuse layouts that are legal and that libjpeg-turbo decodes (TurboJPEG 2.1's header call has
//! no name for 4:1:0 or 3x1 sampling; the `image` crate's decoder wants power-of-two factors), and
//! neither says *why* a file cannot be decoded in terms a client can act on. From the markers,
//! every legal layout is sorted into one of three answers before any pixel is decoded: decoded by
//! libjpeg-turbo, `unsupported_format` with the reason (lossless, hierarchical, 12-bit, an
//! unusual number of components, fractional sampling, a scan flood), or `corrupt` (a frame header
//! T.81 does not allow). The walk is one linear pass over the bytes, with no allocation but the
//! component list.

use std::ops::Range;

/// Most scans libjpeg-turbo decodes in one file (`TJFLAG_LIMITSCANS`): each scan is another
/// pass over the whole coefficient buffer, so a file of thousands of tiny scans costs minutes of
/// CPU for a few kilobytes. A legal progressive file has about 10 (cjpeg's default script) and
/// the most any encoder script here writes is 190 (one per component and AC coefficient).
pub const MAX_SCANS: u32 = 500;

/// One component of the frame header: its id and sampling factors (T.81 B.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    /// The component's identifier (`C_i`).
    pub id: u8,
    /// Horizontal sampling factor (`H_i`), 1..=4 in a legal file.
    pub h: u8,
    /// Vertical sampling factor (`V_i`), 1..=4 in a legal file.
    pub v: u8,
}

/// How the file ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The end-of-image marker follows the last scan.
    Complete,
    /// The bytes stop inside the entropy-coded data of scan `scan` (from 1) or before the end
    /// marker: the rest of the picture is missing (libjpeg-turbo fills it with grey).
    Cut {
        /// The scan the bytes stop in (from 1; the last scan read when they stop after it).
        scan: u32,
    },
}

/// What the markers of a JPEG say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The start-of-frame marker's code, 0xC0..=0xCF (without 0xC4, 0xC8, 0xCC).
    pub sof: u8,
    /// Sample precision in bits (8, or 12 for extended JPEG; 2..=16 for lossless).
    pub precision: u8,
    /// Width in pixels, from the frame header.
    pub width: u16,
    /// 0 when the height is defined later, by a DNL marker (T.81 B.2.5).
    pub height: u16,
    /// The frame header's components, in order.
    pub components: Vec<Component>,
    /// The colour transform of an Adobe APP14 segment (0: none, 1: YCbCr, 2: YCCK).
    pub adobe_transform: Option<u8>,
    /// The TIFF structure of the last APP1 `Exif` segment before the first scan (what the
    /// `image` crate reads the orientation from).
    pub exif: Option<Range<usize>>,
    /// Start-of-scan markers found.
    pub scans: u32,
    /// Whether the file is complete or where it is cut.
    pub end: End,
}

/// Why a file's markers cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl Layout {
    /// The TIFF bytes of the EXIF segment, if any.
    pub fn exif<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.exif.clone().and_then(|r| bytes.get(r))
    }

    /// Why no decoder here can decode this layout (`Some`: answer `unsupported_format` with it),
    /// or `None` when libjpeg-turbo can. Damaged frame headers are [`Layout::damage`]'s.
    pub fn unsupported(&self) -> Option<String> {
        let process = match self.sof {
            0xC3 | 0xCB => Some("lossless JPEG (T.81 Annex H)"),
            0xC5..=0xC7 | 0xCD..=0xCF => Some("hierarchical JPEG (T.81 Annex J)"),
            _ => None,
        };
        if let Some(process) = process {
            return Some(format!(
                "{process}: libjpeg-turbo 2 and the browsers decode only DCT JPEGs"
            ));
        }
        if self.precision == 12 {
            return Some(
                "12-bit JPEG: libjpeg-turbo here and the browsers decode 8-bit samples only".into(),
            );
        }
        if !matches!(self.components.len(), 1 | 3 | 4) {
            return Some(format!(
                "a JPEG of {} colour components: no viewer shows one (1 is grey, 3 colour, 4 CMYK)",
                self.components.len()
            ));
        }
        if self.height == 0 {
            return Some(
                "a JPEG whose height is given by a DNL marker: libjpeg-turbo and the browsers do not support it"
                    .into(),
            );
        }
        if let Some(c) = self.fractional() {
            let (hmax, vmax) = self.max_sampling();
            return Some(format!(
                "component {} sampled {}x{} against {hmax}x{vmax}: a fractional ratio no decoder here \
                 (nor libjpeg-turbo in the browsers) can upsample",
                c.id, c.h, c.v
            ));
        }
        if self.scans > MAX_SCANS {
            return Some(format!(
                "a progressive JPEG of {} scans, over the {MAX_SCANS} libjpeg-turbo decodes (each scan \
                 is another pass over the whole picture)",
                self.scans
            ));
        }
        None
    }

    /// What makes the frame header illegal (T.81 B.2.2), if anything: `corrupt`.
    pub fn damage(&self) -> Option<String> {
        if self.width == 0 {
            return Some("the JPEG frame header gives a width of 0".into());
        }
        if self.components.is_empty() {
            return Some("the JPEG frame header lists no component".into());
        }
        if let Some(c) = self
            .components
            .iter()
            .find(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v))
        {
            return Some(format!(
                "component {} has sampling factors {}x{} (T.81 allows 1 to 4)",
                c.id, c.h, c.v
            ));
        }
        let dct = !matches!(self.sof, 0xC3 | 0xC7 | 0xCB | 0xCF);
        if dct && !matches!(self.precision, 8 | 12) {
            return Some(format!(
                "a DCT JPEG of {}-bit samples (T.81 allows 8 and 12)",
                self.precision
            ));
        }
        None
    }

    fn max_sampling(&self) -> (u8, u8) {
        self.components
            .iter()
            .fold((1, 1), |(h, v), c| (h.max(c.h), v.max(c.v)))
    }

    /// A component whose sampling factors do not divide the largest ones: libjpeg-turbo's
    /// upsampler handles integer ratios only (`JERR_FRACT_SAMPLE_NOTIMPL`).
    fn fractional(&self) -> Option<Component> {
        if self.components.len() < 2 {
            return None;
        }
        let (hmax, vmax) = self.max_sampling();
        self.components
            .iter()
            .find(|c| c.h == 0 || c.v == 0 || hmax % c.h != 0 || vmax % c.v != 0)
            .copied()
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Whether `code` is a start-of-frame marker (T.81 Table B.1: C0-CF but DHT, JPG and DAC).
fn is_sof(code: u8) -> bool {
    (0xC0..=0xCF).contains(&code) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

/// Read the markers of `bytes`, which must start with SOI. Bytes between markers that are not
/// part of any (libjpeg skips them with a warning) are skipped; data after the end marker is
/// ignored (files often carry trailers).
pub fn read_layout(bytes: &[u8]) -> Result<Layout, LayoutError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(LayoutError("not a JPEG: no start-of-image marker".into()));
    }
    let cut = |what: &str| LayoutError(format!("the JPEG ends inside its {what}"));
    let mut frame: Option<(u8, u8, u16, u16, Vec<Component>)> = None;
    let mut adobe_transform = None;
    let mut exif = None;
    let mut scans = 0u32;
    let mut pos = 2;
    loop {
        // The next marker: 0xFF, any fill 0xFFs, then a code other than 0x00 and 0xFF.
        let Some(ff) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
            return finish(
                frame,
                adobe_transform,
                exif,
                scans,
                End::Cut { scan: scans },
            );
        };
        pos += ff;
        while bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&code) = bytes.get(pos + 1) else {
            return finish(
                frame,
                adobe_transform,
                exif,
                scans,
                End::Cut { scan: scans },
            );
        };
        pos += 2;
        match code {
            0x00 => continue, // a stuffed zero outside a scan: stray bytes
            0xD9 => {
                if scans == 0 {
                    return Err(LayoutError("the JPEG ends (EOI) before any scan".into()));
                }
                return finish(frame, adobe_transform, exif, scans, End::Complete);
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => continue, // markers without a segment
            _ => {}
        }
        let what = if code == 0xDA {
            "scan header"
        } else {
            "header"
        };
        let length = usize::from(be16(bytes, pos).ok_or_else(|| cut(what))?);
        if length < 2 {
            return Err(LayoutError(format!(
                "marker 0x{code:02X} has a segment length of {length}"
            )));
        }
        let payload = bytes.get(pos + 2..pos + length).ok_or_else(|| cut(what))?;
        let payload_at = pos + 2;
        pos += length;
        match code {
            c if is_sof(c) => {
                if frame.is_some() {
                    // libjpeg refuses a second frame header in a non-hierarchical file; a
                    // hierarchical one is refused as such from the first.
                    continue;
                }
                let (&precision, rest) =
                    payload.split_first().ok_or_else(|| cut("frame header"))?;
                let height = be16(rest, 0).ok_or_else(|| cut("frame header"))?;
                let width = be16(rest, 2).ok_or_else(|| cut("frame header"))?;
                let count = usize::from(*rest.get(4).ok_or_else(|| cut("frame header"))?);
                let list = rest
                    .get(5..5 + 3 * count)
                    .ok_or_else(|| cut("frame header"))?;
                let components = list
                    .chunks_exact(3)
                    .map(|c| Component {
                        id: c[0],
                        h: c[1] >> 4,
                        v: c[1] & 0x0F,
                    })
                    .collect();
                frame = Some((code, precision, width, height, components));
            }
            0xE1 if scans == 0 && payload.len() > 6 && payload.starts_with(b"Exif\0\0") => {
                exif = Some(payload_at + 6..payload_at + payload.len());
            }
            0xEE if payload.len() >= 12 && payload.starts_with(b"Adobe") => {
                adobe_transform = Some(payload[11]);
            }
            0xDA => {
                if frame.is_none() {
                    return Err(LayoutError(
                        "a JPEG scan starts before the frame header".into(),
                    ));
                }
                scans += 1;
                // The entropy-coded data: up to the next marker that is not a stuffed zero or a
                // restart marker.
                loop {
                    let Some(ff) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
                        return finish(
                            frame,
                            adobe_transform,
                            exif,
                            scans,
                            End::Cut { scan: scans },
                        );
                    };
                    pos += ff;
                    while bytes.get(pos + 1) == Some(&0xFF) {
                        pos += 1;
                    }
                    match bytes.get(pos + 1) {
                        None => {
                            return finish(
                                frame,
                                adobe_transform,
                                exif,
                                scans,
                                End::Cut { scan: scans },
                            );
                        }
                        Some(0x00 | 0xD0..=0xD7) => pos += 2,
                        Some(_) => break,
                    }
                }
            }
            _ => {}
        }
    }
}

fn finish(
    frame: Option<(u8, u8, u16, u16, Vec<Component>)>,
    adobe_transform: Option<u8>,
    exif: Option<Range<usize>>,
    scans: u32,
    end: End,
) -> Result<Layout, LayoutError> {
    let Some((sof, precision, width, height, components)) = frame else {
        return Err(LayoutError(
            "the JPEG ends inside its header (no frame header)".into(),
        ));
    };
    if scans == 0 {
        return Err(LayoutError(
            "the JPEG ends inside its header, before any scan".into(),
        ));
    }
    Ok(Layout {
        sof,
        precision,
        width,
        height,
        components,
        adobe_transform,
        exif,
        scans,
        end,
    })
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
    fn a_whole_file_and_its_cuts() {
        let bytes = encoded(64, 48);
        let layout = read_layout(&bytes).expect("layout");
        assert_eq!((layout.width, layout.height, layout.precision), (64, 48, 8));
        assert_eq!(layout.sof, 0xC0);
        assert_eq!(layout.components.len(), 3);
        assert_eq!((layout.scans, layout.end), (1, End::Complete));
        assert_eq!(layout.unsupported(), None);
        assert_eq!(layout.damage(), None);
        // Cut inside the scan, and just before the end marker.
        for cut in [bytes.len() / 2, bytes.len() - 2] {
            let l = read_layout(&bytes[..cut]).expect("layout");
            assert_eq!(l.end, End::Cut { scan: 1 }, "cut at {cut}");
        }
        // A trailer after the end marker changes nothing.
        let mut trailer = bytes.clone();
        trailer.extend_from_slice(b"PK\x03\x04 trailing archive");
        assert_eq!(read_layout(&trailer).expect("layout").end, End::Complete);
        // Cut inside the header: no layout.
        for cut in [3, 40, 100] {
            assert!(read_layout(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(read_layout(b"\xff\xd8").is_err());
        assert!(read_layout(b"not a jpeg").is_err());
    }

    #[test]
    fn frame_headers_are_sorted_into_decodable_unsupported_and_damaged() {
        let base = Layout {
            sof: 0xC0,
            precision: 8,
            width: 10,
            height: 10,
            components: vec![
                Component { id: 1, h: 2, v: 2 },
                Component { id: 2, h: 1, v: 1 },
                Component { id: 3, h: 1, v: 1 },
            ],
            adobe_transform: None,
            exif: None,
            scans: 1,
            end: End::Complete,
        };
        let with = |f: &dyn Fn(&mut Layout)| {
            let mut l = base.clone();
            f(&mut l);
            l
        };
        // Every integer ratio of factors 1-4 decodes, whatever the component.
        for (h, v) in [(3, 1), (4, 2), (1, 4), (4, 4), (3, 3)] {
            let l = with(&|l| l.components[0] = Component { id: 1, h, v });
            assert_eq!((l.unsupported(), l.damage()), (None, None), "{h}x{v}");
        }
        let l = with(&|l| l.components[1] = Component { id: 2, h: 2, v: 2 });
        assert_eq!((l.unsupported(), l.damage()), (None, None));
        let unsupported: [(&str, Layout); 7] = [
            ("lossless", with(&|l| l.sof = 0xC3)),
            ("hierarchical", with(&|l| l.sof = 0xC5)),
            ("12-bit", with(&|l| l.precision = 12)),
            ("components", with(&|l| l.components.truncate(2))),
            ("DNL", with(&|l| l.height = 0)),
            (
                "fractional",
                with(&|l| {
                    l.components[0] = Component { id: 1, h: 3, v: 1 };
                    l.components[1] = Component { id: 2, h: 2, v: 1 };
                }),
            ),
            ("scans", with(&|l| l.scans = MAX_SCANS + 1)),
        ];
        for (what, l) in unsupported {
            let reason = l.unsupported().unwrap_or_else(|| panic!("{what}"));
            assert!(!reason.is_empty());
        }
        for (what, l) in [
            ("width 0", with(&|l| l.width = 0)),
            ("factor 0", with(&|l| l.components[2].h = 0)),
            ("factor 5", with(&|l| l.components[0].v = 5)),
            ("precision 9", with(&|l| l.precision = 9)),
            ("no component", with(&|l| l.components.clear())),
        ] {
            assert!(l.damage().is_some(), "{what}");
        }
    }
}

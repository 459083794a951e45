//! The pictures the image benchmarks feed on: a directory's picture files, the largest of them
//! decoded, re-encoded as JPEG at the sizes a benchmark asks for.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::BenchError;
use super::measure::percentile;

/// File extensions read as pictures (any case): the formats vigie decodes.
const EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// A picture file: its path and its bytes.
pub type PictureFile = (PathBuf, Vec<u8>);

/// The picture files directly in `dir` (by extension), in path order, at most `max` of them, with
/// their bytes. Errors: `dir` or one of the files unreadable, or no picture in `dir`; each names
/// the path.
pub fn read_dir(dir: &Path, max: usize) -> Result<Vec<PictureFile>, BenchError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BenchError(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    paths.truncate(max);
    let mut out = Vec::new();
    for p in paths {
        let bytes = std::fs::read(&p).map_err(|e| BenchError(format!("{}: {e}", p.display())))?;
        out.push((p, bytes));
    }
    if out.is_empty() {
        return Err(BenchError(format!("no pictures in {}", dir.display())));
    }
    Ok(out)
}

/// The `n` largest (by pixel count) of `files` that decode, largest first (ties in the files'
/// order), each with its file's bytes: the largest need the least upscaling when re-encoded.
pub fn largest(files: &[PictureFile], n: usize) -> Vec<(&[u8], DynamicImage)> {
    let mut decoded: Vec<(&[u8], DynamicImage)> = files
        .iter()
        .filter_map(|(_, b)| Some((b.as_slice(), image::load_from_memory(b).ok()?)))
        .collect();
    decoded.sort_by_key(|(_, img)| {
        std::cmp::Reverse(u64::from(img.width()) * u64::from(img.height()))
    });
    decoded.truncate(n);
    decoded
}

/// `picture` as a baseline JPEG of the given quality (1-100), in RGB. Errors: the encoder's.
pub fn encode_jpeg(picture: &DynamicImage, quality: u8) -> Result<Vec<u8>, BenchError> {
    let mut out = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), quality);
    picture
        .to_rgb8()
        .write_with_encoder(encoder)
        .map_err(|e| BenchError(format!("encoding a JPEG: {e}")))?;
    Ok(out)
}

/// The median size in bytes of `pictures` (nearest rank), 0 when there are none.
pub fn median_bytes(pictures: &[Vec<u8>]) -> usize {
    let mut lengths: Vec<usize> = pictures.iter().map(Vec::len).collect();
    lengths.sort_unstable();
    percentile(&lengths, 0.5).unwrap_or(0)
}

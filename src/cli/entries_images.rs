//! Bank entries made from image files: every algorithm vigie holds, computed by `hashing`.

use std::io::Read;
use std::path::Path;

use crate::hashing::{HashingSetup, ImageHasher};
use crate::store::NewEntry;

use super::CliError;

/// The banking setup (every algorithm, the crop windows and keypoints a bank entry keeps), as
/// `AddEntries` computes them.
pub fn image_hasher() -> ImageHasher {
    HashingSetup::default().banking()
}

/// Hash one image file into a new entry whose external id is the file's SHA-256 (so adding the
/// same file twice updates one entry). The file is read up to the decoder's size limit.
pub fn entry_from_image(hasher: &ImageHasher, path: &Path) -> Result<NewEntry, CliError> {
    let limit = hasher.limits().max_encoded_bytes;
    let file =
        std::fs::File::open(path).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    if bytes.len() > limit {
        return Err(CliError(format!(
            "{}: larger than {limit} bytes",
            path.display()
        )));
    }
    let computed = hasher
        .hash_bytes(&bytes)
        .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    // Banked all the same (an exact hash still matches), but never silently.
    for w in crate::matcher::banking_warnings(&computed) {
        eprintln!("warning: {}: {w}", path.display());
    }
    let hashes = crate::matcher::entry_hashes(&computed);
    let external_id = match computed.sha256 {
        Some(h) => h.to_hex(),
        None => path.display().to_string(),
    };
    Ok(NewEntry {
        external_id,
        hashes,
        ..NewEntry::default()
    })
}

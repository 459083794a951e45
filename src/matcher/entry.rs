//! What a bank entry made from a picture holds: the hashes [`entry_hashes`] picks out of an
//! [`ImageHashes`] computed with the banking setup (`HashingSetup::banking`).

use crate::hashing::ImageHashes;
use crate::store::{EntryHashes, EntryKeypoints};

/// PDQ hashes of quality below this are too featureless to match on (Meta's recommendation for
/// PDQ, in ThreatExchange's `pdq` documentation). Uploads' PDQs under it are not looked up, and a
/// banked picture under it is flagged at banking time.
pub const MIN_PDQ_QUALITY: u8 = 50;

/// The hashes a bank entry made from a picture holds: the displayed picture's PDQ, pHash, dHash
/// and the exact hashes, the PDQs of its crop windows of good quality (when the hasher made them)
/// and its keypoints at each banked scale (what `AddEntries` stores for an image, and `vigie eval`
/// banks).
pub fn entry_hashes(h: &ImageHashes) -> EntryHashes {
    let mut hashes = EntryHashes {
        pdq: h.pdq.map(|p| p.hash),
        phash: h.phash,
        dhash: h.dhash,
        md5: h.md5,
        sha256: h.sha256,
        ..EntryHashes::default()
    };
    // Crop windows of good quality only: a featureless crop would match too much.
    hashes.set_windows(
        h.pdq_windows
            .iter()
            .filter(|p| p.quality >= MIN_PDQ_QUALITY)
            .map(|p| p.hash),
    );
    hashes.keypoints = EntryKeypoints::new(h.bank_keypoints.iter().copied());
    hashes
}

/// The warning a curator gets when a banked picture's PDQ is too featureless to match: `None` when
/// its quality is at least [`MIN_PDQ_QUALITY`] (or it has no PDQ).
pub fn banking_warning(h: &ImageHashes) -> Option<String> {
    h.pdq.filter(|p| p.quality < MIN_PDQ_QUALITY).map(|p| {
        format!(
            "PDQ quality {} is below {MIN_PDQ_QUALITY}: the picture is too featureless for PDQ to match it",
            p.quality
        )
    })
}

//! What a bank entry made from a picture holds: the hashes [`entry_hashes`] picks out of an
//! [`ImageHashes`] computed with the banking setup (`HashingSetup::banking`).

use crate::hashing::ImageHashes;
use crate::store::{EntryHashes, EntryKeypoints};

/// PDQ hashes of quality below this are too featureless to match on (Meta's recommendation for
/// PDQ, in ThreatExchange's `pdq` documentation). Uploads' PDQs under it are not looked up, and a
/// banked picture under it is flagged at banking time.
pub const MIN_PDQ_QUALITY: u8 = 50;

/// pHash and dHash of a picture whose quality ([`ImageHashes::quality64`], PDQ's gradient
/// measure on the grey picture they read) is below this are too featureless to match on: an
/// upload's are not looked up (with a note), a banked picture's are not kept (with a warning).
/// Without a floor, flat cards, plain white and plain navy all met a banked flat card by dHash
/// at distance 1-3 with confidence 0.999 (issue 15, field case `featureless-64bit`): the bits of
/// a flat grid are rounding noise, and a flat dHash is `0000000000000000`.
///
/// Why 32 and not PDQ's 50, measured with `vigie eval --corpus ../shared/corpus` (this rule off,
/// `queries.tsv` and `bank.tsv`): the copies whose best match was by pHash or dHash have
/// qualities from 34 up (`skimage_microaneurysms.jpg` recompressed to WebP q15 and at contrast
/// 0.6, both below PDQ's floor at 38 and 45: only their 64-bit hashes find them), the banked
/// pictures from 73; the field's featureless pictures score 0-12 (the flat card 5, the beige
/// card 12, white and navy 0). A smooth, low-texture picture of PDQ quality about 30 (the issue's
/// unseen photo that met an unrelated one by dHash at 5) scores 28-34 here: this quality follows
/// PDQ's within a few points (on 648 blurred and flattened corpus photos). 32 keeps every corpus
/// match and leaves out most such pictures. (Heavily blurred copies of a photo, quality down to
/// 0, still meet their original by 64-bit hash on those 648: the floor gives them up, as PDQ's
/// own floor does.)
pub const MIN_64_QUALITY: u8 = 32;

/// Least pHash/dHash quality of an upload for its *turned and mirrored* 64-bit hashes to be looked
/// up (its upright ones need [`MIN_64_QUALITY`]): PDQ's own floor, [`MIN_PDQ_QUALITY`], which the
/// 64-bit quality follows within a few points. A smooth picture's 64-bit hash is mostly the
/// direction of its gradient, and the seven other grid transforms of one smooth picture give
/// seven more chances to land on another's: on `vigie eval` (docs/EVALUATION.md, 2026-12-01) four
/// of the six false matches left were dHash at 7 bits, turned by 180 degrees or mirrored, between
/// two smooth sunset and gradient pictures of upload quality 37-49. Every turned or mirrored
/// 64-bit match of a corpus photo's copy had quality 100. Below the floor a turned copy is left
/// to the keypoints (PDQ's turned lookups stop at the same floor).
pub const MIN_TURNED_64_QUALITY: u8 = MIN_PDQ_QUALITY;

/// The hashes a bank entry made from a picture holds: the displayed picture's PDQ, pHash, dHash
/// and the exact hashes, the PDQs of its crop windows of good quality (when the hasher made them)
/// and its keypoints at each banked scale (what `AddEntries` stores for an image, and `vigie eval`
/// banks).
pub fn entry_hashes(h: &ImageHashes) -> EntryHashes {
    // 64-bit hashes of a featureless picture are not kept: they would meet other flat pictures.
    let good_64 = h.quality64.is_some_and(|q| q >= MIN_64_QUALITY);
    let mut hashes = EntryHashes {
        pdq: h.pdq.map(|p| p.hash),
        phash: h.phash.filter(|_| good_64),
        dhash: h.dhash.filter(|_| good_64),
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

/// The warnings a curator gets when a banked picture is not banked as given (one sentence each,
/// empty for a photo with texture): the picture is a template around a photo and only the photo
/// is banked (`ImageHashes::photo_box`, see `hashing::regions::template_photo`); its PDQ's
/// quality is below [`MIN_PDQ_QUALITY`], or its pHash/dHash quality below [`MIN_64_QUALITY`]
/// (those are then not kept, see [`entry_hashes`]). The entry is banked all the same: its exact
/// hashes still match.
pub fn banking_warnings(h: &ImageHashes) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(r) = h.photo_box {
        warnings.push(format!(
            "the picture is a template around a photo (a listing page, a chat screenshot, a flyer, a story frame): only the photo, {}x{} pixels at ({}, {}), is banked (the file's MD5 and SHA-256 too); its frame would match every other picture in the same template",
            r.width, r.height, r.x, r.y
        ));
    }
    if let Some(p) = h.pdq.filter(|p| p.quality < MIN_PDQ_QUALITY) {
        warnings.push(format!(
            "PDQ quality {} is below {MIN_PDQ_QUALITY}: the picture is too featureless for PDQ to match it",
            p.quality
        ));
    }
    let has_64 = h.phash.is_some() || h.dhash.is_some();
    if let Some(q) = h.quality64.filter(|q| has_64 && *q < MIN_64_QUALITY) {
        warnings.push(format!(
            "pHash/dHash quality {q} is below {MIN_64_QUALITY}: the picture is too featureless for them to match it, they are not kept"
        ));
    }
    warnings
}

//! Query planning: which hashes of an upload are looked up, under which transform.
//!
//! A hash of `t(upload)` meets the banked picture when `upload = t⁻¹(banked)`, so each hash is
//! filed under `t⁻¹`: the transform that turns the banked picture into the upload, as a trust
//! team reads it ("rotated 90 degrees").

use super::entry::{MIN_64_QUALITY, MIN_PDQ_QUALITY, MIN_TURNED_64_QUALITY};
use crate::bits::{Hash64, Hash256};
use crate::hashing::keypoints::UploadKeypoints;
use crate::hashing::perceptual64::{GRID_TRANSFORMS, PHASH_TRANSFORMS};
use crate::hashing::{Dihedral, ImageHashes};
use crate::store::{EntryHashes, Md5};

/// The transforms a content box is looked up under: upright and mirrored. Each lookup is a search
/// of the whole PDQ index (about 12% of a screen's CPU went to lookups with all eight per box).
pub const REGION_TRANSFORMS: [Dihedral; 2] = [Dihedral::Original, Dihedral::FlipHorizontal];

/// What to look up for one upload.
#[derive(Clone, Debug, Default)]
pub struct QueryHashes {
    /// PDQ hashes with the transform each stands for: the displayed picture first, then its
    /// dihedral variants, and Meta's-rule hash when it differs, each filed under the transform
    /// that turns the banked picture into the upload.
    pub pdq: Vec<(Dihedral, Hash256)>,
    /// PDQ of the upload's content boxes (see `hashing::regions`), each under
    /// [`REGION_TRANSFORMS`].
    pub pdq_regions: Vec<(Dihedral, Hash256)>,
    /// PDQ of the upload turned back by each trial turn: searched in the crop windows only.
    pub pdq_trial_turns: Vec<Hash256>,
    /// The upload's pHash (upright).
    pub phash: Option<Hash64>,
    /// The upload's dHash (upright).
    pub dhash: Option<Hash64>,
    /// pHash of the upload under the grid transforms, each filed under the transform that turns
    /// the banked picture into the upload.
    pub phash_turned: Vec<(Dihedral, Hash64)>,
    /// dHash of the upload under the grid transforms, filed as `phash_turned`.
    pub dhash_turned: Vec<(Dihedral, Hash64)>,
    /// pHash of the upload's content boxes (upright).
    pub phash_regions: Vec<Hash64>,
    /// dHash of the upload's content boxes (upright).
    pub dhash_regions: Vec<Hash64>,
    /// MD5 of the upload's bytes.
    pub md5: Option<Md5>,
    /// SHA-256 of the upload's bytes.
    pub sha256: Option<Hash256>,
    /// The upload's point sets (today one: of the whole picture).
    pub keypoints: Vec<UploadKeypoints>,
    /// The frames of an animated upload besides its default image (see `ImageHashes::frames`),
    /// each looked up upright against the whole pictures.
    pub frames: Vec<FrameQuery>,
}

/// What to look up for one frame of an animation: its hashes, upright, against the whole
/// pictures' indexes. A match through it says which frame (`MatchInfo::frame`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameQuery {
    /// The frame's place in the animation, from 0.
    pub index: u32,
    /// The frame's PDQ; left out below [`MIN_PDQ_QUALITY`], as the whole picture's.
    pub pdq: Option<Hash256>,
    /// The frame's pHash; left out below [`MIN_64_QUALITY`], as the whole picture's.
    pub phash: Option<Hash64>,
    /// The frame's dHash; left out below [`MIN_64_QUALITY`].
    pub dhash: Option<Hash64>,
}

/// The 64-bit hashes of an upload's grid transforms, each filed under its inverse (the transform
/// from the banked picture to the upload).
fn turned_64<const N: usize>(
    hashes: Option<[Hash64; N]>,
    transforms: [Dihedral; N],
) -> Vec<(Dihedral, Hash64)> {
    hashes
        .map(|hs| transforms.iter().map(|t| t.inverse()).zip(hs).collect())
        .unwrap_or_default()
}

impl QueryHashes {
    /// The lookups for an uploaded image's hashes (made with `HashingSetup::screening`). PDQ of
    /// quality below [`MIN_PDQ_QUALITY`], pHash/dHash of quality below [`MIN_64_QUALITY`], and
    /// their turned and mirrored lookups below [`MIN_TURNED_64_QUALITY`], are left out, and said
    /// so in `notes` (one sentence each); the hasher's warnings (a file cut
    /// short or damaged, frames left unscreened) are passed on to `notes` first. An animation's
    /// other frames are looked up under the same quality rules; a picture featureless as displayed
    /// whose stored pixels are not (an alpha channel that hides them) has those looked up too.
    pub fn from_image(h: &ImageHashes, notes: &mut Vec<String>) -> QueryHashes {
        notes.extend(h.warnings.iter().cloned());
        // pHash and dHash (whole and turned) share the quality of the picture they read; each
        // content box has its own.
        let good_64 = |q: Option<u8>| q.is_some_and(|q| q >= MIN_64_QUALITY);
        let whole_64 = good_64(h.quality64);
        if !whole_64 && (h.phash.is_some() || h.dhash.is_some()) {
            notes.push(format!(
                "pHash and dHash not matched: quality {} is below {MIN_64_QUALITY} (the picture is too featureless)",
                h.quality64.unwrap_or(0)
            ));
        }
        // A smooth picture turned resembles other smooth pictures: its turned and mirrored 64-bit
        // hashes need PDQ's floor.
        let turned_ok = h.quality64.is_some_and(|q| q >= MIN_TURNED_64_QUALITY);
        if whole_64 && !turned_ok && (h.phash_turned.is_some() || h.dhash_turned.is_some()) {
            notes.push(format!(
                "pHash and dHash not matched turned or mirrored: quality {} is below {MIN_TURNED_64_QUALITY} (a smooth picture turned resembles other smooth pictures)",
                h.quality64.unwrap_or(0)
            ));
        }
        let boxes_64 = || h.pdq_regions.iter().filter(|r| good_64(r.quality64));
        let mut q = QueryHashes {
            phash: h.phash.filter(|_| whole_64),
            dhash: h.dhash.filter(|_| whole_64),
            phash_turned: turned_64(h.phash_turned.filter(|_| turned_ok), PHASH_TRANSFORMS),
            dhash_turned: turned_64(h.dhash_turned.filter(|_| turned_ok), GRID_TRANSFORMS),
            phash_regions: boxes_64().filter_map(|r| r.phash).collect(),
            dhash_regions: boxes_64().filter_map(|r| r.dhash).collect(),
            md5: h.md5,
            sha256: h.sha256,
            keypoints: h.query_keypoints.clone(),
            pdq: Vec::new(),
            pdq_regions: Vec::new(),
            pdq_trial_turns: Vec::new(),
            frames: h
                .frames
                .iter()
                .map(|f| {
                    let good_64 = good_64(f.quality64);
                    FrameQuery {
                        index: f.index,
                        pdq: f
                            .pdq
                            .filter(|p| p.quality >= MIN_PDQ_QUALITY)
                            .map(|p| p.hash),
                        phash: f.phash.filter(|_| good_64),
                        dhash: f.dhash.filter(|_| good_64),
                    }
                })
                .filter(|f| f.pdq.is_some() || f.phash.is_some() || f.dhash.is_some())
                .collect(),
        };
        if let Some(pdq) = h.pdq {
            if pdq.quality < MIN_PDQ_QUALITY {
                notes.push(format!(
                    "PDQ not matched: quality {} is below {MIN_PDQ_QUALITY} (the picture is too featureless)",
                    pdq.quality
                ));
            } else {
                match h.pdq_dihedral {
                    Some(all) => q.pdq.extend(
                        Dihedral::ALL
                            .iter()
                            .map(|t| t.inverse())
                            .zip(all.iter().map(|p| p.hash)),
                    ),
                    None => q.pdq.push((Dihedral::Original, pdq.hash)),
                }
                if let Some(meta) = h.pdq_meta {
                    // Meta's rule sees the stored pixels: a list from another platform holds this hash.
                    q.pdq.push((Dihedral::Original, meta.hash));
                }
            }
        }
        // A picture featureless as displayed whose stored pixels are not (an alpha channel that
        // hides them): the stored pixels are screened all the same.
        if let (Some(shown), Some(meta)) = (h.pdq, h.pdq_meta)
            && shown.quality < MIN_PDQ_QUALITY
            && meta.quality >= MIN_PDQ_QUALITY
        {
            notes.push(format!(
                "the picture as displayed is featureless but its stored pixels are not (quality {}): those were screened",
                meta.quality
            ));
            q.pdq.push((Dihedral::Original, meta.hash));
        }
        // Content boxes (trimmed borders, the photo in a screenshot) are looked up on their own
        // quality: a framed picture whose frame dragged the whole hash's quality down still counts.
        for region in h
            .pdq_regions
            .iter()
            .filter(|r| r.pdq.quality >= MIN_PDQ_QUALITY)
        {
            if region.trial_turn {
                q.pdq_trial_turns.push(region.pdq.hash);
                continue;
            }
            match region.dihedral {
                Some(all) => q.pdq_regions.extend(
                    Dihedral::ALL
                        .iter()
                        .map(|t| t.inverse())
                        .zip(all.iter().map(|p| p.hash))
                        .filter(|(t, _)| REGION_TRANSFORMS.contains(t)),
                ),
                None => q.pdq_regions.push((Dihedral::Original, region.pdq.hash)),
            }
        }
        q
    }

    /// The lookups for hashes the client computed (upright only; no quality is known for them).
    pub fn from_hashes(hashes: &EntryHashes) -> QueryHashes {
        QueryHashes {
            pdq: hashes
                .pdq
                .map(|h| vec![(Dihedral::Original, h)])
                .unwrap_or_default(),
            phash: hashes.phash,
            dhash: hashes.dhash,
            md5: hashes.md5,
            sha256: hashes.sha256,
            ..QueryHashes::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::HasherBuilder;

    #[test]
    fn content_boxes_are_looked_up_upright_and_mirrored_only() {
        let bridge = image::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bridge.jpg"
        ))
        .expect("fixture")
        .to_rgb8();
        let (w, h) = bridge.dimensions();
        let mut framed = image::RgbImage::from_pixel(w + 200, h + 200, image::Rgb([255, 255, 255]));
        image::imageops::overlay(&mut framed, &bridge, 100, 100);
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(framed)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode");
        let hashes = HasherBuilder::new()
            .dihedral(true)
            .regions(true)
            .build()
            .hash_bytes(&png)
            .expect("hash");
        assert!(!hashes.pdq_regions.is_empty(), "the frame is found");
        let mut notes = Vec::new();
        let q = QueryHashes::from_image(&hashes, &mut notes);
        // The whole picture under all eight transforms; each box upright and mirrored; the trial
        // turns apart (upright, for the crop windows only).
        assert_eq!(q.pdq.len(), 8);
        let (trials, boxes): (Vec<_>, Vec<_>) =
            hashes.pdq_regions.iter().partition(|r| r.trial_turn);
        assert_eq!(
            trials.len(),
            crate::hashing::regions::TRIAL_TURNS_DEGREES.len()
        );
        assert_eq!(
            q.pdq_trial_turns,
            trials.iter().map(|r| r.pdq.hash).collect::<Vec<_>>()
        );
        assert_eq!(q.pdq_regions.len(), 2 * boxes.len());
        for (region, pair) in boxes.iter().zip(q.pdq_regions.chunks(2)) {
            let all = region.dihedral.expect("dihedral");
            assert_eq!(pair[0], (Dihedral::Original, all[0].hash));
            let mirror = Dihedral::ALL
                .iter()
                .position(|t| *t == Dihedral::FlipHorizontal)
                .expect("mirror");
            assert_eq!(pair[1], (Dihedral::FlipHorizontal, all[mirror].hash));
        }
        assert!(notes.is_empty(), "{notes:?}");
    }

    /// A smooth upload (64-bit quality between the upright floor and PDQ's) is looked up upright
    /// by pHash and dHash, not turned or mirrored, and is told so; a textured one is looked up
    /// under every transform.
    #[test]
    fn a_smooth_upload_is_not_looked_up_turned_by_64_bit_hashes() {
        let bridge = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bridge.jpg"
        ))
        .expect("fixture");
        let mut hashes = HasherBuilder::new()
            .dihedral(true)
            .build()
            .hash_bytes(&bridge)
            .expect("hash");
        assert!(hashes.quality64.is_some_and(|q| q >= MIN_TURNED_64_QUALITY));
        let mut notes = Vec::new();
        let textured = QueryHashes::from_image(&hashes, &mut notes);
        assert_eq!(textured.phash_turned.len(), PHASH_TRANSFORMS.len());
        assert_eq!(textured.dhash_turned.len(), GRID_TRANSFORMS.len());
        assert!(notes.is_empty(), "{notes:?}");

        hashes.quality64 = Some(MIN_TURNED_64_QUALITY - 1);
        let smooth = QueryHashes::from_image(&hashes, &mut notes);
        assert_eq!(smooth.phash, hashes.phash);
        assert_eq!(smooth.dhash, hashes.dhash);
        assert!(smooth.phash_turned.is_empty() && smooth.dhash_turned.is_empty());
        assert!(
            notes.iter().any(|n| n.contains("turned or mirrored")),
            "{notes:?}"
        );
    }
}

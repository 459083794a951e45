//! `vigie eval`: how many edited re-uploads of banked pictures the matcher catches, and whether it
//! ever matches a picture it should not.
//!
//! Half of a corpus is banked (every other file in name order), half stays unbanked. Every picture
//! gets every edit of [`edits::catalogue`]; each edited copy is hashed as an upload and
//!
//! - compared with every banked entry under each hashing *method* (PDQ alone, PDQ with its
//!   rotations, pHash, dHash, and vigie's region steps): the distance to its own entry and to the
//!   nearest wrong one, plus histograms of true and unrelated pair distances (for calibration);
//! - screened through a [`Screener`] (the service's matcher on an in-memory store) for the
//!   decision that counts: found, missed, false match.

pub mod calibrate;
pub mod edits;
pub mod harness;
pub mod low_texture;
pub mod report;
pub mod screener;
pub mod templates;

pub use harness::{EvalConfig, EvalError, EvalRun, Screener, run};

use crate::bits::Hash256;
use crate::hashing::ImageHashes;
use crate::hashing::keypoints;
use crate::matcher::keypoint_vote;

/// Smallest PDQ quality that matches (Meta's recommendation; the matcher's rule too).
pub const MIN_QUALITY: u8 = 50;

/// A way of comparing an upload with a banked picture, from the plain global hash to vigie's
/// region steps. Each adds to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// PDQ of the upload against PDQ of the banked picture.
    Pdq,
    /// PDQ of the upload's eight rotations and mirrors.
    PdqDihedral,
    /// pHash (64 bits, image_hasher's DCT mean hash).
    Phash,
    /// dHash (64 bits, gradient hash).
    Dhash,
    /// PDQ with rotations, plus the upload's content boxes (trimmed borders, screenshot photo).
    PdqTrim,
    /// All of the above, plus the banked picture's crop windows.
    PdqRegions,
    /// Keypoints alone: the distance is the points of 64 that did not agree on one displacement
    /// (`matcher::keypoint_vote::votes_distance`).
    Keypoints,
}

impl Method {
    /// Every method, in report order (each adds to the one before, keypoints last); the
    /// per-method vectors of the harness are indexed in this order.
    pub const ALL: [Method; 7] = [
        Method::Pdq,
        Method::PdqDihedral,
        Method::Phash,
        Method::Dhash,
        Method::PdqTrim,
        Method::PdqRegions,
        Method::Keypoints,
    ];

    /// The method's snake_case name in reports and TSV columns (`pdq`, `pdq_dihedral`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Pdq => "pdq",
            Method::PdqDihedral => "pdq_dihedral",
            Method::Phash => "phash",
            Method::Dhash => "dhash",
            Method::PdqTrim => "pdq_trim",
            Method::PdqRegions => "pdq_regions",
            Method::Keypoints => "keypoints",
        }
    }

    /// The distance at which the method's baseline decision matches: PDQ at Meta's 31; the 64-bit
    /// hashes at 8 (the same 1/8 of the bits).
    pub fn threshold(self) -> u32 {
        match self {
            Method::Phash | Method::Dhash => 8,
            Method::Keypoints => keypoint_vote::votes_distance(keypoint_vote::MIN_VOTES),
            _ => 31,
        }
    }

    /// Hash width in bits (the histogram range).
    pub fn bits(self) -> u32 {
        match self {
            Method::Phash | Method::Dhash => 64,
            Method::Keypoints => keypoints::MAX_KEYPOINTS as u32,
            _ => 256,
        }
    }

    /// The distance between an upload and a banked picture under this method, `None` when a side
    /// lacks the hash (or PDQ quality is below [`MIN_QUALITY`], or the 64-bit hashes' quality
    /// below `matcher::MIN_64_QUALITY`).
    pub fn distance(self, query: &ImageHashes, entry: &ImageHashes) -> Option<u32> {
        let good = |q: u8| q >= MIN_QUALITY;
        let entry_pdq = entry.pdq.filter(|p| good(p.quality)).map(|p| p.hash);
        let query_ok = query.pdq.is_some_and(|p| good(p.quality));
        // pHash and dHash under their own floor, as the matcher holds them (`MIN_64_QUALITY`):
        // featureless pictures' pairs would otherwise fill the calibration's unrelated pairs at
        // distances the service never matches at.
        let good_64 = [query.quality64, entry.quality64]
            .iter()
            .all(|q| q.is_some_and(|q| q >= crate::matcher::MIN_64_QUALITY));
        let min_over = |qs: &mut dyn Iterator<Item = Hash256>, es: &[Hash256]| -> Option<u32> {
            qs.flat_map(|q| es.iter().map(move |e| q.distance(e))).min()
        };
        match self {
            Method::Pdq => Some(
                query
                    .pdq
                    .filter(|p| good(p.quality))?
                    .hash
                    .distance(&entry_pdq?),
            ),
            Method::PdqDihedral => {
                if !query_ok {
                    return None;
                }
                min_over(&mut query_dihedral(query), &[entry_pdq?])
            }
            Method::Phash if good_64 => Some(query.phash?.distance(&entry.phash?)),
            Method::Dhash if good_64 => Some(query.dhash?.distance(&entry.dhash?)),
            Method::Phash | Method::Dhash => None,
            Method::PdqTrim => min_over(&mut query_all(query), &[entry_pdq?]),
            Method::PdqRegions => {
                let mut es: Vec<Hash256> = entry_pdq.into_iter().collect();
                es.extend(
                    entry
                        .pdq_windows
                        .iter()
                        .filter(|p| good(p.quality))
                        .map(|p| p.hash),
                );
                min_over(&mut query_all(query), &es)
            }
            Method::Keypoints => {
                if entry.bank_keypoints.is_empty() || query.query_keypoints.is_empty() {
                    return None;
                }
                let votes = query
                    .query_keypoints
                    .iter()
                    .map(|upload| keypoint_vote::votes(&entry.bank_keypoints, upload))
                    .max()
                    .unwrap_or(0);
                Some(keypoint_vote::votes_distance(votes))
            }
        }
    }
}

/// The 64-bit hashes' extra lookups, calibrated apart from the upright whole picture (each is
/// another chance for an unrelated picture, so a distance means less there): the upload turned or
/// mirrored (`*_turned`), and the upload's content boxes (`*_box`), against the entry's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant64 {
    /// pHash of the upload under its grid transforms (`ImageHashes::phash_turned`).
    PhashTurned,
    /// dHash of the upload under its grid transforms.
    DhashTurned,
    /// pHash of each content box of good quality.
    PhashBox,
    /// dHash of each content box of good quality.
    DhashBox,
}

impl Variant64 {
    /// Every variant, in the order of the harness's variant histograms.
    pub const ALL: [Variant64; 4] = [
        Variant64::PhashTurned,
        Variant64::DhashTurned,
        Variant64::PhashBox,
        Variant64::DhashBox,
    ];

    /// The calibration table's name (`phash_turned`, `dhash_turned`, `phash_box`, `dhash_box`),
    /// as `matcher::confidence` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Variant64::PhashTurned => "phash_turned",
            Variant64::DhashTurned => "dhash_turned",
            Variant64::PhashBox => "phash_box",
            Variant64::DhashBox => "dhash_box",
        }
    }

    /// The closest of the upload's hashes of this variant to the entry's, under the 64-bit
    /// quality floor on both sides (a box's own quality for a box); `None` when there is none.
    pub fn distance(self, query: &ImageHashes, entry: &ImageHashes) -> Option<u32> {
        let floor = crate::matcher::MIN_64_QUALITY;
        let good = |q: Option<u8>| q.is_some_and(|q| q >= floor);
        if !good(entry.quality64) {
            return None;
        }
        let whole_ok = good(query.quality64);
        let boxes = || {
            query
                .pdq_regions
                .iter()
                .filter(|r| !r.trial_turn && good(r.quality64))
        };
        match self {
            Variant64::PhashTurned => {
                let e = entry.phash?;
                let turned = query.phash_turned.filter(|_| whole_ok)?;
                turned.iter().map(|h| h.distance(&e)).min()
            }
            Variant64::DhashTurned => {
                let e = entry.dhash?;
                let turned = query.dhash_turned.filter(|_| whole_ok)?;
                turned.iter().map(|h| h.distance(&e)).min()
            }
            Variant64::PhashBox => {
                let e = entry.phash?;
                boxes()
                    .filter_map(|r| r.phash)
                    .map(|h| h.distance(&e))
                    .min()
            }
            Variant64::DhashBox => {
                let e = entry.dhash?;
                boxes()
                    .filter_map(|r| r.dhash)
                    .map(|h| h.distance(&e))
                    .min()
            }
        }
    }
}

fn query_dihedral(q: &ImageHashes) -> Box<dyn Iterator<Item = Hash256> + '_> {
    match (&q.pdq_dihedral, q.pdq) {
        (Some(all), _) => Box::new(all.iter().map(|p| p.hash)),
        (None, Some(p)) => Box::new(std::iter::once(p.hash)),
        (None, None) => Box::new(std::iter::empty()),
    }
}

/// The upload's whole-picture hashes (when of good quality) and its good-quality region hashes.
fn query_all(q: &ImageHashes) -> impl Iterator<Item = Hash256> + '_ {
    let whole = q.pdq.is_some_and(|p| p.quality >= MIN_QUALITY);
    let whole = if whole { Some(query_dihedral(q)) } else { None };
    let regions = q
        .pdq_regions
        .iter()
        .filter(|r| r.pdq.quality >= MIN_QUALITY)
        .flat_map(|r| {
            let hashes: Vec<Hash256> = match &r.dihedral {
                Some(all) => all.iter().map(|p| p.hash).collect(),
                None => vec![r.pdq.hash],
            };
            hashes
        });
    whole.into_iter().flatten().chain(regions)
}

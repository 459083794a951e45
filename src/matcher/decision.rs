//! The decision: which candidates are matches, how confident, and whether an allow bank cancels
//! them.
//!
//! Each candidate is read from the store (bank, external id, label), held to its own bank's
//! threshold (tightened by the screen's `max_distance`; one bit tighter for the extra 64-bit
//! lookups; a keypoint match was held to its vote instead), the best match per entry is kept with
//! its calibrated confidence, and an allow-bank match cancels the block matches.

use std::collections::HashMap;

use super::confidence::{self, PdqKind};
use super::indexes::{Candidate, HashIndexes, MatchKind};
use super::query::QueryHashes;
use crate::bits::Hash64;
use crate::hashing::Dihedral;
use crate::store::{
    Algorithm, Bank, BankKind, Entry, EntryHashes, EntryId, Store, StoreError, Timestamp,
};

/// Which banks a screen looks at, and how strictly.
#[derive(Clone, Debug, Default)]
pub struct ScreenOptions {
    /// Bank names; empty means every enabled bank.
    pub banks: Vec<String>,
    /// Tightens every bank's maximum distance (bits).
    pub max_distance: Option<u32>,
    /// When non-zero, also tell whether the query came within a bank's threshold plus this many
    /// bits (a PDQ's; a 64-bit hash's a quarter of it) of an active entry, match or not
    /// ([`ScreenOutcome::near_bank`]): what probing detection (`guard`) counts. The upright
    /// whole-picture lookups (the ones a probe steers) are then searched that much wider; the
    /// others (transforms, content boxes, crop windows) are not, and do not count as near.
    pub near_margin: u32,
}

/// One matching entry, as reported to the screening client (never the entry's hashes).
#[derive(Clone, Debug, PartialEq)]
pub struct MatchInfo {
    /// The entry's bank.
    pub bank: String,
    /// Block or allow.
    pub bank_kind: BankKind,
    /// The entry's id in the store.
    pub entry_id: EntryId,
    /// The entry's id in the curator's system.
    pub external_id: String,
    /// The entry's label.
    pub label: String,
    /// The algorithm that matched (PDQ for a keypoint match).
    pub algorithm: Algorithm,
    /// Hamming distance in bits; for a keypoint match, the points of 64 that did not agree.
    pub distance: u32,
    /// Calibrated confidence in 0..=1 (see `confidence`).
    pub confidence: f64,
    /// How the upload met the entry.
    pub how: MatchKind,
    /// A block match cancelled by an allow-bank match of the same picture.
    pub suppressed: bool,
}

impl MatchInfo {
    /// The transform from the banked picture to the upload (`Original` for none).
    pub fn transform(&self) -> Dihedral {
        self.how.transform()
    }

    /// For a match by keypoints (a crop no hash could follow), the upload points that agreed;
    /// 0 for a hash match.
    pub fn keypoints(&self) -> u32 {
        self.how.votes().unwrap_or(0)
    }

    /// For an animation whose default image did not match but one of its frames did, the
    /// frame's place in the animation (from 0); `None` when the upload's picture matched.
    pub fn frame(&self) -> Option<u32> {
        self.how.frame()
    }
}

/// What a screen decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScreenOutcome {
    /// Every match, best first (confidence, then distance, then entry id).
    pub matches: Vec<MatchInfo>,
    /// At least one block match stands (not cancelled by an allow bank).
    pub matched: bool,
    /// Sentences for the client: hashes not looked up, banks not screened, cancellations.
    pub notes: Vec<String>,
    /// Whether the query came within a threshold plus [`ScreenOptions::near_margin`] of an
    /// active entry of a screened bank (always false when the margin is 0).
    pub near_bank: bool,
    /// Whether the caller's detail hides distances (`guard::redact`): every match's `distance`
    /// is then 0 and means nothing, and the edges leave it out or say it is hidden.
    pub distances_hidden: bool,
}

/// [`ScreenOptions::near_margin`] for a hash of `bits` bits: the margin as given for PDQ (256
/// bits), scaled to the hash's width (a quarter for 64-bit hashes, at least 1 bit).
pub fn margin_for(near_margin: u32, bits: u32) -> u32 {
    if near_margin == 0 {
        0
    } else {
        (near_margin * bits / 256).max(1)
    }
}

/// Why a screen could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// A bank named in the screen's options does not exist.
    #[error("no bank named {0:?}")]
    UnknownBank(String),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The distance a candidate must be within, from its bank's limit for the algorithm. A mirrored,
/// turned or content-box pHash/dHash lookup is another chance for an unrelated picture to land
/// within a 64-bit hash's radius, so it is held one bit tighter: on `vigie eval` the only false
/// match the mirrored lookups brought at the bank's 8 bits was an unrelated mirrored dHash at
/// exactly 8.
fn distance_limit(c: &Candidate, bank_limit: u32) -> u32 {
    match c.how {
        // A keypoint match was held to its vote threshold; a bank's limits are Hamming distances
        // of hashes and do not apply to it.
        MatchKind::Keypoints { .. } => u32::MAX,
        how if how != MatchKind::Whole(Dihedral::Original)
            && matches!(c.algorithm, Algorithm::Phash | Algorithm::Dhash) =>
        {
            bank_limit.saturating_sub(1)
        }
        _ => bank_limit,
    }
}

/// A whole-picture pHash or dHash match whose two 64-bit distances (the matching hash's and the
/// other one's, upload against entry) add up to more than this is not confirmed by the other hash
/// (see [`confirmed_64`]).
pub const JOINT_64_LIMIT: u32 = 14;

/// ... nor by PDQ when no PDQ of the upload (whole under any transform, content box, trial turn)
/// comes within this many bits of the entry's PDQ or one of its crop windows (see
/// [`confirmed_64`]). PDQ's own threshold is 31; this is looser than a match needs and tighter
/// than unrelated pictures come (16 at the closest on `vigie eval`, through a shared template).
pub const PDQ_SUPPORT_LIMIT: u32 = 24;

/// Whether a pHash or dHash match of the upright whole upload, or of one of its content boxes, has
/// a second signal behind it.
///
/// One 64-bit hash at distance 2-8 is weak evidence: a shared template (the same flyer, the same
/// dark chat screen, a tiled watermark) or two smooth pictures put unrelated uploads there, and on
/// `vigie eval` (docs/EVALUATION.md, 2026-12-01) most false matches left after the keypoint rule
/// were such upright dHash and pHash matches, of the whole picture or of a content box. The match
/// stands when the other 64-bit hash of the same picture or box agrees too (the two distances add up to at most [`JOINT_64_LIMIT`] of 128 bits: two hashes
/// of different filters rarely both land near by chance), or when PDQ sees the same picture
/// loosely ([`PDQ_SUPPORT_LIMIT`]), or when neither can be checked (an entry or a query of
/// client-made hashes that lacks the other hash and PDQ). This is the second-signal rule of issue
/// 17; matches under the other transforms are held one bit tighter instead ([`distance_limit`]),
/// since they carry much of what only the 64-bit hashes find (mirrored copies with a banner,
/// turned copies).
fn confirmed_64(c: &Candidate, query: &QueryHashes, entry: &EntryHashes) -> bool {
    if !matches!(c.algorithm, Algorithm::Phash | Algorithm::Dhash) {
        return true;
    }
    // Both 64-bit distances of one picture: the whole upload's, or the closest content box's (the
    // box lists are parallel: one pHash and one dHash per box of good quality).
    let both = |p: Hash64, d: Hash64| {
        entry
            .phash
            .zip(entry.dhash)
            .map(|(ep, ed)| p.distance(&ep) + d.distance(&ed))
    };
    let joint = match c.how {
        MatchKind::Whole(Dihedral::Original) => {
            query.phash.zip(query.dhash).and_then(|(p, d)| both(p, d))
        }
        MatchKind::ContentBox(Dihedral::Original) => query
            .phash_regions
            .iter()
            .zip(&query.dhash_regions)
            .filter_map(|(p, d)| both(*p, *d))
            .min(),
        _ => return true,
    };
    if joint.is_some_and(|j| j <= JOINT_64_LIMIT) {
        return true;
    }
    // PDQ is read only when the other 64-bit hash did not confirm (most matches stop above).
    let upload_pdq = query
        .pdq
        .iter()
        .chain(&query.pdq_regions)
        .map(|(_, h)| h)
        .chain(&query.pdq_trial_turns);
    let support = upload_pdq
        .flat_map(|u| {
            entry
                .pdq
                .into_iter()
                .chain(entry.windows())
                .map(move |b| u.distance(&b))
        })
        .min();
    match support {
        Some(s) => s <= PDQ_SUPPORT_LIMIT,
        // Nothing to check against: the match stands unless the other hash disagreed.
        None => joint.is_none(),
    }
}

/// Which calibration table a match reads.
fn calibration_kind(how: MatchKind) -> PdqKind {
    match how {
        MatchKind::Keypoints { .. } => PdqKind::Keypoints,
        MatchKind::ContentBox(_) | MatchKind::CropWindow => PdqKind::Region,
        MatchKind::Whole(Dihedral::Original) | MatchKind::Frame(_) => PdqKind::Whole,
        MatchKind::Whole(_) => PdqKind::Turned,
    }
}

/// Screens `query` against the banks: the indexes find candidates, the store says what they are,
/// each bank's thresholds decide. Errors: [`MatchError::UnknownBank`] for a named bank that does
/// not exist; a store read failure.
pub fn screen(
    store: &Store,
    indexes: &HashIndexes,
    query: &QueryHashes,
    options: &ScreenOptions,
) -> Result<ScreenOutcome, MatchError> {
    let mut outcome = ScreenOutcome::default();
    let all_banks = store.list_banks()?;
    let selected: Vec<&Bank> = if options.banks.is_empty() {
        all_banks.iter().filter(|b| b.enabled).collect()
    } else {
        let mut chosen = Vec::new();
        for name in &options.banks {
            let bank = all_banks
                .iter()
                .find(|b| &b.name == name)
                .ok_or_else(|| MatchError::UnknownBank(name.clone()))?;
            if bank.enabled {
                chosen.push(bank);
            } else {
                outcome
                    .notes
                    .push(format!("bank {name:?} is disabled and was not screened"));
            }
        }
        chosen
    };
    if selected.is_empty() {
        return Ok(outcome);
    }
    let by_name: HashMap<&str, &Bank> = selected.iter().map(|b| (b.name.as_str(), *b)).collect();
    let tighten = |d: u32| options.max_distance.map_or(d, |m| m.min(d));
    // Search each algorithm at the widest threshold of the selected banks; each candidate is then
    // held to its own bank's threshold.
    let margin = |a: Algorithm| {
        if a.is_perceptual() {
            margin_for(options.near_margin, a.bits())
        } else {
            0
        }
    };
    let radius = |a: Algorithm| {
        selected
            .iter()
            .map(|b| tighten(b.max_distance.get(a)))
            .max()
    };
    // Only the upright whole-picture lookups are searched wider for probing detection: they are
    // what a client steering its uploads moves (see `HashIndexes::candidates_near`).
    let candidates = indexes.candidates_near(query, radius, margin);

    let now = Timestamp::now();
    let mut best: HashMap<EntryId, MatchInfo> = HashMap::new();
    let mut entries: HashMap<EntryId, Option<Entry>> = HashMap::new();
    for c in candidates {
        let entry = match entries.get(&c.id) {
            Some(e) => e.clone(),
            None => {
                let e = store.get_entry(c.id)?;
                entries.insert(c.id, e.clone());
                e
            }
        };
        let Some(entry) = entry else { continue };
        if !entry.is_active(now) {
            continue;
        }
        let Some(bank) = by_name.get(entry.bank.as_str()) else {
            continue;
        };
        let limit = distance_limit(&c, tighten(bank.max_distance.get(c.algorithm)));
        if c.distance <= limit.saturating_add(margin(c.algorithm)) && options.near_margin > 0 {
            outcome.near_bank = true;
        }
        if c.distance > limit || !confirmed_64(&c, query, &entry.hashes) {
            continue;
        }
        let info = MatchInfo {
            bank: bank.name.clone(),
            bank_kind: bank.kind,
            entry_id: entry.id,
            external_id: entry.external_id.clone(),
            label: entry.label.clone(),
            algorithm: c.algorithm,
            distance: c.distance,
            confidence: confidence::confidence_of(c.algorithm, calibration_kind(c.how), c.distance),
            how: c.how,
            suppressed: false,
        };
        // The more confident match wins; between equals, an upright one, and the picture itself
        // over one of its frames.
        let rank = |m: &MatchInfo| {
            (
                m.confidence,
                std::cmp::Reverse(m.transform() != Dihedral::Original),
                std::cmp::Reverse(m.frame().is_some()),
            )
        };
        if best.get(&c.id).is_none_or(|old| rank(&info) > rank(old)) {
            best.insert(c.id, info);
        }
    }
    let mut matches: Vec<MatchInfo> = best.into_values().collect();
    // An allow bank holds known-benign pictures: when the upload matches one, block matches of the
    // same picture are reported but cancelled.
    let allowed = matches.iter().any(|m| m.bank_kind == BankKind::Allow);
    for m in matches
        .iter_mut()
        .filter(|m| m.bank_kind == BankKind::Block)
    {
        m.suppressed = allowed;
    }
    if allowed && matches.iter().any(|m| m.suppressed) {
        outcome
            .notes
            .push("block matches cancelled by an allow-bank match".into());
    }
    matches.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.distance.cmp(&b.distance))
            .then(a.entry_id.cmp(&b.entry_id))
    });
    outcome.matched = matches
        .iter()
        .any(|m| m.bank_kind == BankKind::Block && !m.suppressed);
    outcome.matches = matches;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{Bits, Hash256};

    /// A 64-bit hash with `ones` low bits set.
    fn h64(ones: u32) -> Hash64 {
        Bits([if ones == 0 {
            0
        } else {
            u64::MAX >> (64 - ones)
        }])
    }

    /// A PDQ with `ones` low bits of its first word set.
    fn h256(ones: u32) -> Hash256 {
        Bits([h64(ones).0[0], 0, 0, 0])
    }

    #[test]
    fn a_64_bit_match_needs_the_other_hash_or_pdq_to_agree() {
        let dhash_at = |distance, how| Candidate {
            id: 1,
            algorithm: Algorithm::Dhash,
            distance,
            how,
        };
        let whole = MatchKind::Whole(Dihedral::Original);
        // The upload's dHash meets the entry's at 6; its pHash is 4 or 20 bits off the entry's.
        let query = |phash_off| QueryHashes {
            dhash: Some(h64(6)),
            phash: Some(h64(phash_off)),
            ..QueryHashes::default()
        };
        let entry = EntryHashes {
            dhash: Some(h64(0)),
            phash: Some(h64(0)),
            ..EntryHashes::default()
        };
        let c = dhash_at(6, whole);
        assert!(confirmed_64(&c, &query(4), &entry), "6 + 4 of 128 bits");
        assert!(
            !confirmed_64(&c, &query(20), &entry),
            "6 + 20: a shared frame"
        );
        // PDQ seeing the same picture loosely confirms it instead; far, it does not.
        let with_pdq = |upload_off| QueryHashes {
            pdq: vec![(Dihedral::Original, h256(upload_off))],
            ..query(20)
        };
        let banked = EntryHashes {
            pdq: Some(h256(0)),
            ..entry.clone()
        };
        assert!(confirmed_64(&c, &with_pdq(PDQ_SUPPORT_LIMIT), &banked));
        assert!(!confirmed_64(&c, &with_pdq(PDQ_SUPPORT_LIMIT + 2), &banked));
        // A crop window of the entry counts as its PDQ.
        let mut windowed = entry.clone();
        windowed.set_windows([h256(10)]);
        assert!(confirmed_64(&c, &with_pdq(12), &windowed));
        // Nothing to check against (hashes imported without pHash or PDQ): the match stands.
        let alone = EntryHashes {
            dhash: Some(h64(0)),
            ..EntryHashes::default()
        };
        assert!(confirmed_64(&c, &query(20), &alone));
        // A content box is held to its own pair of hashes (the lists are parallel)...
        let boxed = QueryHashes {
            dhash_regions: vec![h64(6), h64(40)],
            phash_regions: vec![h64(30), h64(2)],
            ..QueryHashes::default()
        };
        let by_box = dhash_at(6, MatchKind::ContentBox(Dihedral::Original));
        assert!(!confirmed_64(&by_box, &boxed, &entry), "box 0: 6 + 30");
        let agreeing = QueryHashes {
            phash_regions: vec![h64(3), h64(2)],
            ..boxed
        };
        assert!(confirmed_64(&by_box, &agreeing, &entry), "box 0: 6 + 3");
        // ...while turned lookups and PDQ matches are not this rule's.
        let turned = dhash_at(6, MatchKind::Whole(Dihedral::Rotate180));
        assert!(confirmed_64(&turned, &query(20), &entry));
        let pdq = Candidate {
            algorithm: Algorithm::Pdq,
            ..c
        };
        assert!(confirmed_64(&pdq, &query(20), &entry));
    }

    #[test]
    fn mirrored_64_bit_candidates_are_held_one_bit_tighter() {
        let candidate = |algorithm, how| Candidate {
            id: 1,
            algorithm,
            distance: 8,
            how,
        };
        let limit = |a, t| distance_limit(&candidate(a, MatchKind::Whole(t)), 8);
        assert_eq!(limit(Algorithm::Dhash, Dihedral::Original), 8);
        assert_eq!(limit(Algorithm::Dhash, Dihedral::FlipHorizontal), 7);
        assert_eq!(limit(Algorithm::Phash, Dihedral::FlipHorizontal), 7);
        // A content box is another chance as well.
        let boxed = candidate(Algorithm::Phash, MatchKind::ContentBox(Dihedral::Original));
        assert_eq!(distance_limit(&boxed, 8), 7);
        // PDQ's transforms are part of its own lookup and calibration: untouched.
        assert_eq!(limit(Algorithm::Pdq, Dihedral::FlipHorizontal), 8);
        // A keypoint match was held to its vote; no Hamming limit applies to it.
        let by_points = Candidate {
            distance: 56,
            ..candidate(
                Algorithm::Pdq,
                MatchKind::Keypoints {
                    votes: 8,
                    mirrored: false,
                },
            )
        };
        assert_eq!(distance_limit(&by_points, 31), u32::MAX);
    }
}

//! Where hashes, the index and the banks meet: an upload's hashes in, matching bank entries out,
//! each with its distance and a calibrated confidence.
//!
//! By job:
//! - [`live`]: [`LiveBanks`], the one type every edge (gRPC, HTTP, `vigie eval`) calls: it owns
//!   the store and the live index, applies every bank change to both in commit order, and screens;
//! - [`entry`]: what a bank entry made from a picture holds;
//! - [`query`]: query planning, which of an upload's hashes are looked up under which transform;
//! - [`indexes`]: the set of in-memory indexes and candidate search in them;
//! - [`keypoint_vote`]: the keypoint vote and keypoint ids in the index;
//! - [`guard`]: per-key answer detail, rate limits and probing detection (bank hashes are not
//!   readable back through screen answers);
//! - [`decision`]: thresholds per bank, the best match per entry, confidence, allow banks;
//! - [`confidence`] and [`calibration`]: distance to confidence, from `vigie eval`'s table.

pub mod calibration;
pub mod confidence;
pub mod decision;
pub mod entry;
pub mod guard;
pub mod indexes;
pub mod keypoint_vote;
pub mod live;
pub mod query;

pub use decision::{MatchError, MatchInfo, ScreenOptions, ScreenOutcome};
pub use entry::{
    MIN_64_QUALITY, MIN_PDQ_QUALITY, MIN_TURNED_64_QUALITY, banking_warnings, entry_hashes,
};
pub use guard::{Access, Guard, GuardConfig, GuardError, Refusal};
pub use indexes::{Candidate, HashIndexes, IndexBytes, KeypointStats, MatchKind};
pub use live::{BankedImage, LiveBanks, ScreenError, ScreenedImage};
pub use query::{FrameQuery, QueryHashes};

//! Hashing: hostile and unusual inputs to the decoder, hashes pinned across upgrades, and
//! agreement with Meta's reference PDQ hashes. One test binary per area: each links RocksDB and
//! tonic.

#[path = "../common/mod.rs"]
mod common;

mod decoding;
mod featureless;
mod hash_stability;
mod pdq_reference;
mod templates;
mod viewer_pictures;

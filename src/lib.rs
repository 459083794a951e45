//! vigie: perceptual-hash screening of uploads against banks of known abusive imagery.
//!
//! The core (`bits`, `hashing`, `index`, `store`, `matcher`) knows nothing of the service layer,
//! the command line or protobuf; every edge calls [`matcher::LiveBanks`]. See docs/ARCHITECTURE.md.

#![warn(missing_docs)]

#[cfg(feature = "store")]
pub mod bench;
pub mod bits;
#[cfg(feature = "store")]
pub mod cli;
pub mod cluster;
pub mod config;
pub mod eval;
pub mod hashing;
pub mod http;
pub mod index;
pub mod matcher;
pub mod plot;
pub mod service;
pub mod store;

//! vigie: perceptual-hash screening of uploads against banks of known abusive imagery.
//!
//! The core (`hashing`, `index`) knows nothing of the service layer or protobuf.

pub mod bits;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod eval;
pub mod hashing;
pub mod index;
pub mod matcher;
pub mod plot;
pub mod service;
pub mod store;

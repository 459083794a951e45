//! The evaluation: the shipped calibration table, and the harness that edits, banks and screens
//! pictures. One test binary per area: each links RocksDB and tonic.

mod eval_calibration;
mod eval_grown;
mod eval_harness;

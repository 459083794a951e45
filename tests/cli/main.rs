//! The `vigie` binary run as an operator runs it (`CARGO_BIN_EXE_vigie`): hashing, matching, the
//! store commands, a crash mid-import, `serve` and the benchmarks. One test binary per area: each
//! links RocksDB and tonic, so fewer binaries link faster.

#[path = "../common/mod.rs"]
mod common;

mod bench_cli;
mod hash_cli;
mod hash_lists;
mod match_cli;
mod serve_cli;
mod store_cli;
mod store_crash;

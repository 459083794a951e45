//! The in-memory Hamming index: properties against a brute-force search, and readers during
//! writes. One test binary per area: each links RocksDB and tonic.

mod index_concurrency;
mod index_props;

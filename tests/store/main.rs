//! The RocksDB store through its API: banks, entries, imports, and the on-disk formats it must
//! keep reading. One test binary per area: each links RocksDB and tonic.

mod store_api;
mod store_formats;

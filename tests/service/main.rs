//! The gRPC service in process: end to end over a real listener (auth, limits, streams, status
//! codes), and over TLS; the HTTP/JSON edge over real HTTP; replicas of `vigie serve --nats`
//! sharing banks through a real NATS cluster. One test binary per area: each links RocksDB and
//! tonic.

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod http_api;
mod probing;
mod service_e2e;
mod service_tls;

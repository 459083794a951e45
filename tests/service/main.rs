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

use std::sync::Arc;
use tonic::transport::Channel;
use vigie::service::ServiceLimits;
use vigie::service::server::{self, RunningServer, ServerConfig};
use vigie::store::Store;

/// `store` served over plain gRPC on `127.0.0.1:0` (metrics on another free port) with `limits`,
/// ready, and a channel connected to it.
async fn serve(store: Arc<Store>, limits: ServiceLimits) -> (RunningServer, Channel) {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        insecure_no_auth: false,
        tls: None,
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        limits,
    };
    let mut server = server::start(config, store).await.expect("server starts");
    server.wait_ready().await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    (server, channel)
}

//! Starting and stopping the gRPC server: services behind their role interceptors, health,
//! reflection, TLS, the metrics endpoint, and the start-up index load.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::http;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use super::auth::Authenticator;
use super::banks::{BanksService, KeysService};
use super::metrics::{self, Metrics};
use super::proto::banks_server::BanksServer;
use super::proto::keys_server::KeysServer;
use super::proto::screening_server::ScreeningServer;
use super::screening::ScreeningService;
use super::{ServiceState, proto};
use crate::cluster::BankWriter;
use crate::matcher::LiveBanks;
use crate::store::Store;
use crate::store::api_keys::Role;

/// What the server starts with: defined with the settings that give it, in [`crate::config`].
pub use crate::config::{ServerConfig, TlsFiles};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS file could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// tonic's transport failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The start-up index load (or the server task) failed.
    #[error("index load failed: {0}")]
    Load(String),
}

/// A server running in the background.
pub struct RunningServer {
    /// The gRPC address bound (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// The metrics address bound, when metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// What every handler shares (the live banks among it).
    pub state: Arc<ServiceState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
    ready: tokio::sync::watch::Receiver<bool>,
}

impl RunningServer {
    /// Resolves once the index is loaded and health says SERVING.
    pub async fn wait_ready(&mut self) {
        let _ = self.ready.wait_for(|r| *r).await;
    }

    /// Stops accepting, lets in-flight calls finish, and returns when the server is down.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Load(format!("server task failed: {e}"))),
        }
    }
}

/// Rewrites the status tonic gives a request message over the size limit (OUT_OF_RANGE) into
/// RESOURCE_EXHAUSTED, the code gRPC specifies for a limit the server enforces. Also stamps each
/// request with its arrival time ([`super::screening::ArrivedAt`]) before the body is read.
#[derive(Clone, Copy)]
struct SizeLimitStatusLayer;

impl<S> tower::Layer<S> for SizeLimitStatusLayer {
    type Service = SizeLimitStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SizeLimitStatus { inner }
    }
}

#[derive(Clone)]
struct SizeLimitStatus<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for SizeLimitStatus<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        request
            .extensions_mut()
            .insert(super::screening::ArrivedAt(std::time::Instant::now()));
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
                && headers
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
            if too_large {
                headers.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(response)
        })
    }
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
}

/// A replica of a cluster, as the server takes it (`crate::cluster::Cluster`).
pub struct Replica {
    /// The banks, already loaded.
    pub banks: Arc<LiveBanks>,
    /// Their store (API keys are read from it).
    pub store: Arc<Store>,
    /// Where bank changes go: through the cluster's stream.
    pub writer: Arc<dyn BankWriter>,
    /// Whether the replica should take traffic (caught up, lag within bounds): health follows it.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// The replica's own metrics, appended to `/metrics`.
    pub metrics: metrics::Section,
}

/// Binds, starts serving (health NOT_SERVING), loads the index in the background, then flips health
/// to SERVING.
pub async fn start(config: ServerConfig, store: Arc<Store>) -> Result<RunningServer, ServerError> {
    let banks = Arc::new(LiveBanks::new(store.clone(), config.limits.hashing_setup()));
    start_with(config, store, banks, None).await
}

/// [`start`] for a replica of a cluster: its banks are loaded already, writes go through its
/// writer, and health says SERVING exactly while the replica is ready.
pub async fn start_replica(
    config: ServerConfig,
    replica: Replica,
) -> Result<RunningServer, ServerError> {
    let (banks, store) = (replica.banks.clone(), replica.store.clone());
    start_with(config, store, banks, Some(replica)).await
}

async fn start_with(
    config: ServerConfig,
    store: Arc<Store>,
    banks: Arc<LiveBanks>,
    replica: Option<Replica>,
) -> Result<RunningServer, ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let metrics = Arc::new(Metrics::default());
    // The live banks of one node start with an empty index; it is loaded in the background below
    // while health says NOT_SERVING. A replica's are loaded, and it writes through the cluster.
    let mut state = ServiceState::new(banks.clone(), config.limits.clone(), metrics.clone());
    let mut replica_ready = None;
    if let Some(replica) = replica {
        state.set_serving(false);
        state.writer = replica.writer;
        metrics.add_section(replica.metrics);
        replica_ready = Some(replica.ready);
    }
    let state = Arc::new(state);

    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let (stop_metrics_tx, stop_metrics_rx) = oneshot::channel::<()>();
    let metrics_addr = match config.metrics_listen {
        Some(maddr) => {
            let ml = metrics::bind(maddr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: maddr,
                    source,
                })?;
            let bound = ml.local_addr().map_err(|source| ServerError::Bind {
                addr: maddr,
                source,
            })?;
            tokio::spawn(metrics::serve_metrics(
                ml,
                metrics.clone(),
                banks.index_handle(),
                async {
                    let _ = stop_metrics_rx.await;
                },
            ));
            Some(bound)
        }
        None => None,
    };

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in ["", "vigie.v1.Screening", "vigie.v1.Banks"] {
        health_reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    // Reflection under both protocol names: `grpc.reflection.v1`, and `v1alpha`, which Python's
    // `grpcio-reflection` client and older `grpcurl` builds ask for (they get UNIMPLEMENTED from
    // a v1-only server). Same descriptors, both reflection services among them so that either
    // lists every service served; one builder each (building consumes it).
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;

    let auth = Authenticator::new(store.clone(), config.insecure_no_auth, metrics.clone());
    let limit = config.limits.max_request_bytes;
    let screening = ScreeningServer::new(Arc::new(ScreeningService {
        state: state.clone(),
    }))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(64 << 20);
    let banks = BanksServer::new(Arc::new(BanksService {
        state: state.clone(),
    }))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(64 << 20);
    let keys = KeysServer::new(Arc::new(KeysService {
        state: state.clone(),
    }));

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let identity = Identity::from_pem(read_file(&tls.cert)?, read_file(&tls.key)?);
        let mut tls_config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &tls.client_ca {
            tls_config = tls_config.client_ca_root(Certificate::from_pem(read_file(ca)?));
        }
        builder = builder
            .tls_config(tls_config)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    }
    let router = builder
        .layer(SizeLimitStatusLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            screening,
            auth.require(Role::Screen),
        ))
        .add_service(InterceptedService::new(banks, auth.require(Role::Curate)))
        .add_service(InterceptedService::new(keys, auth.require(Role::Admin)));

    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let ready_tx = Arc::new(ready_tx);
    let load_state = state.clone();
    let task = tokio::spawn(async move {
        let already_loaded = load_state.banks.is_loaded();
        let loader = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let stats = match already_loaded {
                true => Ok(None),
                false => load_state.banks.load().map(Some),
            };
            (stats, started.elapsed(), load_state)
        });
        // Accepted sockets are handed to tonic as they are, so its own `tcp_nodelay` does not
        // apply: without TCP_NODELAY, Nagle's algorithm holds a response's last small frame until
        // the client's delayed ACK, about 40 ms on Linux, on every request.
        let incoming = TcpListenerStream::new(listener).map(|socket| {
            if let Ok(s) = &socket
                && let Err(e) = s.set_nodelay(true)
            {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
            socket
        });
        let serve = router.serve_with_incoming_shutdown(incoming, async {
            let _ = shutdown_rx.await;
        });
        tokio::pin!(serve);
        let mut loader = Some(loader);
        let result = loop {
            tokio::select! {
                r = &mut serve => break r.map_err(ServerError::from),
                loaded = async { loader.as_mut().expect("polled only while Some").await }, if loader.is_some() => {
                    loader = None;
                    match loaded {
                        Ok((Ok(stats), took, state)) => {
                            if let Some(stats) = stats {
                                tracing::info!(entries = stats.entries, hashes = stats.hashes, ms = took.as_millis() as u64, "index loaded");
                            }
                            state.set_ready();
                            match replica_ready.take() {
                                None => {
                                    for name in ["", "vigie.v1.Screening", "vigie.v1.Banks"] {
                                        health_reporter.set_service_status(name, ServingStatus::Serving).await;
                                    }
                                    let _ = ready_tx.send(true);
                                }
                                Some(ready) => {
                                    tokio::spawn(follow_readiness(ready, state.clone(), health_reporter.clone(), ready_tx.clone()));
                                }
                            }
                        }
                        Ok((Err(e), _, _)) => {
                            tracing::error!(error = %e, "index load failed; the server stays NOT_SERVING");
                        }
                        Err(e) => tracing::error!(error = %e, "index load task failed"),
                    }
                }
            }
        };
        let _ = stop_metrics_tx.send(());
        result
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        shutdown: Some(shutdown_tx),
        task,
        ready: ready_rx,
    })
}

/// Health (and the HTTP `/status`, through [`ServiceState::is_serving`]) follows a replica's
/// readiness: SERVING while it is ready, NOT_SERVING otherwise.
async fn follow_readiness(
    mut ready: tokio::sync::watch::Receiver<bool>,
    state: Arc<ServiceState>,
    health: tonic_health::server::HealthReporter,
    first_ready: Arc<tokio::sync::watch::Sender<bool>>,
) {
    loop {
        let now = *ready.borrow_and_update();
        state.set_serving(now);
        let status = match now {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        };
        for name in ["", "vigie.v1.Screening", "vigie.v1.Banks"] {
            health.set_service_status(name, status).await;
        }
        if now {
            let _ = first_ready.send(true);
        }
        if ready.changed().await.is_err() {
            return;
        }
    }
}

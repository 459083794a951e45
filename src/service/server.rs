//! Starting and stopping the gRPC server: services behind their role interceptors, health,
//! reflection, TLS, the metrics endpoint, and the start-up index load.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
use super::connections::Gate;
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
    /// Calls in flight (health and reflection left out), counted until their response body ends.
    in_flight: Arc<AtomicUsize>,
    health: tonic_health::server::HealthReporter,
    shutdown: Option<oneshot::Sender<()>>,
    /// The serving task; `None` once [`RunningServer::until_stopped`] saw it end.
    task: Option<JoinHandle<Result<(), ServerError>>>,
    ready: tokio::sync::watch::Receiver<bool>,
}

impl RunningServer {
    /// Resolves once the index is loaded and health says SERVING.
    pub async fn wait_ready(&mut self) {
        let _ = self.ready.wait_for(|r| *r).await;
    }

    /// Resolves when the server stops by itself: the start-up load failed (a damaged store:
    /// [`ServerError::Load`]) or the transport failed. Cancel-safe: dropping the future leaves
    /// the server running. The caller exits non-zero on what it returns.
    pub async fn until_stopped(&mut self) -> Result<(), ServerError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = task.await;
        self.task = None;
        match result {
            Ok(r) => r,
            Err(e) => Err(ServerError::Load(format!("server task failed: {e}"))),
        }
    }

    /// Stops accepting, lets in-flight calls finish, and returns when the server is down.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.until_stopped().await
    }

    /// Calls in flight now (streams count until their response ends; health and reflection
    /// calls are not counted).
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Drains, then stops, within `deadline`: health says NOT_SERVING for every service at once
    /// (and stays reachable: the server still accepts connections, so a balancer sees it), calls
    /// in flight are given until the deadline to finish, then the server stops accepting and
    /// closes its connections; whatever is still open when the deadline has passed (a stream
    /// that never ends, a stalled body, a half-open connection) is cut. Returns what happened.
    pub async fn drain(mut self, deadline: Duration) -> Result<DrainReport, ServerError> {
        let started = Instant::now();
        self.state.set_draining();
        for name in ["", "vigie.v1.Screening", "vigie.v1.Banks"] {
            self.health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        tracing::info!(
            calls = self.calls_in_flight(),
            deadline_ms = deadline.as_millis() as u64,
            "draining: health NOT_SERVING"
        );
        while self.calls_in_flight() > 0 && started.elapsed() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let cut = self.calls_in_flight();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The graceful stop waits for connections to close; past the deadline (at least a short
        // grace for idle connections to see their GOAWAY) they are dropped.
        let rest = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(500));
        let stopped = match self.task.as_mut() {
            Some(task) => tokio::time::timeout(rest, task).await,
            None => Ok(Ok(Ok(()))),
        };
        let forced = match stopped {
            Ok(result) => {
                self.task = None;
                match result {
                    Ok(r) => r?,
                    Err(e) => return Err(ServerError::Load(format!("server task failed: {e}"))),
                }
                false
            }
            Err(_) => {
                if let Some(task) = self.task.take() {
                    task.abort();
                    let _ = task.await;
                }
                true
            }
        };
        let report = DrainReport {
            took: started.elapsed(),
            calls_cut: cut,
            connections_cut: forced,
        };
        tracing::info!(
            ms = report.took.as_millis() as u64,
            calls_cut = report.calls_cut,
            connections_cut = report.connections_cut,
            "drained"
        );
        Ok(report)
    }
}

/// How often the drain looks at the calls in flight.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// What [`RunningServer::drain`] did.
#[derive(Debug, Clone, Copy)]
pub struct DrainReport {
    /// From the start of the drain to the server being down.
    pub took: Duration,
    /// Calls still in flight when the deadline passed (0: every call finished).
    pub calls_cut: usize,
    /// Whether connections were still open at the deadline and were dropped.
    pub connections_cut: bool,
}

/// Counts one call in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its call counted in flight until the body is dropped (a stream's
/// response lives until its last message is sent or the client goes away).
struct TrackedBody<B> {
    inner: B,
    _in_flight: Option<InFlight>,
}

impl<B> http_body::Body for TrackedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Rewrites the status tonic gives a request message over the size limit (OUT_OF_RANGE) into
/// RESOURCE_EXHAUSTED, the code gRPC specifies for a limit the server enforces. Also stamps each
/// request with its arrival time ([`super::screening::ArrivedAt`]) before the body is read.
/// Also counts each call in flight (see [`RunningServer::drain`]).
#[derive(Clone)]
struct SizeLimitStatusLayer {
    in_flight: Arc<AtomicUsize>,
}

impl<S> tower::Layer<S> for SizeLimitStatusLayer {
    type Service = SizeLimitStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SizeLimitStatus {
            inner,
            in_flight: self.in_flight.clone(),
        }
    }
}

#[derive(Clone)]
struct SizeLimitStatus<S> {
    inner: S,
    in_flight: Arc<AtomicUsize>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for SizeLimitStatus<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body + Unpin + Send + 'static,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        request
            .extensions_mut()
            .insert(super::screening::ArrivedAt(std::time::Instant::now()));
        // Health and reflection are not work to wait for (a health Watch never ends).
        let path = request.uri().path();
        let counted = !(path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection."));
        let in_flight = counted.then(|| InFlight::new(&self.in_flight));
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let mut response = response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            });
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
    metrics.add_section(metrics::guard_section(state.guard.clone()));
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

    // Pings every 20 s: a live peer answers them, so the idle timeout (`connections.rs`) only
    // closes peers that send nothing at all; one unanswered for 20 s closes the connection.
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
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
    let in_flight = Arc::new(AtomicUsize::new(0));
    let router = builder
        .layer(SizeLimitStatusLayer {
            in_flight: in_flight.clone(),
        })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            screening,
            auth.require(Role::Screen),
        ))
        .add_service(InterceptedService::new(banks, auth.require(Role::Curate)))
        .add_service(InterceptedService::new(keys, auth.require(Role::Admin)));

    let health_reporter_for_drain = health_reporter.clone();
    let gate = Gate::new(config.limits.connections, metrics.connections.clone());
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let ready_tx = Arc::new(ready_tx);
    let load_state = state.clone();
    let state_for_watch = state.clone();
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
        let incoming = TcpListenerStream::new(listener).filter_map(move |socket| match socket {
            Ok(s) => {
                if let Err(e) = s.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
                // Over the connection cap the socket is closed at once (logged and counted).
                gate.admit(s).map(Ok)
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                Some(Err(e))
            }
        });
        let serve = router.serve_with_incoming_shutdown(incoming, async {
            let _ = shutdown_rx.await;
        });
        tokio::pin!(serve);
        let mut loader = Some(loader);
        // Aborted when this task ends or is itself aborted (a drain past its deadline), so that
        // it never keeps the store open.
        let mut health_watch: Option<AbortOnDrop> = None;
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
                        }
                        // A store that cannot be read whole is not served in part, nor kept
                        // NOT_SERVING forever: the server stops and `vigie serve` exits non-zero.
                        Ok((Err(e), _, _)) => {
                            tracing::error!(error = %e, "index load failed: the store cannot be read whole; stopping");
                            break Err(ServerError::Load(e.to_string()));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "index load task failed; stopping");
                            break Err(ServerError::Load(e.to_string()));
                        }
                    }
                    // Health from now on: SERVING once loaded (a replica: while it is ready), and
                    // `vigie.v1.Banks` NOT_SERVING while the disk is full.
                    health_watch = Some(AbortOnDrop::new(tokio::spawn(watch_health(
                        state_for_watch.clone(),
                        health_reporter.clone(),
                        replica_ready.take(),
                        ready_tx.clone(),
                    ))));
                }
            }
        };
        // Awaited, not only aborted: the watch holds the service state, hence the store, and a
        // caller that reopens the store once `shutdown` returns must find it released.
        if let Some(watch) = health_watch {
            watch.stop().await;
        }
        let _ = stop_metrics_tx.send(());
        result
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        in_flight,
        health: health_reporter_for_drain,
        shutdown: Some(shutdown_tx),
        task: Some(task),
        ready: ready_rx,
    })
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    fn new(task: JoinHandle<()>) -> AbortOnDrop {
        AbortOnDrop(Some(task))
    }

    /// Aborts the task and waits until it is gone (its future dropped).
    async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// How often [`watch_health`] looks at the store while writes are refused.
const WRITE_WATCH_PERIOD: Duration = Duration::from_secs(1);

/// Keeps health, the HTTP `/status` and metrics in step with the state once the index is loaded:
/// - `""` and `vigie.v1.Screening` say SERVING while [`ServiceState::is_serving`]: always for one
///   node, and on a cluster replica while `ready` (its readiness: caught up with its stream, lag
///   within bounds) says so (`ServiceState::set_serving` follows it);
/// - `vigie.v1.Banks` says SERVING while serving *and* the store takes writes: while the disk is
///   full it says NOT_SERVING (screens go on), the `vigie_store_writes_available` gauge reads 0,
///   and once a second the store tries to resume, so health comes back without waiting for a
///   client's write;
/// - `first_ready` turns true the first time the process serves.
///
/// Nothing is reported once a drain has begun (health stays NOT_SERVING). One task for both
/// sources so that the replica's readiness and the disk never overwrite each other's status.
async fn watch_health(
    state: Arc<ServiceState>,
    health: tonic_health::server::HealthReporter,
    mut ready: Option<tokio::sync::watch::Receiver<bool>>,
    first_ready: Arc<tokio::sync::watch::Sender<bool>>,
) {
    let mut reported: Option<(bool, bool)> = None;
    let mut tick = tokio::time::interval(WRITE_WATCH_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(ready) = ready.as_mut() {
            state.set_serving(*ready.borrow_and_update());
        }
        let mut writes = state.store().writes_available();
        if !writes {
            let banks = state.banks.clone();
            writes = tokio::task::spawn_blocking(move || banks.store().try_resume_writes().is_ok())
                .await
                .unwrap_or(false);
        }
        state.metrics.set_writes_available(writes);
        let serving = state.is_serving();
        if serving {
            first_ready.send_if_modified(|first| !std::mem::replace(first, true));
        }
        let now = (serving, writes);
        if reported != Some(now) && !state.is_draining() {
            let before = reported.is_none_or(|(_, before)| before);
            if before && !writes {
                tracing::warn!("writes unavailable (disk full): vigie.v1.Banks NOT_SERVING");
            } else if !before && writes {
                tracing::info!("writes available again: vigie.v1.Banks SERVING");
            }
            let status = |on: bool| match on {
                true => ServingStatus::Serving,
                false => ServingStatus::NotServing,
            };
            for name in ["", "vigie.v1.Screening"] {
                health.set_service_status(name, status(serving)).await;
            }
            health
                .set_service_status("vigie.v1.Banks", status(serving && writes))
                .await;
            reported = Some(now);
        }
        tokio::select! {
            _ = tick.tick() => {}
            changed = async {
                match ready.as_mut() {
                    Some(ready) => ready.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                // The replica is gone (its sender dropped at shutdown): keep its last word.
                if changed.is_err() {
                    ready = None;
                }
            }
        }
    }
}

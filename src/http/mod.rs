//! The HTTP/JSON edge: Meta's hasher-matcher-actioner routes (`/h`, `/m`, `/c`, `/status`, see
//! `docs/HMA-COMPAT.md`) and vigie's own calls as JSON (`/v1`, see `docs/HTTP.md`), over the same
//! core, keys, limits and metrics as the gRPC edge.
//!
//! axum on the hyper stack tonic already brings. Every answer is JSON, errors, unknown routes
//! (404) and wrong methods (405) included, because HMA clients (ROOST's Coop) parse every body
//! as JSON. The core never imports this module; it calls [`crate::matcher::LiveBanks`] through
//! the gRPC edge's [`ServiceState`], and shares the gRPC edge's key check
//! ([`crate::service::auth::Authenticator`]), worker permits (`run_bounded`) and metrics.

mod error;
pub mod fetch;
mod hma;
mod openapi;
mod upload;
mod v1;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::Layer;

pub use error::ApiError;
use fetch::Fetcher;

use crate::service::ServiceState;
use crate::service::auth::{Authenticator, Caller};
use crate::service::error::ServiceError;
use crate::store::Store;
use crate::store::api_keys::Role;

pub use crate::config::HttpConfig;

/// Why the HTTP edge did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error, or its task failed.
    #[error("HTTP server: {0}")]
    Serve(String),
}

/// The HTTP edge running in the background.
pub struct RunningHttp {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningHttp {
    /// Stops accepting, lets requests in flight finish, and returns when the server is down.
    /// Errors: the server had stopped with an I/O error.
    pub async fn shutdown(mut self) -> Result<(), HttpError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(r) => r.map_err(|e| HttpError::Serve(e.to_string())),
            Err(e) => Err(HttpError::Serve(e.to_string())),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Api {
    pub state: Arc<ServiceState>,
    auth: Authenticator,
    keyless_role: Option<Role>,
    pub fetcher: Arc<Fetcher>,
}

impl Api {
    /// The caller of a request needing `needed`: its key from `Authorization: Bearer <key>` or
    /// `X-API-KEY: <key>`, checked as the gRPC edge checks it; without any key header, the
    /// key-less role when one is set. Errors: 401 (no or unknown key), 403 (role too low).
    pub fn caller(&self, headers: &HeaderMap, needed: Role) -> Result<Caller, ServiceError> {
        let result = self.check_caller(headers, needed);
        if let Err(e) = &result {
            self.state.metrics.record_auth_failure(e.kind());
        }
        result
    }

    fn check_caller(&self, headers: &HeaderMap, needed: Role) -> Result<Caller, ServiceError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(crate::service::auth::bearer_key)
                    .ok_or(ServiceError::Unauthenticated)
            })
            .transpose()?;
        let api_key = headers
            .get("x-api-key")
            .map(|v| v.to_str().map_err(|_| ServiceError::Unauthenticated))
            .transpose()?;
        match (bearer.or(api_key), self.keyless_role) {
            (None, Some(role)) if !self.auth.is_insecure() => {
                if role.allows(needed) {
                    Ok(Caller {
                        name: KEYLESS_CALLER.into(),
                        role,
                        policy: None,
                        unrestricted: false,
                    })
                } else {
                    Err(ServiceError::PermissionDenied {
                        key: KEYLESS_CALLER.into(),
                        role: role.name(),
                        needed: needed.name(),
                    })
                }
            }
            (key, _) => self.auth.authenticate_key(key, needed),
        }
    }

    /// Runs `f` off the async runtime (store writes wait for the synced WAL). A panic in `f`
    /// answers 500; the server lives on.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r,
            Err(_) => Err(ServiceError::Internal("a request handler failed".into()).into()),
        }
    }

    /// Records a call's outcome and latency under `route` (the metrics' method label) and turns
    /// it into the answer.
    pub fn finish<T: IntoResponse>(
        &self,
        route: &'static str,
        started: Instant,
        result: Result<T, ApiError>,
    ) -> Response {
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.grpc_code(),
        };
        self.state
            .metrics
            .record_request(route, code, started.elapsed());
        match result {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// The audit actor's name for requests let in without a key (`key:http-keyless`).
pub const KEYLESS_CALLER: &str = "http-keyless";

/// Binds `config.listen` and serves the HTTP edge over `state` in the background until
/// [`RunningHttp::shutdown`]; API keys are checked against `store` (the store `state` runs on).
/// Errors: the address cannot be bound.
pub async fn start(
    config: HttpConfig,
    state: Arc<ServiceState>,
    store: Arc<Store>,
) -> Result<RunningHttp, HttpError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| HttpError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: config.listen,
        source,
    })?;
    if let Some(role) = config.keyless_role {
        tracing::warn!(
            role = role.name(),
            %addr,
            "HTTP requests without a key are accepted with role {}: every client that can reach this port may call it",
            role.name()
        );
    }
    let router = router(&config, state, store);
    // Wrapped around the whole router, so that it runs before routing.
    let app = axum::middleware::map_request(fold_slashes).layer(router);
    let (tx, rx) = oneshot::channel::<()>();
    // Without TCP_NODELAY, Nagle's algorithm holds an answer's last small segment until the
    // client's delayed ACK (about 40 ms on Linux), as on the gRPC edge.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<Request>::into_make_service(app),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    Ok(RunningHttp {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Every route, the body limit, and every non-JSON error answer rewritten as
/// `{"message": ...}`.
fn router(config: &HttpConfig, state: Arc<ServiceState>, store: Arc<Store>) -> Router {
    let api = Api {
        auth: Authenticator::new(store, config.insecure_no_auth, state.metrics.clone()),
        keyless_role: config.keyless_role,
        fetcher: Arc::new(Fetcher::new(
            config.fetch.clone(),
            state.limits.max_image_bytes,
        )),
        state: state.clone(),
    };
    // Multipart framing and form fields ride above the image limit.
    let body_limit = state.limits.max_request_bytes.saturating_add(64 * 1024);
    Router::new()
        .merge(hma::routes())
        .merge(v1::routes())
        .merge(openapi::routes())
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(api)
}

/// `//c/banks` (what a client whose base URL ends in `/` sends) is served as `/c/banks`.
async fn fold_slashes(mut request: Request) -> Request {
    let uri = request.uri();
    if uri.path().contains("//") {
        let mut path = String::with_capacity(uri.path().len());
        for c in uri.path().chars() {
            if !(c == '/' && path.ends_with('/')) {
                path.push(c);
            }
        }
        let rebuilt = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(path_and_query) = rebuilt.parse::<axum::http::uri::PathAndQuery>() {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            if let Ok(folded) = Uri::from_parts(parts) {
                *request.uri_mut() = folded;
            }
        }
    }
    request
}

async fn not_found(uri: Uri) -> Response {
    ApiError::status(
        StatusCode::NOT_FOUND,
        format!("no route {}: see /openapi.json", uri.path()),
    )
    .into_response()
}

/// Answers axum produced itself (405 for a wrong method, 413 and 400 from extractors) carry
/// plain text or nothing: HMA clients parse every body as JSON, so they become
/// `{"message": ...}` with the same status.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let (_, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_string(),
        s => s.canonical_reason().unwrap_or("request failed").to_string(),
    });
    let mut rewritten = ApiError::status(status, message).into_response();
    if let Some(allow) = allow {
        rewritten.headers_mut().insert(header::ALLOW, allow);
    }
    rewritten
}

/// A JSON answer with a status.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => {
            ApiError::from(ServiceError::Internal(format!("JSON encoding: {e}"))).into_response()
        }
    }
}

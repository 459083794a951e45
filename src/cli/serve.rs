//! `vigie serve`: the gRPC service on the RocksDB store under `--data-dir`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CliError;
use crate::config::Settings;
use crate::service::server;
use crate::store::{RocksOptions, Store};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "VIGIE_LISTEN")]
    pub listen: Option<String>,
    /// The store's directory (RocksDB) [default: ./vigie-data].
    #[arg(long, env = "VIGIE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "VIGIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Accept calls without an API key, as admin. For local trials only: logs a warning.
    #[arg(long, env = "VIGIE_INSECURE_NO_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub insecure_no_auth: Option<bool>,
    /// PEM certificate chain for TLS (with --tls-key).
    #[arg(long, env = "VIGIE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "VIGIE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA: clients must present a certificate it signed.
    #[arg(long, env = "VIGIE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "VIGIE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "VIGIE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Largest request message in bytes; larger ones get RESOURCE_EXHAUSTED [default: 33554432].
    #[arg(long, env = "VIGIE_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Images decoded and hashed at once [default: one per core, plus one].
    #[arg(long, env = "VIGIE_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
    /// How long a request may wait for a hashing worker before RESOURCE_EXHAUSTED [default: 10].
    #[arg(long, env = "VIGIE_QUEUE_WAIT_MS")]
    pub queue_wait_ms: Option<u64>,
    /// JPEGs are decoded at the largest DCT reduction keeping this shorter side; 0 = full size, PDQ
    /// then bit for bit Meta's [default: 256].
    #[arg(long, env = "VIGIE_DECODE_MIN_SIDE")]
    pub decode_min_side: Option<u32>,
    /// fsync the write-ahead log before acknowledging a write [default: true].
    #[arg(long, env = "VIGIE_SYNC_WRITES")]
    pub sync_writes: Option<bool>,
    /// Also match uploads by keypoints, for crops no hash follows (`--keypoints false` saves
    /// about 0.6 ms a screen and loses about 12 points of recall; see the README) [default: true].
    #[arg(long, env = "VIGIE_KEYPOINTS", num_args = 0..=1, default_missing_value = "true")]
    pub keypoints: Option<bool>,
    /// Also serve the HTTP/JSON API (HMA's routes and vigie's own, see docs/HTTP.md) on ADDR
    /// [default: off].
    #[arg(long, env = "VIGIE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Give HTTP requests that send no key this role (screen, curate or admin), for HMA clients
    /// that send none, on a trusted network only; logs a warning [default: off].
    #[arg(long, env = "VIGIE_HTTP_KEYLESS_ROLE")]
    pub http_keyless_role: Option<String>,
    /// Hosts (comma-separated) whose pictures `?url=` may fetch; a private or loopback address
    /// only when listed itself [default: none, fetching off].
    #[arg(long, env = "VIGIE_FETCH_ALLOW_HOSTS")]
    pub fetch_allow_hosts: Option<String>,
}

impl ServeArgs {
    fn settings(&self) -> Settings {
        Settings {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            insecure_no_auth: self.insecure_no_auth,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
            metrics_listen: self.metrics_listen.clone(),
            log_format: self.log_format.clone(),
            max_request_bytes: self.max_request_bytes,
            hash_workers: self.hash_workers,
            queue_wait_ms: self.queue_wait_ms,
            decode_min_side: self.decode_min_side,
            sync_writes: self.sync_writes,
            keypoints: self.keypoints,
            http_listen: self.http_listen.clone(),
            http_keyless_role: self.http_keyless_role.clone(),
            fetch_allow_hosts: self.fetch_allow_hosts.clone(),
        }
    }
}

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path).map_err(|e| CliError(e.to_string()))?,
        None => Settings::default(),
    };
    let config = args
        .settings()
        .or(file)
        .resolve()
        .map_err(|e| CliError(e.to_string()))?;
    init_logging(config.json_logs);
    if config.server.insecure_no_auth {
        tracing::warn!(
            "--insecure-no-auth: every call is accepted as admin without a key; for local trials only"
        );
    }
    let store = Store::open(
        &config.data_dir,
        &RocksOptions {
            sync_writes: config.sync_writes,
            ..RocksOptions::default()
        },
    )
    .map_err(|e| CliError(e.to_string()))?;
    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let running = server::start(config.server.clone(), store.clone())
            .await
            .map_err(|e| CliError(e.to_string()))?;
        let http = match config.http.clone() {
            Some(h) => {
                let http = crate::http::start(h, running.state.clone(), store)
                    .await
                    .map_err(|e| CliError(e.to_string()))?;
                tracing::info!(addr = %http.addr, "HTTP API serving");
                Some(http)
            }
            None => None,
        };
        tracing::info!(
            addr = %running.addr,
            data_dir = %config.data_dir.display(),
            metrics = ?running.metrics_addr,
            tls = config.server.tls.is_some(),
            "vigie serving"
        );
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        if let Some(http) = http
            && let Err(e) = http.shutdown().await
        {
            tracing::warn!(error = %e, "HTTP API stopped with an error");
        }
        running
            .shutdown()
            .await
            .map_err(|e| CliError(e.to_string()))?;
        tracing::info!("stopped; store closed");
        Ok::<_, CliError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

//! `vigie serve`: the gRPC service on the RocksDB store under `--data-dir`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    /// On SIGTERM/SIGINT: seconds given to calls in flight (streams included) before they are
    /// cut; health says NOT_SERVING from the signal on [default: 25].
    #[arg(long, env = "VIGIE_DRAIN_TIMEOUT_SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// Most connections open at once; more are closed at accept, logged [default: 4096].
    #[arg(long, env = "VIGIE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a new connection may take to send its first byte [default: 10].
    #[arg(long, env = "VIGIE_HANDSHAKE_TIMEOUT_SECS")]
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds a connection may go without sending a byte (live clients answer the server's
    /// pings every 20 s) [default: 90].
    #[arg(long, env = "VIGIE_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
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
            drain_timeout_secs: self.drain_timeout_secs,
            max_connections: self.max_connections,
            handshake_timeout_secs: self.handshake_timeout_secs,
            idle_timeout_secs: self.idle_timeout_secs,
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
    raise_descriptor_limit();
    if config.server.insecure_no_auth {
        tracing::warn!(
            "--insecure-no-auth: every call is accepted as admin without a key; for local trials only"
        );
    }
    // Only an existing store is served: a mistyped or unmounted --data-dir is refused, never
    // served empty; a damaged one is refused naming what is damaged.
    let store = Store::open(
        &config.data_dir,
        &RocksOptions {
            sync_writes: config.sync_writes,
            create_if_missing: false,
            ..RocksOptions::default()
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, data_dir = %config.data_dir.display(), "cannot open the store");
        CliError(e.to_string())
    })?;
    let store = Arc::new(store);
    let store_alive = Arc::downgrade(&store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut running = server::start(config.server.clone(), store)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        tracing::info!(
            addr = %running.addr,
            data_dir = %config.data_dir.display(),
            metrics = ?running.metrics_addr,
            tls = config.server.tls.is_some(),
            "vigie serving"
        );
        // A server that stops by itself (the store could not be loaded whole) ends the process
        // with a non-zero exit, so a supervisor sees the failure instead of a server that never
        // becomes ready.
        tokio::select! {
            _ = wait_for_signal() => {}
            stopped = running.until_stopped() => {
                return Err(CliError(match stopped {
                    Ok(()) => "the server stopped by itself".to_string(),
                    Err(e) => e.to_string(),
                }));
            }
        }
        tracing::info!("shutting down: draining in-flight requests");
        running
            .drain(config.drain_timeout)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        Ok::<_, CliError>(())
    })?;
    // Connection tasks cut by the drain still hold the store until the runtime drops them.
    runtime.shutdown_timeout(Duration::from_secs(5));
    if store_alive.upgrade().is_some() {
        tracing::warn!("stopped; the store was still in use at exit (closed by the exit)");
    } else {
        tracing::info!("stopped; store closed");
    }
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

/// Raises this process's open-file limit (`RLIMIT_NOFILE`) from its soft value to its hard one:
/// every connection is a descriptor, and RocksDB keeps up to 512 table files open, so the common
/// soft default of 1,024 (or 256) locks new clients out long before memory or CPU run short.
/// Logs the limit it leaves in place.
fn raise_descriptor_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct we pass; no other memory.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if got != 0 {
            tracing::warn!("cannot read the open-file limit");
            return;
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                tracing::warn!(
                    soft = before,
                    hard = limit.rlim_max,
                    "cannot raise the open-file limit"
                );
                return;
            }
        }
        tracing::info!(before, now = limit.rlim_cur, "open-file limit");
    }
}

//! `vigie serve`: the gRPC service on the RocksDB store under `--data-dir`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CliError;
use crate::cluster::{Cluster, ClusterConfig};
use crate::config::{ServeConfig, Settings};
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
    /// Clustered mode: NATS server URLs, comma-separated (nats://host:4222,...). Every bank change
    /// goes through a JetStream stream that every replica applies (docs/CLUSTER.md) [default: one
    /// node, no NATS].
    #[arg(long, env = "VIGIE_NATS")]
    pub nats: Option<String>,
    /// JetStream stream of the changes; its snapshot bucket is NAME_snapshots [default: VIGIE].
    #[arg(long, env = "VIGIE_NATS_STREAM")]
    pub nats_stream: Option<String>,
    /// Copies NATS keeps of the stream and the snapshots, when this replica creates them
    /// [default: 3].
    #[arg(long, env = "VIGIE_NATS_REPLICAS")]
    pub nats_replicas: Option<usize>,
    /// A write the stream has not acknowledged by then fails UNAVAILABLE [default: 5000].
    #[arg(long, env = "VIGIE_NATS_WRITE_TIMEOUT_MS")]
    pub nats_write_timeout_ms: Option<u64>,
    /// Publish a snapshot of the store after this many changes past the last one [default: 10000].
    #[arg(long, env = "VIGIE_NATS_SNAPSHOT_CHANGES")]
    pub nats_snapshot_changes: Option<u64>,
    /// ...or after this many minutes with any change past it [default: 10].
    #[arg(long, env = "VIGIE_NATS_SNAPSHOT_MINUTES")]
    pub nats_snapshot_minutes: Option<u64>,
    /// Report not ready when more than this many changes behind the stream [default: 1000].
    #[arg(long, env = "VIGIE_NATS_MAX_LAG")]
    pub nats_max_lag: Option<u64>,
    /// Stream retention, when this replica creates the stream: keep the last N changes; 0 keeps
    /// all [default: 0].
    #[arg(long, env = "VIGIE_NATS_MAX_CHANGES")]
    pub nats_max_changes: Option<u64>,
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
            nats: self.nats.clone(),
            nats_stream: self.nats_stream.clone(),
            nats_replicas: self.nats_replicas,
            nats_write_timeout_ms: self.nats_write_timeout_ms,
            nats_snapshot_changes: self.nats_snapshot_changes,
            nats_snapshot_minutes: self.nats_snapshot_minutes,
            nats_max_lag: self.nats_max_lag,
            nats_max_changes: self.nats_max_changes,
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
    let options = RocksOptions {
        sync_writes: config.sync_writes,
        ..RocksOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(cluster) = &config.cluster {
        return runtime.block_on(serve_replica(&config, cluster, &options));
    }
    let store = Store::open(&config.data_dir, &options).map_err(|e| CliError(e.to_string()))?;
    let store = Arc::new(store);
    runtime.block_on(async move {
        let running = server::start(config.server.clone(), store)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        tracing::info!(
            addr = %running.addr,
            data_dir = %config.data_dir.display(),
            metrics = ?running.metrics_addr,
            tls = config.server.tls.is_some(),
            "vigie serving"
        );
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running
            .shutdown()
            .await
            .map_err(|e| CliError(e.to_string()))?;
        tracing::info!("stopped; store closed");
        Ok::<_, CliError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Clustered mode: join the cluster (restoring a snapshot and loading the index first when
/// needed), serve, and on a signal stop serving, then stop applying.
async fn serve_replica(
    config: &ServeConfig,
    cluster_config: &ClusterConfig,
    options: &RocksOptions,
) -> Result<ExitCode, CliError> {
    let cluster = Cluster::start(
        cluster_config,
        &config.data_dir,
        options,
        config.server.limits.hashing_setup(),
    )
    .await
    .map_err(|e| CliError(e.to_string()))?;
    let progress = cluster.progress.clone();
    let replica = server::Replica {
        banks: cluster.live.clone(),
        store: cluster.store.clone(),
        writer: cluster.writer.clone(),
        ready: cluster.progress.watch_ready(),
        metrics: Arc::new(move |out: &mut String| progress.render(out)),
    };
    let running = server::start_replica(config.server.clone(), replica)
        .await
        .map_err(|e| CliError(e.to_string()))?;
    tracing::info!(
        addr = %running.addr,
        data_dir = %config.data_dir.display(),
        metrics = ?running.metrics_addr,
        nats = ?cluster_config.servers,
        stream = %cluster_config.stream,
        "vigie serving as a cluster replica"
    );
    wait_for_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    let served = running.shutdown().await;
    cluster.shutdown().await;
    served.map_err(|e| CliError(e.to_string()))?;
    tracing::info!("stopped; store closed");
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

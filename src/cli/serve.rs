//! `vigie serve`: the gRPC service (and, with `--http-listen`, the HTTP/JSON API) on the RocksDB
//! store under `--data-dir`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CliError;
use crate::cluster::{Cluster, ClusterConfig};
use crate::config::{ServeConfig, Settings};
use crate::service::server;
use crate::store::{RocksOptions, Store};

/// Arguments of `vigie serve`: the configuration file and every setting (see [`crate::config`]).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "VIGIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The settings given as flags or `VIGIE_*` variables (a flag beats its variable).
    #[command(flatten)]
    pub settings: Settings,
}

impl ServeArgs {
    /// The configuration `vigie serve` runs with: flags over environment over the file over the
    /// defaults. Errors: the file or a setting, named.
    pub fn resolve(&self) -> Result<ServeConfig, CliError> {
        self.settings
            .clone()
            .over_file(self.config.as_deref())
            .map_err(|e| CliError(e.to_string()))
    }
}

/// Installs the log subscriber on stderr: `RUST_LOG`'s filter (else `info`), JSON lines when
/// `json`, else text. A second call keeps the first subscriber.
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

/// Runs `vigie serve` until SIGINT or SIGTERM, then drains in-flight requests and closes the store.
/// Errors: the configuration, the store (missing, locked), the listener or TLS files.
pub fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let config = args.resolve()?;
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
    let http = match config.http.clone() {
        Some(h) => {
            let http = crate::http::start(h, running.state.clone(), cluster.store.clone())
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
        nats = ?cluster_config.servers,
        stream = %cluster_config.stream,
        "vigie serving as a cluster replica"
    );
    wait_for_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    if let Some(http) = http
        && let Err(e) = http.shutdown().await
    {
        tracing::warn!(error = %e, "HTTP API stopped with an error");
    }
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

#[cfg(test)]
mod tests {
    use std::process::Command;

    use clap::{CommandFactory, Parser};

    use crate::cli::{Cli, Command as CliCommand};

    /// One value per layer for a setting of each type (String, PathBuf, bool as a value and as a
    /// switch, usize, u64, u32), each different from the default and from the other layers.
    const FILE: &str = "listen = \"127.0.0.1:6001\"\ndata_dir = \"/from-file\"\n\
        sync_writes = false\nkeypoints = false\ninsecure_no_auth = true\nhash_workers = 3\n\
        queue_wait_ms = 11\ndecode_min_side = 300\n";
    const ENVIRONMENT: [(&str, &str); 8] = [
        ("VIGIE_LISTEN", "127.0.0.1:6002"),
        ("VIGIE_DATA_DIR", "/from-env"),
        ("VIGIE_SYNC_WRITES", "true"),
        ("VIGIE_KEYPOINTS", "true"),
        ("VIGIE_INSECURE_NO_AUTH", "false"),
        ("VIGIE_HASH_WORKERS", "4"),
        ("VIGIE_QUEUE_WAIT_MS", "12"),
        ("VIGIE_DECODE_MIN_SIDE", "512"),
    ];
    const FLAGS: [&str; 15] = [
        "--listen",
        "127.0.0.1:6003",
        "--data-dir",
        "/from-flags",
        "--sync-writes",
        "false",
        "--keypoints",
        "false",
        "--insecure-no-auth",
        "--hash-workers",
        "5",
        "--queue-wait-ms",
        "13",
        "--decode-min-side",
        "0",
    ];

    /// (listen port, data dir, sync writes, keypoints, no auth, workers, queue wait ms, min side)
    type Seen = (u16, String, bool, bool, bool, usize, u64, Option<u32>);

    fn seen(args: &[&str]) -> Seen {
        let cli = Cli::try_parse_from(["vigie", "serve"].iter().chain(args)).expect("parses");
        let CliCommand::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let c = serve.resolve().expect("resolves");
        let l = &c.server.limits;
        (
            c.server.listen.port(),
            c.data_dir.display().to_string(),
            c.sync_writes,
            l.keypoints,
            c.server.insecure_no_auth,
            l.hash_workers,
            l.queue_wait.as_millis() as u64,
            l.decode_min_side,
        )
    }

    /// The child half of `file_then_environment_then_flags_for_a_setting_of_each_type`, which
    /// runs it in a process of its own with the environment it needs (the environment of this
    /// process is shared by every test thread, so it is not changed here).
    #[test]
    #[ignore = "run by file_then_environment_then_flags_for_a_setting_of_each_type"]
    fn precedence_child() {
        let (Ok(file), Ok(layer)) = (
            std::env::var("PRECEDENCE_FILE"),
            std::env::var("PRECEDENCE_EXPECT"),
        ) else {
            eprintln!(
                "skipped: run by file_then_environment_then_flags_for_a_setting_of_each_type"
            );
            return;
        };
        let from_file: Seen = (
            6001,
            "/from-file".into(),
            false,
            false,
            true,
            3,
            11,
            Some(300),
        );
        let from_env: Seen = (
            6002,
            "/from-env".into(),
            true,
            true,
            false,
            4,
            12,
            Some(512),
        );
        let from_flags: Seen = (6003, "/from-flags".into(), false, false, true, 5, 13, None);
        let expected = match layer.as_str() {
            "file" => from_file,
            "environment" => from_env,
            other => panic!("unknown layer {other}"),
        };
        assert_eq!(
            seen(&["--config", &file]),
            expected,
            "without flags: the {layer}"
        );
        let mut with_flags = vec!["--config", &file];
        with_flags.extend(FLAGS);
        assert_eq!(seen(&with_flags), from_flags, "flags beat the {layer}");
        println!("precedence checked over the {layer}");
    }

    #[test]
    fn file_then_environment_then_flags_for_a_setting_of_each_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vigie.toml");
        std::fs::write(&file, FILE).expect("write");
        for layer in ["file", "environment"] {
            let mut child = Command::new(std::env::current_exe().expect("test binary"));
            child
                .args(["--exact", "cli::serve::tests::precedence_child"])
                .args(["--ignored", "--nocapture", "--test-threads=1"])
                .env("PRECEDENCE_FILE", &file)
                .env("PRECEDENCE_EXPECT", layer);
            for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("VIGIE_")) {
                child.env_remove(name);
            }
            if layer == "environment" {
                child.envs(ENVIRONMENT);
            }
            let out = child.output().expect("run the child test");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains(&format!("precedence checked over the {layer}")),
                "the child test did not run: {stdout}"
            );
        }
    }

    #[test]
    fn help_shows_each_default_and_variable() {
        let mut command = Cli::command();
        let serve = command.find_subcommand_mut("serve").expect("serve").clone();
        let help = |id: &str| -> String {
            let arg = serve
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no --{id}"));
            assert!(arg.get_env().is_some(), "{id} has no variable");
            arg.get_help().map(ToString::to_string).unwrap_or_default()
        };
        assert_eq!(
            help("listen"),
            "Address to listen on [default: 127.0.0.1:50051]"
        );
        assert!(help("data_dir").ends_with("[default: ./vigie-data]"));
        assert!(help("max_request_bytes").ends_with("[default: 33554432]"));
        assert!(help("queue_wait_ms").ends_with("[default: 10]"));
        assert!(help("decode_min_side").ends_with("[default: 256]"));
        assert!(help("keypoints").ends_with("see the README) [default: true]"));
        assert!(!help("tls_cert").contains("[default"), "no default: off");
        let hidden_default = serve
            .get_arguments()
            .filter(|a| a.get_id() != "help")
            .filter(|a| a.get_env().is_none() || !a.get_default_values().is_empty())
            .map(|a| a.get_id().to_string())
            .collect::<Vec<_>>();
        assert!(
            hidden_default.is_empty(),
            "every setting has a variable and takes its default from the table: {hidden_default:?}"
        );
        let rendered = serve.clone().render_help().to_string();
        assert!(
            rendered.contains("[env: VIGIE_QUEUE_WAIT_MS="),
            "{rendered}"
        );
    }
}

//! `vigie serve` configuration: command-line flags, `VIGIE_*` environment variables and a TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cluster::ClusterConfig;
use crate::service::ServiceLimits;
use crate::service::server::{ServerConfig, TlsFiles};

/// Every setting, each optional: one of these comes from the flags/environment, one from the file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub insecure_no_auth: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub log_format: Option<String>,
    pub max_request_bytes: Option<usize>,
    pub hash_workers: Option<usize>,
    pub queue_wait_ms: Option<u64>,
    pub decode_min_side: Option<u32>,
    pub sync_writes: Option<bool>,
    pub keypoints: Option<bool>,
    /// NATS server URLs, comma-separated: clustered mode (`crate::cluster`).
    pub nats: Option<String>,
    pub nats_stream: Option<String>,
    pub nats_replicas: Option<usize>,
    pub nats_write_timeout_ms: Option<u64>,
    pub nats_snapshot_changes: Option<u64>,
    pub nats_snapshot_minutes: Option<u64>,
    pub nats_max_lag: Option<u64>,
    pub nats_max_changes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub server: ServerConfig,
    pub data_dir: PathBuf,
    pub json_logs: bool,
    pub sync_writes: bool,
    /// Clustered mode: how to join the NATS cluster (`None`: one node, embedded).
    pub cluster: Option<ClusterConfig>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_DATA_DIR: &str = "./vigie-data";

impl Settings {
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// `self` where set, else `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            listen: self.listen.or(fallback.listen),
            data_dir: self.data_dir.or(fallback.data_dir),
            insecure_no_auth: self.insecure_no_auth.or(fallback.insecure_no_auth),
            tls_cert: self.tls_cert.or(fallback.tls_cert),
            tls_key: self.tls_key.or(fallback.tls_key),
            tls_client_ca: self.tls_client_ca.or(fallback.tls_client_ca),
            metrics_listen: self.metrics_listen.or(fallback.metrics_listen),
            log_format: self.log_format.or(fallback.log_format),
            max_request_bytes: self.max_request_bytes.or(fallback.max_request_bytes),
            hash_workers: self.hash_workers.or(fallback.hash_workers),
            queue_wait_ms: self.queue_wait_ms.or(fallback.queue_wait_ms),
            decode_min_side: self.decode_min_side.or(fallback.decode_min_side),
            sync_writes: self.sync_writes.or(fallback.sync_writes),
            keypoints: self.keypoints.or(fallback.keypoints),
            nats: self.nats.or(fallback.nats),
            nats_stream: self.nats_stream.or(fallback.nats_stream),
            nats_replicas: self.nats_replicas.or(fallback.nats_replicas),
            nats_write_timeout_ms: self
                .nats_write_timeout_ms
                .or(fallback.nats_write_timeout_ms),
            nats_snapshot_changes: self
                .nats_snapshot_changes
                .or(fallback.nats_snapshot_changes),
            nats_snapshot_minutes: self
                .nats_snapshot_minutes
                .or(fallback.nats_snapshot_minutes),
            nats_max_lag: self.nats_max_lag.or(fallback.nats_max_lag),
            nats_max_changes: self.nats_max_changes.or(fallback.nats_max_changes),
        }
    }

    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let addr = |setting: &'static str, text: &str| -> Result<SocketAddr, ConfigError> {
            text.parse().map_err(|e| ConfigError::Invalid {
                setting,
                message: format!("{text:?}: {e}"),
            })
        };
        let listen = addr("listen", self.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .map(|m| addr("metrics_listen", m))
            .transpose()?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: self.tls_client_ca,
            }),
            (None, None) if self.tls_client_ca.is_none() => None,
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "tls",
                    message: "tls_cert and tls_key go together (and tls_client_ca needs both)"
                        .into(),
                });
            }
        };
        let json_logs = match self.log_format.as_deref().unwrap_or("text") {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "log_format",
                    message: format!("{other:?}: expected text or json"),
                });
            }
        };
        let defaults = ServiceLimits::default();
        let max_request_bytes = self.max_request_bytes.unwrap_or(defaults.max_request_bytes);
        if max_request_bytes < 1024 {
            return Err(ConfigError::Invalid {
                setting: "max_request_bytes",
                message: "at least 1024".into(),
            });
        }
        let limits = ServiceLimits {
            max_request_bytes,
            max_image_bytes: max_request_bytes,
            hash_workers: self.hash_workers.unwrap_or(defaults.hash_workers).max(1),
            queue_wait: self
                .queue_wait_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.queue_wait),
            decode_min_side: match self.decode_min_side {
                Some(0) => None,
                Some(n) => Some(n),
                None => defaults.decode_min_side,
            },
            keypoints: self.keypoints.unwrap_or(defaults.keypoints),
        };
        let cluster = match self.nats.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(urls) => {
                let d = ClusterConfig::default();
                let c = ClusterConfig {
                    servers: urls
                        .split(',')
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty())
                        .collect(),
                    stream: self.nats_stream.unwrap_or(d.stream),
                    replicas: self.nats_replicas.unwrap_or(d.replicas),
                    write_timeout: self
                        .nats_write_timeout_ms
                        .map_or(d.write_timeout, Duration::from_millis),
                    snapshot_changes: self.nats_snapshot_changes.unwrap_or(d.snapshot_changes),
                    snapshot_interval: self
                        .nats_snapshot_minutes
                        .map_or(d.snapshot_interval, |m| Duration::from_secs(m * 60)),
                    max_lag: self.nats_max_lag.unwrap_or(d.max_lag),
                    max_changes: self.nats_max_changes.unwrap_or(d.max_changes),
                    ..d
                };
                c.validate().map_err(|message| ConfigError::Invalid {
                    setting: "nats",
                    message,
                })?;
                Some(c)
            }
        };
        Ok(ServeConfig {
            cluster,
            server: ServerConfig {
                listen,
                insecure_no_auth: self.insecure_no_auth.unwrap_or(false),
                tls,
                metrics_listen,
                limits,
            },
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            json_logs,
            sync_writes: self.sync_writes.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file: Settings =
            toml::from_str("listen = \"0.0.0.0:6000\"\nhash_workers = 3\nlog_format = \"json\"\n")
                .unwrap();
        let flags = Settings {
            listen: Some("127.0.0.1:7000".into()),
            ..Default::default()
        };
        let c = flags.or(file).resolve().unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.server.limits.hash_workers, 3);
        assert!(c.json_logs);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.sync_writes);
        assert_eq!(
            c.server.limits.decode_min_side,
            Some(crate::hashing::DEFAULT_DECODE_MIN_SIDE)
        );
        // 0 decodes JPEGs at full size (PDQ bit for bit Meta's).
        let full: Settings = toml::from_str("decode_min_side = 0\n").unwrap();
        assert_eq!(full.resolve().unwrap().server.limits.decode_min_side, None);
        let half: Settings = toml::from_str("decode_min_side = 512\n").unwrap();
        assert_eq!(
            half.resolve().unwrap().server.limits.decode_min_side,
            Some(512)
        );
        // Keypoint matching is on unless turned off.
        assert!(c.server.limits.keypoints);
        let off: Settings = toml::from_str("keypoints = false\n").unwrap();
        assert!(!off.resolve().unwrap().server.limits.keypoints);
        // One node unless NATS servers are named; then the cluster's defaults and overrides.
        assert!(c.cluster.is_none());
        let clustered: Settings = toml::from_str(
            "nats = \"nats://a:4222, nats://b:4222\"\nnats_replicas = 1\nnats_snapshot_minutes = 2\n",
        )
        .unwrap();
        let cluster = clustered.resolve().unwrap().cluster.unwrap();
        assert_eq!(cluster.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(cluster.replicas, 1);
        assert_eq!(cluster.snapshot_interval, Duration::from_secs(120));
        assert_eq!(cluster.stream, ClusterConfig::default().stream);
        let bad: Settings = toml::from_str("nats = \"nats://a\"\nnats_replicas = 7\n").unwrap();
        assert!(bad.resolve().unwrap_err().to_string().starts_with("nats"));
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(
            toml::from_str::<Settings>("lisen = \"x\"").is_err(),
            "unknown keys are refused"
        );
        let e = Settings {
            listen: Some("nowhere".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().starts_with("listen"), "{e}");
        let e = Settings {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().starts_with("tls"), "{e}");
    }
}

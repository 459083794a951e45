//! `vigie serve` configuration: command-line flags, `VIGIE_*` environment variables and a TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    pub http_listen: Option<String>,
    pub http_keyless_role: Option<String>,
    pub fetch_allow_hosts: Option<String>,
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
    /// The HTTP/JSON edge, when `http_listen` is set.
    pub http: Option<crate::http::HttpConfig>,
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
            http_listen: self.http_listen.or(fallback.http_listen),
            http_keyless_role: self.http_keyless_role.or(fallback.http_keyless_role),
            fetch_allow_hosts: self.fetch_allow_hosts.or(fallback.fetch_allow_hosts),
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
        let http = match self.http_listen.as_deref() {
            None => None,
            Some(text) => Some(crate::http::HttpConfig {
                listen: addr("http_listen", text)?,
                insecure_no_auth: self.insecure_no_auth.unwrap_or(false),
                keyless_role: self
                    .http_keyless_role
                    .as_deref()
                    .map(|r| {
                        r.parse().map_err(|_| ConfigError::Invalid {
                            setting: "http_keyless_role",
                            message: format!("{r:?}: expected screen, curate or admin"),
                        })
                    })
                    .transpose()?,
                fetch: crate::http::fetch::FetchPolicy {
                    allow_hosts: self
                        .fetch_allow_hosts
                        .as_deref()
                        .unwrap_or("")
                        .split(',')
                        .map(str::trim)
                        .filter(|h| !h.is_empty())
                        .map(str::to_string)
                        .collect(),
                    timeout: crate::http::fetch::FetchPolicy::DEFAULT_TIMEOUT,
                },
            }),
        };
        Ok(ServeConfig {
            http,
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
        // The HTTP edge is off unless asked for; key-less requests get no role unless asked.
        assert!(c.http.is_none());
        let http: Settings = toml::from_str(
            "http_listen = \"127.0.0.1:8080\"\nhttp_keyless_role = \"screen\"\nfetch_allow_hosts = \"cdn.example, 10.0.0.5\"\n",
        )
        .unwrap();
        let h = http.resolve().unwrap().http.expect("http on");
        assert_eq!(h.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            h.keyless_role,
            Some(crate::store::api_keys::Role::Screen)
        );
        assert_eq!(h.fetch.allow_hosts, vec!["cdn.example", "10.0.0.5"]);
        let bad: Settings =
            toml::from_str("http_listen = \"127.0.0.1:8080\"\nhttp_keyless_role = \"root\"\n")
                .unwrap();
        assert!(bad.resolve().unwrap_err().to_string().starts_with("http_keyless_role"));
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

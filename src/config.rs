//! `vigie serve` configuration: command-line flags, `VIGIE_*` environment variables and a TOML
//! file, in that order of precedence, over built-in defaults; and what it resolves to, the
//! server's configuration ([`ServerConfig`], [`ServiceLimits`]) that `service` starts from.
//!
//! Each setting is defined once, in the [`serve_settings!`] table below: its flag (`--name-with-
//! dashes`), its TOML key (`name_with_underscores`), its environment variable, its type, its help
//! and its default. The table makes [`Settings`] (one layer, every setting optional: clap reads
//! the flags and the environment into one, serde the file into another; [`Settings::or`] stacks
//! them) and [`Values`] (the stacked layers with the defaults applied). `--help` shows each
//! default as `[default: ...]`, computed from the table, and each variable as `[env: ...]`.
//!
//! # Adding a setting
//! One line in the table, then its use where [`Settings::resolve`] builds the configuration. The
//! drain deadline, for example:
//!
//! ```text
//! serve_settings! {
//!     ...
//!     /// On SIGTERM/SIGINT: seconds given to calls in flight (streams included) before they are
//!     /// cut; health says NOT_SERVING from the signal on.
//!     drain_timeout_secs: u64 = DEFAULT_DRAIN_TIMEOUT_SECS, env "VIGIE_DRAIN_TIMEOUT_SECS";
//! }
//! ```
//!
//! gives `--drain-timeout-secs`, `VIGIE_DRAIN_TIMEOUT_SECS`, the TOML key `drain_timeout_secs`,
//! `[default: 25]` in `--help`, and `values.drain_timeout_secs: u64` in `resolve`, where it is
//! copied into [`ServeConfig::drain_timeout`]. Leave out `= default` for a setting
//! that is off unless given (`values.x` is then an `Option`, as for `metrics_listen`); put clap's
//! extra argument attributes under the doc comment (`#[arg(value_delimiter = ',')]` for a list
//! such as `fetch_allow: Vec<String>`, `#[arg(num_args = 0..=1, default_missing_value = "true")]`
//! for a switch that also takes `true`/`false`). A type not yet in the table needs a
//! [`ShowDefault`] implementation when it has a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::api_keys::Role;

/// The address `vigie serve` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// The store directory of `vigie serve` and the store commands unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "./vigie-data";

/// Defines every serve setting from one table (see the module doc): for each entry
/// `/// help` `#[arg(...)]`* `name: Type (= default)?, env "VARIABLE";` it makes the field of
/// [`Settings`] (flag, environment variable, TOML key, help with the default) and of [`Values`].
macro_rules! serve_settings {
    ($(
        $(#[doc = $doc:literal])+
        $(#[arg($($arg:tt)*)])*
        $name:ident : $ty:ty $(= $default:expr)? , env $env:literal ;
    )+) => {
        /// Every serve setting, each optional: one layer of the configuration. The flags and
        /// `VIGIE_*` variables make one (clap: a flag beats its variable), the `--config` file
        /// another (serde; unknown keys are refused); [`Settings::or`] stacks them.
        #[derive(Clone, Debug, Default, Deserialize, PartialEq, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[doc = $doc])+
                #[arg(long, env = $env, help = help_text(stringify!($name)))]
                $(#[arg($($arg)*)])*
                pub $name: Option<$ty>,
            )+
        }

        /// Every serve setting after the layers: the value given, else the default; `None` for a
        /// setting without a default that no layer gave.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Values {
            $(
                $(#[doc = $doc])+
                pub $name: serve_settings!(@value_type $ty $(, $default)?),
            )+
        }

        impl Settings {
            /// Each setting from `self` where set, else from `fallback`: `flags.or(file)`.
            pub fn or(self, fallback: Settings) -> Settings {
                Settings {
                    $($name: self.$name.or(fallback.$name),)+
                }
            }

            /// The settings with the defaults applied where none was given.
            pub fn values(self) -> Values {
                Values {
                    $($name: serve_settings!(@value self.$name $(, $default)?),)+
                }
            }
        }

        /// The `--help` line of the setting `name`: its doc comment and its default.
        fn help_text(name: &str) -> String {
            $(
                if name == stringify!($name) {
                    return help_line(&[$($doc),+], serve_settings!(@shown $ty $(, $default)?));
                }
            )+
            String::new()
        }
    };
    (@value_type $ty:ty, $default:expr) => { $ty };
    (@value_type $ty:ty) => { Option<$ty> };
    (@value $given:expr, $default:expr) => { $given.unwrap_or_else(|| $default) };
    (@value $given:expr) => { $given };
    (@shown $ty:ty, $default:expr) => {{
        let default: $ty = $default;
        Some(ShowDefault::shown(&default))
    }};
    (@shown $ty:ty) => { None };
}

serve_settings! {
    /// Address to listen on.
    listen: String = DEFAULT_LISTEN.to_string(), env "VIGIE_LISTEN";
    /// The store's directory (RocksDB).
    data_dir: PathBuf = PathBuf::from(DEFAULT_DATA_DIR), env "VIGIE_DATA_DIR";
    /// Accept calls without an API key, as admin. For local trials only: logs a warning.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    insecure_no_auth: bool = false, env "VIGIE_INSECURE_NO_AUTH";
    /// PEM certificate chain for TLS (with --tls-key).
    tls_cert: PathBuf, env "VIGIE_TLS_CERT";
    /// PEM private key for TLS.
    tls_key: PathBuf, env "VIGIE_TLS_KEY";
    /// PEM CA: clients must present a certificate it signed.
    tls_client_ca: PathBuf, env "VIGIE_TLS_CLIENT_CA";
    /// Serve Prometheus metrics at http://ADDR/metrics.
    metrics_listen: String, env "VIGIE_METRICS_LISTEN";
    /// Log format: text or json.
    log_format: String = "text".to_string(), env "VIGIE_LOG_FORMAT";
    /// Largest request message in bytes; larger ones get RESOURCE_EXHAUSTED (at least 1024).
    max_request_bytes: usize = 32 << 20, env "VIGIE_MAX_REQUEST_BYTES";
    /// Images decoded and hashed at once; the default is one per core, plus one.
    // One more than the cores: the CPU also receives requests and sends answers, and with one
    // worker per core it idled about 15% of the time. `vigie bench service` on a 2-core machine
    // (1-2 MP JPEGs, 1M-entry bank): one per core 241 screens/s, three 282, four 283 but with a
    // worse p99 under overload (time-slicing).
    hash_workers: usize = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1,
        env "VIGIE_HASH_WORKERS";
    /// How long a request may wait for a hashing worker before RESOURCE_EXHAUSTED, in
    /// milliseconds.
    // Short: past it a caller is better told at once that the server is saturated, and the
    // admitted requests keep their latency: at twice the sustainable load, admitted p99 35 ms
    // with 10 ms here, 57 ms with 25 ms.
    queue_wait_ms: u64 = 10, env "VIGIE_QUEUE_WAIT_MS";
    /// JPEGs are decoded at the largest DCT reduction keeping this shorter side; 0 = full size,
    /// PDQ then bit for bit Meta's.
    decode_min_side: u32 = crate::hashing::DEFAULT_DECODE_MIN_SIDE, env "VIGIE_DECODE_MIN_SIDE";
    /// fsync the write-ahead log before acknowledging a write.
    sync_writes: bool = true, env "VIGIE_SYNC_WRITES";
    /// Also match uploads by keypoints, for crops no hash follows (`--keypoints false` saves
    /// about 0.6 ms a screen and loses about 12 points of recall; see the README).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    keypoints: bool = true, env "VIGIE_KEYPOINTS";
    /// On SIGTERM/SIGINT: seconds given to calls in flight (streams included) before they are
    /// cut; health says NOT_SERVING from the signal on.
    // Shorter than the 30 s Kubernetes waits before its SIGKILL (`terminationGracePeriodSeconds`),
    // so the store is closed before that.
    drain_timeout_secs: u64 = DEFAULT_DRAIN_TIMEOUT_SECS, env "VIGIE_DRAIN_TIMEOUT_SECS";
    /// Most connections open at once; more are closed at accept, and logged.
    max_connections: usize = 4096, env "VIGIE_MAX_CONNECTIONS";
    /// Seconds a new connection may take to send its first byte.
    handshake_timeout_secs: u64 = 10, env "VIGIE_HANDSHAKE_TIMEOUT_SECS";
    /// Seconds a connection may go without sending a byte (live clients answer the server's
    /// pings every 20 s).
    // Four keepalive pings unanswered.
    idle_timeout_secs: u64 = 90, env "VIGIE_IDLE_TIMEOUT_SECS";
    /// Screens a second per API key, sustained (token bucket), for keys whose own policy sets
    /// none (`vigie keys update NAME --rate N`); 0: no limit. Over it: RESOURCE_EXHAUSTED / HTTP
    /// 429 with the time to wait.
    // Above what one platform key sends in normal traffic (a single node answers ~300 image
    // screens a second, ~10,000 hash lookups); the probing guard, not this, stops a slow walk.
    key_rate: u32 = 1000, env "VIGIE_KEY_RATE";
    /// Screens a key may send at once above its rate (token bucket size), unless its policy sets
    /// its own.
    key_burst: u32 = 2000, env "VIGIE_KEY_BURST";
    /// Probing detection: seconds a query near a banked hash counts toward a key's probing
    /// (docs/SECURITY.md).
    probe_window_secs: u64 = 3600, env "VIGIE_PROBE_WINDOW_SECS";
    /// Probing detection: distinct queries of one key, each within 2 bits of an earlier one near
    /// a banked hash, that mark it as probing within the window.
    probe_max_steps: u32 = 8, env "VIGIE_PROBE_MAX_STEPS";
    /// Probing detection: seconds answers near a probed place stay withheld from the key.
    probe_fence_secs: u64 = 3600, env "VIGIE_PROBE_FENCE_SECS";
    /// Clustered mode: NATS server URLs, comma-separated (nats://host:4222,...). Every bank
    /// change goes through a JetStream stream that every replica applies (docs/CLUSTER.md);
    /// without it vigie runs as one node, embedded.
    nats: String, env "VIGIE_NATS";
    /// JetStream stream of the changes; its snapshot bucket is NAME_snapshots.
    nats_stream: String = "VIGIE".to_string(), env "VIGIE_NATS_STREAM";
    /// Copies NATS keeps of the stream and the snapshots (1 to 5), when this replica creates
    /// them.
    nats_replicas: usize = 3, env "VIGIE_NATS_REPLICAS";
    /// A write the stream has not acknowledged by then fails UNAVAILABLE, in milliseconds.
    nats_write_timeout_ms: u64 = 5_000, env "VIGIE_NATS_WRITE_TIMEOUT_MS";
    /// Publish a snapshot of the store after this many changes past the last one.
    nats_snapshot_changes: u64 = 10_000, env "VIGIE_NATS_SNAPSHOT_CHANGES";
    /// ... or after this many minutes with any change past it.
    nats_snapshot_minutes: u64 = 10, env "VIGIE_NATS_SNAPSHOT_MINUTES";
    /// Report not ready when more than this many changes behind the stream's head.
    nats_max_lag: u64 = 1_000, env "VIGIE_NATS_MAX_LAG";
    /// Stream retention, when this replica creates the stream: keep the last N changes; 0 keeps
    /// all.
    nats_max_changes: u64 = 0, env "VIGIE_NATS_MAX_CHANGES";
    /// Stream retention, when this replica creates the stream: drop changes older than this many
    /// seconds; 0 keeps them.
    nats_max_age_s: u64 = 0, env "VIGIE_NATS_MAX_AGE_S";
    /// Also serve the HTTP/JSON API (HMA's routes and vigie's own, see docs/HTTP.md) on this
    /// address; off when unset.
    http_listen: String, env "VIGIE_HTTP_LISTEN";
    /// Give HTTP requests that send no key this role (screen, curate or admin), for HMA clients
    /// that send none, on a trusted network only (logged at start); off when unset.
    http_keyless_role: String, env "VIGIE_HTTP_KEYLESS_ROLE";
    /// Hosts whose pictures `?url=` may fetch, comma-separated (a private or loopback address
    /// only when listed itself); fetching is off when unset.
    #[arg(value_delimiter = ',')]
    fetch_allow_hosts: Vec<String>, env "VIGIE_FETCH_ALLOW_HOSTS";
}

/// Default drain deadline of `vigie serve`, in seconds (`drain_timeout_secs`).
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 25;

/// A setting's doc comment as one help line (clap's style: no final period) with its default.
fn help_line(doc: &[&str], default: Option<String>) -> String {
    let text = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    let text = text.strip_suffix('.').unwrap_or(&text);
    match default {
        Some(d) => format!("{text} [default: {d}]"),
        None => text.to_string(),
    }
}

/// How a setting's default is written in `--help`.
pub trait ShowDefault {
    /// The default as the user would type it.
    fn shown(&self) -> String;
}

macro_rules! show_by_display {
    ($($t:ty),+) => {
        $(impl ShowDefault for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        })+
    };
}

show_by_display!(String, bool, u32, u64, usize);

impl ShowDefault for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
}

impl<T: ShowDefault> ShowDefault for Vec<T> {
    fn shown(&self) -> String {
        self.iter().map(T::shown).collect::<Vec<_>>().join(",")
    }
}

/// A configuration that cannot be used, named by the file or the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read or is not valid TOML of known keys.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A setting's value is refused.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting, as its TOML key (`tls` for the TLS files together).
        setting: &'static str,
        /// What is wrong with the value.
        message: String,
    },
}

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// What the gRPC server starts with (`service::server::start`).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address of the gRPC listener (port 0: any free port).
    pub listen: SocketAddr,
    /// Every call is accepted as admin without a key.
    pub insecure_no_auth: bool,
    /// TLS, or plain text when `None`.
    pub tls: Option<TlsFiles>,
    /// Address of the Prometheus endpoint, or none.
    pub metrics_listen: Option<SocketAddr>,
    /// Request limits.
    pub limits: ServiceLimits,
}

/// Request limits. The default is that of `vigie serve` without settings.
#[derive(Clone, Debug)]
pub struct ServiceLimits {
    /// Largest gRPC message accepted (beyond: RESOURCE_EXHAUSTED).
    pub max_request_bytes: usize,
    /// Largest image accepted inside a message.
    pub max_image_bytes: usize,
    /// Images decoded and hashed at once (at least 1).
    pub hash_workers: usize,
    /// How long a request waits for a hashing worker before RESOURCE_EXHAUSTED.
    pub queue_wait: Duration,
    /// JPEG decoding scale for hashing (see `HasherBuilder::decode_min_side`); `None` = full size.
    pub decode_min_side: Option<u32>,
    /// Screens also match uploads by keypoints (`hashing::keypoints`). On by default: on
    /// `vigie eval` it takes recall from 85% to 97%, at zero false matches, and it is what finds
    /// crops of a quarter and rotated copies under a caption. Off saves about 0.6 ms a screen.
    pub keypoints: bool,
    /// Bytes of `ScreenStream` items one stream may hold in memory at once (waiting for a worker
    /// or being hashed); past it the server stops reading the stream and HTTP/2 flow control holds
    /// the client back. An item larger than the whole budget is taken alone.
    pub stream_bytes: usize,
    /// The same bound across all streams together.
    pub streams_bytes: usize,
    /// Connection cap, handshake and idle timeouts.
    pub connections: ConnectionLimits,
    /// Per-key rate limits and probing detection (`matcher::guard`): the defaults of keys whose
    /// policy sets none.
    pub guard: crate::matcher::GuardConfig,
}

/// Bounds on the connections of the gRPC listener (`service::connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Longest wait for a new connection's first byte.
    pub handshake_timeout: Duration,
    /// Longest time a connection may go without sending a byte.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::from(&Settings::default().values())
    }
}

impl From<&Values> for ConnectionLimits {
    /// The connection bounds the settings give (a cap of 0 is taken as 1).
    fn from(v: &Values) -> Self {
        ConnectionLimits {
            max_connections: v.max_connections.max(1),
            handshake_timeout: Duration::from_secs(v.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(v.idle_timeout_secs),
        }
    }
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits::from(&Settings::default().values())
    }
}

impl From<&Values> for ServiceLimits {
    /// The limits the settings give (`max_request_bytes` is checked by [`Settings::resolve`]).
    fn from(v: &Values) -> Self {
        ServiceLimits {
            max_request_bytes: v.max_request_bytes,
            max_image_bytes: v.max_request_bytes,
            hash_workers: v.hash_workers.max(1),
            queue_wait: Duration::from_millis(v.queue_wait_ms),
            decode_min_side: (v.decode_min_side > 0).then_some(v.decode_min_side),
            keypoints: v.keypoints,
            // Two largest images (32 MiB) per stream, and eight across streams: with the
            // request being read and the decoded planes, about 1 GiB at most for all streams.
            stream_bytes: 64 << 20,
            streams_bytes: 256 << 20,
            connections: ConnectionLimits::from(v),
            guard: crate::matcher::GuardConfig {
                rate: v.key_rate,
                burst: v.key_burst.max(1),
                window: Duration::from_secs(v.probe_window_secs.max(1)),
                max_steps: v.probe_max_steps.max(1),
                fence: Duration::from_secs(v.probe_fence_secs),
                ..crate::matcher::GuardConfig::default()
            },
        }
    }
}

/// What the HTTP/JSON edge starts with (`http::start`).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Every request is accepted as admin without a key (the gRPC `--insecure-no-auth`).
    pub insecure_no_auth: bool,
    /// The role given to a request that sends no key at all (none: such requests answer 401).
    /// For HMA clients that send no key (HMA has no authentication), on a trusted network.
    pub keyless_role: Option<Role>,
    /// What `?url=` may fetch (off while its host list is empty).
    pub fetch: FetchPolicy,
}

/// What a server-side fetch (`?url=`) may reach.
#[derive(Clone, Debug, Default)]
pub struct FetchPolicy {
    /// Host names or IP addresses (compared case-insensitively, port ignored). Empty: fetching
    /// is off. An address in the private, loopback or link-local ranges is fetched only when it
    /// is listed itself.
    pub allow_hosts: Vec<String>,
    /// The time limit of one fetch, redirects included (zero: [`FetchPolicy::DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl FetchPolicy {
    /// The default time limit of a fetch.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// The resolved configuration of `vigie serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// What the server starts with.
    pub server: ServerConfig,
    /// The store's directory.
    pub data_dir: PathBuf,
    /// Logs as JSON lines (else text).
    pub json_logs: bool,
    /// fsync the write-ahead log before acknowledging a write.
    pub sync_writes: bool,
    /// How long SIGTERM/SIGINT wait for calls in flight before cutting them.
    pub drain_timeout: Duration,
    /// The HTTP/JSON edge, when `http_listen` is set.
    pub http: Option<HttpConfig>,
    /// Clustered mode: how to join the NATS cluster (`None`: one node, embedded).
    pub cluster: Option<ClusterConfig>,
}

/// How a replica joins the NATS cluster (`cluster::Cluster::start`): the `nats*` settings and the
/// limits only tests and benchmarks change.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`); the client fails over between them.
    pub servers: Vec<String>,
    /// JetStream stream holding the changes (created when missing); its subject is
    /// `<stream>.changes` and its snapshot bucket `<stream>_snapshots`.
    pub stream: String,
    /// Copies JetStream keeps of the stream and the snapshots (1, 3 or 5; 3 survives the loss of
    /// one NATS node). Used when this replica creates them.
    pub replicas: usize,
    /// How long a write waits for the stream's acknowledgement before UNAVAILABLE (quorum lost),
    /// and then at most as long again for this replica to apply it.
    pub write_timeout: Duration,
    /// Publish a snapshot once this many changes were applied past the bucket's snapshot.
    pub snapshot_changes: u64,
    /// ... or once this long has passed and any change was applied past it.
    pub snapshot_interval: Duration,
    /// A replica more than this many changes behind the stream's head reports not ready.
    pub max_lag: u64,
    /// Retention: the stream keeps at most this many changes (0: no limit), dropping the oldest;
    /// replicas left behind restart from a snapshot. Used when this replica creates the stream.
    pub max_changes: u64,
    /// Retention: the stream drops changes older than this (zero: no limit). As `max_changes`.
    pub max_age: Duration,
    /// How long start-up may wait for the NATS cluster (connection, stream, snapshot).
    pub start_timeout: Duration,
}

impl Default for ClusterConfig {
    /// The defaults of the `nats_*` settings, no server, two minutes to start.
    fn default() -> Self {
        ClusterConfig::from_values(Vec::new(), &Settings::default().values())
    }
}

impl ClusterConfig {
    /// The cluster configuration the settings give, joining `servers`.
    fn from_values(servers: Vec<String>, v: &Values) -> ClusterConfig {
        ClusterConfig {
            servers,
            stream: v.nats_stream.clone(),
            replicas: v.nats_replicas,
            write_timeout: Duration::from_millis(v.nats_write_timeout_ms),
            snapshot_changes: v.nats_snapshot_changes,
            snapshot_interval: Duration::from_secs(v.nats_snapshot_minutes.saturating_mul(60)),
            max_lag: v.nats_max_lag,
            max_changes: v.nats_max_changes,
            max_age: Duration::from_secs(v.nats_max_age_s),
            start_timeout: Duration::from_secs(120),
        }
    }

    /// Checks the values. Errors, as the setting at fault and why: no server, a stream name
    /// NATS would refuse (letters, digits, `_` and `-` only), replicas outside 1..=5, a zero write
    /// timeout.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.servers.is_empty() {
            return Err(("nats", "at least one server URL".into()));
        }
        if self.stream.is_empty()
            || !self
                .stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((
                "nats_stream",
                format!("{:?}: letters, digits, '_' and '-' only", self.stream),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(("nats_replicas", format!("{}: 1 to 5", self.replicas)));
        }
        if self.write_timeout.is_zero() {
            return Err(("nats_write_timeout_ms", "more than 0".into()));
        }
        Ok(())
    }
}

impl Settings {
    /// Reads a TOML file of settings (keys as the flags, with underscores). Errors:
    /// [`ConfigError::File`] when unreadable, not TOML, of an unknown key or a value of the wrong
    /// type.
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

    /// `self` (the flags and environment) over the `--config` file when there is one, resolved:
    /// what `vigie serve` runs with. Errors: as [`Settings::from_file`] and [`Settings::resolve`].
    pub fn over_file(self, file: Option<&Path>) -> Result<ServeConfig, ConfigError> {
        let file = match file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        self.or(file).resolve()
    }

    /// The configuration these settings give, defaults filled in. Errors
    /// ([`ConfigError::Invalid`], naming the setting): an address that does not parse, a TLS
    /// certificate without its key (or the reverse, or a client CA without both), a log format
    /// other than `text` or `json`, `max_request_bytes` under 1024, clustered settings
    /// [`ClusterConfig::validate`] refuses.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let v = self.values();
        let addr = |setting: &'static str, text: &str| -> Result<SocketAddr, ConfigError> {
            text.parse().map_err(|e| ConfigError::Invalid {
                setting,
                message: format!("{text:?}: {e}"),
            })
        };
        let listen = addr("listen", &v.listen)?;
        let metrics_listen = v
            .metrics_listen
            .as_deref()
            .map(|m| addr("metrics_listen", m))
            .transpose()?;
        let tls = match (&v.tls_cert, &v.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: v.tls_client_ca.clone(),
            }),
            (None, None) if v.tls_client_ca.is_none() => None,
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "tls",
                    message: "tls_cert and tls_key go together (and tls_client_ca needs both)"
                        .into(),
                });
            }
        };
        let json_logs = match v.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "log_format",
                    message: format!("{other:?}: expected text or json"),
                });
            }
        };
        if v.max_request_bytes < 1024 {
            return Err(ConfigError::Invalid {
                setting: "max_request_bytes",
                message: "at least 1024".into(),
            });
        }
        let cluster = match v.nats.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(urls) => {
                let servers = urls
                    .split(',')
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .collect();
                let c = ClusterConfig::from_values(servers, &v);
                c.validate()
                    .map_err(|(setting, message)| ConfigError::Invalid { setting, message })?;
                Some(c)
            }
        };
        let http = match v.http_listen.as_deref() {
            None => None,
            Some(text) => Some(HttpConfig {
                listen: addr("http_listen", text)?,
                insecure_no_auth: v.insecure_no_auth,
                keyless_role: v
                    .http_keyless_role
                    .as_deref()
                    .map(|r| {
                        r.parse().map_err(|_| ConfigError::Invalid {
                            setting: "http_keyless_role",
                            message: format!("{r:?}: expected screen, curate or admin"),
                        })
                    })
                    .transpose()?,
                fetch: FetchPolicy {
                    allow_hosts: v
                        .fetch_allow_hosts
                        .iter()
                        .flatten()
                        .map(|h| h.trim().to_string())
                        .filter(|h| !h.is_empty())
                        .collect(),
                    timeout: FetchPolicy::DEFAULT_TIMEOUT,
                },
            }),
        };
        Ok(ServeConfig {
            cluster,
            http,
            server: ServerConfig {
                listen,
                insecure_no_auth: v.insecure_no_auth,
                tls,
                metrics_listen,
                limits: ServiceLimits::from(&v),
            },
            json_logs,
            sync_writes: v.sync_writes,
            drain_timeout: Duration::from_secs(v.drain_timeout_secs),
            data_dir: v.data_dir,
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
            c.drain_timeout,
            Duration::from_secs(DEFAULT_DRAIN_TIMEOUT_SECS)
        );
        let short: Settings =
            toml::from_str("drain_timeout_secs = 3\nmax_connections = 7\n").unwrap();
        let short = short.resolve().unwrap();
        assert_eq!(short.drain_timeout, Duration::from_secs(3));
        assert_eq!(short.server.limits.connections.max_connections, 7);
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
        assert_eq!(cluster.stream, "VIGIE");
        assert_eq!(cluster.write_timeout, Duration::from_secs(5));
        assert_eq!(cluster.max_lag, 1_000);
        assert_eq!((cluster.max_changes, cluster.max_age), (0, Duration::ZERO));
        let retained: Settings =
            toml::from_str("nats = \"nats://a\"\nnats_max_changes = 50\nnats_max_age_s = 3600\n")
                .unwrap();
        let cluster = retained.resolve().unwrap().cluster.unwrap();
        assert_eq!(cluster.max_changes, 50);
        assert_eq!(cluster.max_age, Duration::from_secs(3600));
        let bad: Settings = toml::from_str("nats = \"nats://a\"\nnats_replicas = 7\n").unwrap();
        let e = bad.resolve().unwrap_err().to_string();
        assert!(e.starts_with("nats_replicas"), "{e}");
        let bad: Settings = toml::from_str("nats = \"nats://a\"\nnats_stream = \"a.b\"\n").unwrap();
        let e = bad.resolve().unwrap_err().to_string();
        assert!(e.starts_with("nats_stream"), "{e}");
        // The HTTP edge is off unless asked for; key-less requests get no role unless asked.
        assert!(c.http.is_none());
        let http: Settings = toml::from_str(
            "http_listen = \"127.0.0.1:8080\"\nhttp_keyless_role = \"screen\"\nfetch_allow_hosts = [\"cdn.example\", \"10.0.0.5\"]\n",
        )
        .unwrap();
        let h = http.resolve().unwrap().http.expect("http on");
        assert_eq!(h.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(h.keyless_role, Some(Role::Screen));
        assert_eq!(h.fetch.allow_hosts, vec!["cdn.example", "10.0.0.5"]);
        let bad: Settings =
            toml::from_str("http_listen = \"127.0.0.1:8080\"\nhttp_keyless_role = \"root\"\n")
                .unwrap();
        assert!(
            bad.resolve()
                .unwrap_err()
                .to_string()
                .starts_with("http_keyless_role")
        );
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

    #[test]
    fn service_limits_default_to_the_settings_defaults() {
        let limits = ServiceLimits::default();
        assert_eq!(limits.max_request_bytes, 32 << 20);
        assert_eq!(limits.max_image_bytes, 32 << 20);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(limits.hash_workers, cores + 1);
        assert_eq!(limits.queue_wait, Duration::from_millis(10));
        assert_eq!(
            limits.decode_min_side,
            Some(crate::hashing::DEFAULT_DECODE_MIN_SIDE)
        );
        assert!(limits.keypoints);
    }
}

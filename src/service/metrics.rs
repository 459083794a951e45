//! Prometheus metrics in the text exposition format, served at `GET /metrics`.
//!
//! A handful of counters and one latency histogram per method do not need a metrics framework:
//! they are plain maps behind a mutex, touched once per request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::matcher::HashIndexes;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    matches: BTreeMap<String, u64>,
    decode_errors: BTreeMap<&'static str, u64>,
    auth_failures: BTreeMap<&'static str, u64>,
}

/// Renders more metrics into the `/metrics` text (a cluster replica's lag, ...).
pub type Section = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The guard's counters per key (`matcher::guard`), as a [`Section`]:
/// `vigie_probing_detected_total{key}` (detections: one per probing episode),
/// `vigie_screens_withheld_total{key}` (answers withheld near a probed place) and
/// `vigie_rate_limited_total{key}` (screens refused by the key's rate limit). Keys are few and
/// named by admins, so the label stays small.
pub fn guard_section(guard: Arc<crate::matcher::Guard>) -> Section {
    use crate::matcher::guard::KeyStats;
    Arc::new(move |out: &mut String| {
        let stats = guard.stats();
        type Family = (&'static str, &'static str, fn(&KeyStats) -> u64);
        let families: [Family; 3] = [
            (
                "vigie_probing_detected_total",
                "Times a key was seen probing near banked hashes.",
                |s| s.probing_detected,
            ),
            (
                "vigie_screens_withheld_total",
                "Screens whose answer was withheld after probing.",
                |s| s.withheld,
            ),
            (
                "vigie_rate_limited_total",
                "Screens refused by the key's rate limit.",
                |s| s.rate_limited,
            ),
        ];
        for (name, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (key, s) in &stats {
                let _ = writeln!(out, "{name}{{key=\"{key}\"}} {}", value(s));
            }
        }
    })
}

/// Counters and latency histograms of the service, rendered in the Prometheus text format.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Set while the store refuses writes for want of space (`vigie_store_writes_available` 0).
    writes_unavailable: AtomicBool,
    /// Open connections and refusals (`server::start` hands it to the accept loop).
    pub connections: Arc<super::connections::ConnectionCounters>,
    sections: Mutex<Vec<Section>>,
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay meaningful after a panic elsewhere: take the data as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append `section`'s metrics to every rendering.
    pub fn add_section(&self, section: Section) {
        self.sections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(section);
    }

    /// Counts one call of `method` that ended with `code` after `elapsed`.
    pub fn record_request(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let mut m = self.lock();
        *m.requests.entry((method, code_name(code))).or_default() += 1;
        let h = m.latency.entry(method).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts one match in `bank`.
    pub fn record_match(&self, bank: &str) {
        *self.lock().matches.entry(bank.to_string()).or_default() += 1;
    }

    /// Counts one upload that could not be decoded, by decode-error kind.
    pub fn record_decode_error(&self, kind: &'static str) {
        *self.lock().decode_errors.entry(kind).or_default() += 1;
    }

    /// Counts one refused call, by the error's kind (`unauthenticated`, `permission_denied`, ...).
    pub fn record_auth_failure(&self, kind: &'static str) {
        *self.lock().auth_failures.entry(kind).or_default() += 1;
    }

    /// Records whether the store takes writes (false while its disk is full).
    pub fn set_writes_available(&self, available: bool) {
        self.writes_unavailable.store(!available, Ordering::Release);
    }

    /// Whether the store took writes when last checked.
    pub fn writes_available(&self) -> bool {
        !self.writes_unavailable.load(Ordering::Acquire)
    }

    /// Requests counted for a method and status code name (tests and the load benchmark read it).
    pub fn request_count(&self, method: &str, code: &str) -> u64 {
        self.lock()
            .requests
            .iter()
            .filter(|((m, c), _)| *m == method && *c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// The Prometheus text exposition of every counter, with the index's hash counts.
    pub fn render(&self, indexes: &HashIndexes) -> String {
        let m = self.lock().clone_for_render();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP vigie_requests_total gRPC requests by method and status code."
        );
        let _ = writeln!(out, "# TYPE vigie_requests_total counter");
        for ((method, code), n) in &m.requests {
            let _ = writeln!(
                out,
                "vigie_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vigie_request_duration_seconds gRPC request latency by method."
        );
        let _ = writeln!(out, "# TYPE vigie_request_duration_seconds histogram");
        for (method, h) in &m.latency {
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "vigie_request_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "vigie_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "vigie_request_duration_seconds_sum{{method=\"{method}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "vigie_request_duration_seconds_count{{method=\"{method}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(out, "# HELP vigie_matches_total Matches reported, by bank.");
        let _ = writeln!(out, "# TYPE vigie_matches_total counter");
        for (bank, n) in &m.matches {
            let _ = writeln!(out, "vigie_matches_total{{bank=\"{}\"}} {n}", escape(bank));
        }
        let _ = writeln!(
            out,
            "# HELP vigie_decode_errors_total Images refused, by kind."
        );
        let _ = writeln!(out, "# TYPE vigie_decode_errors_total counter");
        for (kind, n) in &m.decode_errors {
            let _ = writeln!(out, "vigie_decode_errors_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP vigie_auth_failures_total Calls refused by authentication, by kind."
        );
        let _ = writeln!(out, "# TYPE vigie_auth_failures_total counter");
        for (kind, n) in &m.auth_failures {
            let _ = writeln!(out, "vigie_auth_failures_total{{kind=\"{kind}\"}} {n}");
        }
        let c = &self.connections;
        let _ = writeln!(out, "# HELP vigie_connections_open Connections open.");
        let _ = writeln!(out, "# TYPE vigie_connections_open gauge");
        let _ = writeln!(out, "vigie_connections_open {}", c.open());
        let _ = writeln!(
            out,
            "# HELP vigie_connections_refused_total Connections refused at the cap or closed by a timeout, by reason."
        );
        let _ = writeln!(out, "# TYPE vigie_connections_refused_total counter");
        for (reason, n) in [
            ("cap", c.refused_over_cap()),
            ("handshake_timeout", c.closed_handshake()),
            ("idle_timeout", c.closed_idle()),
        ] {
            let _ = writeln!(
                out,
                "vigie_connections_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vigie_store_writes_available 1 while the store takes writes, 0 while its disk is full."
        );
        let _ = writeln!(out, "# TYPE vigie_store_writes_available gauge");
        let _ = writeln!(
            out,
            "vigie_store_writes_available {}",
            u8::from(self.writes_available())
        );
        let _ = writeln!(
            out,
            "# HELP vigie_index_hashes Hashes in the in-memory index, by algorithm."
        );
        let _ = writeln!(out, "# TYPE vigie_index_hashes gauge");
        for (algorithm, n) in indexes.counts() {
            let _ = writeln!(out, "vigie_index_hashes{{algorithm=\"{algorithm}\"}} {n}");
        }
        for section in self
            .sections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            section(&mut out);
        }
        out
    }
}

impl Inner {
    fn clone_for_render(&self) -> Inner {
        Inner {
            requests: self.requests.clone(),
            latency: self.latency.clone(),
            matches: self.matches.clone(),
            decode_errors: self.decode_errors.clone(),
            auth_failures: self.auth_failures.clone(),
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves. Anything else gets 404.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    indexes: Arc<HashIndexes>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (mut socket, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    continue;
                }
            },
        };
        let (metrics, indexes) = (metrics.clone(), indexes.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            // One read is enough for a request line; a slow or silent client is dropped.
            let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics ")
                || request.starts_with("GET /metrics?")
            {
                let body = metrics.render(&indexes);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// Binds the metrics listener (so the caller learns the port before serving).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

//! `vigie bench service`: a load generator for the Screen RPC, built on the tonic client.
//!
//! Starts a server in this process on `127.0.0.1:0` over a RocksDB store holding a bank of N
//! random PDQ entries (populated once, kept for later runs, shared with `vigie bench store`), or
//! targets a running server with `--addr` (loopback only; its banks are used as they are). Then:
//! 1. closed-loop rounds of fixed duration at increasing concurrency (each of C clients sends its
//!    next picture as soon as the previous answer arrives), a mix of JPEGs re-encoded from a
//!    directory at the requested sizes;
//! 2. an open-loop round that offers twice the sustainable rate (the best throughput whose p99
//!    stayed under the target with at most 0.5% of requests refused), to show that the excess is refused fast with RESOURCE_EXHAUSTED
//!    while the admitted requests keep their latency, and that memory stays flat.
//!
//! Every round reports throughput, p50/p95/p99 latency of answered requests, errors by status and
//! the process's resident memory; `--out` writes the JSON and a PNG of latency against throughput.
//! Bounded: `--max-requests` in all, `--round-secs` per round, and in-flight requests capped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use image::imageops::FilterType;
use serde::Serialize;
use tokio::sync::Mutex;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::BenchError;
use super::measure::{Resident, mib, percentile, progress_bar};
use super::pictures::{self, encode_jpeg, median_bytes};
use crate::config::Settings;
use crate::plot::{LineChart, Series};
use crate::service::proto::screening_client::ScreeningClient;
use crate::service::proto::{ScreenRequest, screen_request};
use crate::service::server;
use crate::store::{RocksOptions, Store};

/// Arguments of `vigie bench service`.
#[derive(Debug, clap::Args)]
pub struct ServiceBenchArgs {
    /// The server started here matches by keypoints, as `vigie serve` does by default (the
    /// default here too; kept so that older command lines still run).
    #[arg(long, conflicts_with = "no_keypoints")]
    pub keypoints: bool,
    /// The server started here does not match by keypoints (`vigie serve --keypoints false`).
    #[arg(long)]
    pub no_keypoints: bool,
    /// Target a running server instead of starting one (loopback addresses only).
    #[arg(long)]
    pub addr: Option<String>,
    /// API key for `--addr` (a screen key).
    #[arg(long, env = "VIGIE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// PDQ entries in the bank of the server started here.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Store directory of the server started here [default: ./vigie-bench-store-<entries>].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory of pictures to re-encode.
    #[arg(long, default_value = "../shared/corpus")]
    pub dir: PathBuf,
    /// Sizes, in megapixels, at which the pictures are re-encoded as JPEG (0: files as stored).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub megapixels: Vec<f64>,
    /// How many of the directory's largest pictures are used.
    #[arg(long, default_value_t = 12)]
    pub pictures: usize,
    /// Concurrency of the closed-loop rounds, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    pub concurrency: Vec<usize>,
    /// Duration of each round, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub round_secs: f64,
    /// Requests sent in all rounds together, at most.
    #[arg(long, default_value_t = 200_000)]
    pub max_requests: u64,
    /// The p99 latency a sustainable load must keep, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub p99_target_ms: f64,
    /// The open-loop round's rate as a multiple of the sustainable rate (0: no such round).
    #[arg(long, default_value_t = 2.0)]
    pub overload_factor: f64,
    /// Client deadline of each request, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Hashing workers of the server started here [default: as `vigie serve`].
    #[arg(long)]
    pub hash_workers: Option<usize>,
    /// How long a request may wait for a hashing worker before RESOURCE_EXHAUSTED, in milliseconds
    /// [default: as `vigie serve`].
    #[arg(long)]
    pub queue_wait_ms: Option<u64>,
    /// Write bench-service.json and bench-service.png here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Drive the HTTP edge (HMA's `POST /m/lookup`, or `GET /m/lookup` with
    /// `--lookup-hashes`) instead of the gRPC Screen call; with `--addr`, that address is the HTTP
    /// edge's.
    #[arg(long)]
    pub http: bool,
    /// Look up PDQ hashes instead of screening pictures: half are bank entries with 8 of 256
    /// bits flipped (they match), half random (they do not). gRPC: Screen with hashes; HTTP:
    /// `GET /m/lookup?signal_type=pdq&signal=...`.
    #[arg(long)]
    pub lookup_hashes: bool,
}

#[derive(Debug, Serialize, Clone)]
struct RoundReport {
    /// `closed` (fixed concurrency) or `open` (fixed offered rate).
    kind: &'static str,
    concurrency: usize,
    offered_per_second: Option<f64>,
    seconds: f64,
    requests: u64,
    ok: u64,
    ok_per_second: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    /// Requests refused with RESOURCE_EXHAUSTED, and how fast those answers came.
    refused: u64,
    refused_p99_ms: f64,
    errors_by_status: BTreeMap<String, u64>,
    /// Resident memory of this process after the round (server and client when started here).
    rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    server: String,
    entries: Option<u64>,
    pictures: usize,
    median_picture_bytes: usize,
    megapixels: Vec<f64>,
    p99_target_ms: f64,
    sustainable_ok_per_second: Option<f64>,
    rounds: Vec<RoundReport>,
}

/// One answered (or failed) request.
struct Sample {
    latency_ms: f64,
    status: Option<tonic::Code>,
}

fn summarise(
    kind: &'static str,
    concurrency: usize,
    offered: Option<f64>,
    seconds: f64,
    samples: &[Sample],
    rss_mib: Option<f64>,
) -> RoundReport {
    let mut ok: Vec<f64> = Vec::new();
    let mut refused: Vec<f64> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples {
        match s.status {
            None => ok.push(s.latency_ms),
            Some(code) => {
                if code == tonic::Code::ResourceExhausted {
                    refused.push(s.latency_ms);
                }
                *errors.entry(format!("{code:?}")).or_default() += 1;
            }
        }
    }
    ok.sort_by(f64::total_cmp);
    refused.sort_by(f64::total_cmp);
    let percentile = |sorted: &[f64], q| percentile(sorted, q).unwrap_or(f64::NAN);
    RoundReport {
        kind,
        concurrency,
        offered_per_second: offered,
        seconds,
        requests: samples.len() as u64,
        ok: ok.len() as u64,
        ok_per_second: ok.len() as f64 / seconds.max(1e-9),
        p50_ms: percentile(&ok, 0.50),
        p95_ms: percentile(&ok, 0.95),
        p99_ms: percentile(&ok, 0.99),
        refused: refused.len() as u64,
        refused_p99_ms: percentile(&refused, 0.99),
        errors_by_status: errors,
        rss_mib,
    }
}

/// Idle HTTP/1.1 connections to the HTTP edge, reused across requests (keep-alive).
type HttpPool = Arc<std::sync::Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>>;

#[derive(Clone)]
struct Client {
    channel: Option<Channel>,
    /// The HTTP edge, when driving it.
    http: Option<SocketAddr>,
    pool: HttpPool,
    /// PDQ hashes to look up (`--lookup-hashes`), hex.
    hashes: Arc<Vec<String>>,
    key: Option<String>,
    timeout: Duration,
    pictures: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicU64>,
    budget: Arc<AtomicU64>,
}

impl Client {
    /// Sends the next picture; `None` when the request budget is spent.
    async fn screen_next(&self) -> Option<Sample> {
        if self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        if let Some(addr) = self.http {
            return Some(self.http_next(addr, n).await);
        }
        let channel = self.channel.clone()?;
        let input = if self.hashes.is_empty() {
            screen_request::Input::Image(self.pictures[n % self.pictures.len()].clone())
        } else {
            screen_request::Input::Hashes(crate::service::proto::HashSet {
                pdq: self.hashes[n % self.hashes.len()].clone(),
                ..Default::default()
            })
        };
        let mut request = Request::new(ScreenRequest {
            input: Some(input),
            ..Default::default()
        });
        request.set_timeout(self.timeout);
        if let Some(key) = &self.key
            && let Ok(value) = format!("Bearer {key}").parse::<MetadataValue<_>>()
        {
            request.metadata_mut().insert("authorization", value);
        }
        let started = Instant::now();
        let result = ScreeningClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .screen(request)
            .await;
        Some(Sample {
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            status: result.err().map(|e| e.code()),
        })
    }
}

impl Client {
    /// One request to the HTTP edge over a pooled keep-alive connection: `GET /m/lookup` by
    /// hash, or `POST /m/lookup` with a picture. A non-2xx answer is recorded with the gRPC code
    /// the same refusal has there (429 as RESOURCE_EXHAUSTED, ...).
    async fn http_next(&self, addr: SocketAddr, n: usize) -> Sample {
        let started = Instant::now();
        let request = if self.hashes.is_empty() {
            let boundary = "vigie-bench-boundary";
            let picture = &self.pictures[n % self.pictures.len()];
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(picture);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            hyper::Request::post("/m/lookup")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Full::new(Bytes::from(body)))
        } else {
            hyper::Request::get(format!(
                "/m/lookup?signal_type=pdq&signal={}",
                self.hashes[n % self.hashes.len()]
            ))
            .body(Full::new(Bytes::new()))
        };
        let status = match request {
            Ok(mut request) => {
                request
                    .headers_mut()
                    .insert("host", hyper::header::HeaderValue::from_static("vigie"));
                if let Some(key) = &self.key
                    && let Ok(v) = hyper::header::HeaderValue::from_str(key)
                {
                    request.headers_mut().insert("x-api-key", v);
                }
                match tokio::time::timeout(self.timeout, self.http_send(addr, request)).await {
                    Ok(Ok(code)) => code,
                    Ok(Err(_)) => Some(tonic::Code::Unavailable),
                    Err(_) => Some(tonic::Code::DeadlineExceeded),
                }
            }
            Err(_) => Some(tonic::Code::Internal),
        };
        Sample {
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            status,
        }
    }

    async fn http_send(
        &self,
        addr: SocketAddr,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Option<tonic::Code>, String> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut sender = match pooled {
            Some(s) => s,
            None => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = stream.set_nodelay(true);
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                sender
            }
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the whole answer before the connection goes back to the pool.
        let _ = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut p) = self.pool.lock() {
            p.push(sender);
        }
        Ok(match status.as_u16() {
            200..=299 => None,
            429 | 413 => Some(tonic::Code::ResourceExhausted),
            400 => Some(tonic::Code::InvalidArgument),
            401 => Some(tonic::Code::Unauthenticated),
            403 => Some(tonic::Code::PermissionDenied),
            404 => Some(tonic::Code::NotFound),
            503 => Some(tonic::Code::Unavailable),
            504 => Some(tonic::Code::DeadlineExceeded),
            _ => Some(tonic::Code::Internal),
        })
    }
}

/// PDQ hashes to look up: half are bank entries with 8 bits flipped, half random.
fn lookup_hashes(store: Option<&Store>, count: usize) -> Result<Vec<String>, BenchError> {
    let banked: Vec<crate::bits::Hash256> = match store {
        Some(store) => store
            .list_entries("bench", None, None, count / 2)?
            .into_iter()
            .filter_map(|e| e.hashes.pdq)
            .collect(),
        None => Vec::new(),
    };
    let mut rng = super::synth::SplitMix64::new(0x10c4);
    Ok((0..count)
        .map(|i| match banked.get(i / 2).filter(|_| i % 2 == 0) {
            Some(b) => rng.flip(b, 8).to_hex(),
            None => rng.hash::<4>().to_hex(),
        })
        .collect())
}

/// C clients in a loop for `seconds`.
async fn closed_round(client: &Client, concurrency: usize, seconds: f64) -> (f64, Vec<Sample>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, samples) = (client.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < end {
                match client.screen_next().await {
                    Some(s) => mine.push(s),
                    None => break,
                }
            }
            samples.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().await);
    (elapsed, samples)
}

/// Requests offered at `rate` per second for `seconds`, whatever the answers; at most
/// `max_in_flight` outstanding (beyond, the offer is dropped and counted as `ClientDropped`).
async fn open_round(
    client: &Client,
    rate: f64,
    seconds: f64,
    max_in_flight: usize,
) -> (f64, Vec<Sample>, u64) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut dropped = 0u64;
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    while start.elapsed().as_secs_f64() < seconds {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (client, samples) = (client.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            if let Some(s) = client.screen_next().await {
                samples.lock().await.push(s);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().await);
    (elapsed, samples, dropped)
}

/// The `--pictures` largest pictures of `--dir`, re-encoded as JPEG (quality 85) at each of
/// `--megapixels` in turn (0: the files as stored), keeping their aspect ratio.
fn load_pictures(args: &ServiceBenchArgs) -> Result<Vec<Vec<u8>>, BenchError> {
    let files = pictures::read_dir(&args.dir, usize::MAX)?;
    let decoded = pictures::largest(&files, args.pictures.max(1));
    let mut out = Vec::new();
    for mp in &args.megapixels {
        for (bytes, img) in &decoded {
            if *mp <= 0.0 {
                out.push(bytes.to_vec());
                continue;
            }
            let aspect = f64::from(img.width()) / f64::from(img.height());
            let h = ((mp * 1e6 / aspect).sqrt()).round().max(1.0) as u32;
            let w = (f64::from(h) * aspect).round().max(1.0) as u32;
            out.push(encode_jpeg(
                &img.resize_exact(w, h, FilterType::Triangle),
                85,
            )?);
        }
    }
    if out.is_empty() {
        return Err(BenchError(format!("no pictures in {}", args.dir.display())));
    }
    Ok(out)
}

fn loopback(addr: &str) -> Result<String, BenchError> {
    let without_scheme = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr);
    let socket: SocketAddr = without_scheme.parse().map_err(|_| {
        BenchError(format!(
            "--addr {addr}: expected host:port with an IP address"
        ))
    })?;
    if !socket.ip().is_loopback() {
        return Err(BenchError(format!(
            "--addr {addr}: the load generator only targets loopback addresses"
        )));
    }
    Ok(format!("http://{socket}"))
}

/// Runs `vigie bench service`: each round's line and the sustainable rate on stdout,
/// `bench-service.json` and `bench-service.png` under `--out`. Errors: bad arguments, a non-loopback
/// `--addr`, no pictures, a server that does not start or cannot be reached, an unwritable `--out`.
pub fn run(args: ServiceBenchArgs) -> Result<(), BenchError> {
    if !(args.round_secs.is_finite() && args.round_secs > 0.0 && args.round_secs <= 3600.0) {
        return Err(BenchError(
            "--round-secs: between 0 and 3600 seconds".into(),
        ));
    }
    if !(args.overload_factor.is_finite() && (0.0..=100.0).contains(&args.overload_factor)) {
        return Err(BenchError("--overload-factor: between 0 and 100".into()));
    }
    if args
        .megapixels
        .iter()
        .any(|mp| !mp.is_finite() || *mp < 0.0 || *mp > 100.0)
    {
        return Err(BenchError("--megapixels: sizes between 0 and 100".into()));
    }
    let target = args.addr.as_deref().map(loopback).transpose()?;
    let pictures = if args.lookup_hashes {
        Vec::new()
    } else {
        load_pictures(&args)?
    };
    let median_picture_bytes = median_bytes(&pictures);
    eprintln!(
        "{} pictures (median {} KiB)",
        pictures.len(),
        median_picture_bytes / 1024
    );

    // The server gets its own runtime, as it would in its own process; the load generator needs
    // little CPU and runs on one thread.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigie-server")
        .build()?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("vigie-load")
        .build()?;

    let mut running = None;
    let mut running_http = None;
    let mut hashes = Vec::new();
    let (endpoint, server_label) = match &target {
        Some(url) => {
            if args.lookup_hashes {
                hashes = lookup_hashes(None, 2000)?;
            }
            (url.clone(), url.clone())
        }
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| super::store::default_dir(args.entries));
            super::store::populate(&dir, args.entries)?;
            let store = Arc::new(Store::open(&dir, &RocksOptions::default())?);
            if args.lookup_hashes {
                hashes = lookup_hashes(Some(&store), 2000)?;
            }
            // `vigie serve`'s settings, resolved as it resolves them, with this bench's overrides.
            let config = Settings {
                listen: Some("127.0.0.1:0".into()),
                insecure_no_auth: Some(true),
                hash_workers: args.hash_workers,
                queue_wait_ms: args.queue_wait_ms,
                keypoints: Some(!args.no_keypoints),
                ..Settings::default()
            }
            .resolve()?
            .server;
            let loaded = Instant::now();
            let mut server = server_runtime
                .block_on(server::start(config, store.clone()))
                .map_err(|e| BenchError(e.to_string()))?;
            server_runtime.block_on(server.wait_ready());
            eprintln!(
                "server on {} with {} entries loaded in {:.1} s",
                server.addr,
                args.entries,
                loaded.elapsed().as_secs_f64()
            );
            let mut url = format!("http://{}", server.addr);
            if args.http {
                let http = server_runtime
                    .block_on(crate::http::start(
                        crate::config::HttpConfig {
                            listen: "127.0.0.1:0"
                                .parse()
                                .map_err(|e| BenchError(format!("{e}")))?,
                            insecure_no_auth: true,
                            keyless_role: None,
                            fetch: crate::config::FetchPolicy::default(),
                        },
                        server.state.clone(),
                        store,
                    ))
                    .map_err(|e| BenchError(e.to_string()))?;
                url = format!("http://{}", http.addr);
                running_http = Some(http);
            }
            running = Some(server);
            (url, format!("in-process, {} PDQ entries", args.entries))
        }
    };
    let (channel, http) = if args.http {
        let addr: SocketAddr = endpoint
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| BenchError(format!("{endpoint}: {e}")))?;
        (None, Some(addr))
    } else {
        let channel = client_runtime.block_on(async {
            Channel::from_shared(endpoint.clone())
                .map_err(|e| BenchError(e.to_string()))?
                .connect()
                .await
                .map_err(|e| BenchError(format!("connecting to {endpoint}: {e}")))
        })?;
        (Some(channel), None)
    };
    eprintln!(
        "driving {} with {}",
        if args.http {
            "the HTTP edge (/m/lookup)"
        } else {
            "gRPC Screen"
        },
        if args.lookup_hashes {
            "PDQ hash lookups"
        } else {
            "pictures"
        }
    );
    let client = Client {
        channel,
        http,
        pool: Arc::new(std::sync::Mutex::new(Vec::new())),
        hashes: Arc::new(hashes),
        key: args.key.clone(),
        timeout: Duration::from_millis(args.timeout_ms),
        pictures: Arc::new(pictures),
        next: Arc::new(AtomicU64::new(0)),
        budget: Arc::new(AtomicU64::new(args.max_requests)),
    };
    let rss = || {
        let rss = Resident::now().now;
        (target.is_none() && rss > 0).then(|| mib(rss))
    };

    let mut report = Report {
        server: server_label,
        entries: target.is_none().then_some(args.entries),
        pictures: client.pictures.len(),
        median_picture_bytes,
        megapixels: args.megapixels.clone(),
        p99_target_ms: args.p99_target_ms,
        sustainable_ok_per_second: None,
        rounds: Vec::new(),
    };
    let rounds = args.concurrency.len() + usize::from(args.overload_factor > 0.0);
    let bar = progress_bar(rounds as u64, "rounds {bar:30} {pos}/{len} {msg}");
    // One short warm-up (connections, allocator, page cache), not reported.
    client_runtime.block_on(closed_round(&client, 2, 1.0f64.min(args.round_secs)));
    for &c in &args.concurrency {
        bar.set_message(format!("concurrency {c}"));
        let (secs, samples) =
            client_runtime.block_on(closed_round(&client, c.max(1), args.round_secs));
        let round = summarise("closed", c, None, secs, &samples, rss());
        print_round(&round);
        report.rounds.push(round);
        bar.inc(1);
    }
    let sustainable = report
        .rounds
        .iter()
        .filter(|r| {
            // Sustainable: p99 within the target and at most 0.5% of requests refused or failed
            // (one stray refusal in a round of thousands does not disqualify it).
            let failed: u64 = r.errors_by_status.values().sum();
            r.ok > 0 && r.p99_ms <= args.p99_target_ms && failed * 200 <= r.requests
        })
        .map(|r| r.ok_per_second)
        .fold(None, |best: Option<f64>, v| {
            Some(best.map_or(v, |b| b.max(v)))
        });
    report.sustainable_ok_per_second = sustainable;
    if let (Some(rate), true) = (sustainable, args.overload_factor > 0.0) {
        let offered = rate * args.overload_factor;
        bar.set_message(format!("open loop at {offered:.0}/s"));
        let max_in_flight = ((offered * args.timeout_ms as f64 / 1e3) as usize).clamp(16, 4096);
        let (secs, samples, dropped) =
            client_runtime.block_on(open_round(&client, offered, args.round_secs, max_in_flight));
        let mut round = summarise("open", 0, Some(offered), secs, &samples, rss());
        if dropped > 0 {
            round
                .errors_by_status
                .insert("ClientDropped".into(), dropped);
        }
        print_round(&round);
        report.rounds.push(round);
        bar.inc(1);
    }
    bar.finish_and_clear();
    match sustainable {
        Some(r) => println!(
            "sustainable: {r:.0} screens/s with p99 under {} ms",
            args.p99_target_ms
        ),
        None => println!(
            "no round kept p99 under {} ms without errors",
            args.p99_target_ms
        ),
    }
    if let Some(http) = running_http.take() {
        let _ = server_runtime.block_on(http.shutdown());
    }
    if let Some(server) = running.take() {
        let _ = server_runtime.block_on(server.shutdown());
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        super::write_json(&out.join("bench-service.json"), &report)?;
        write_plot(&report, &out.join("bench-service.png"))?;
        eprintln!("wrote {}", out.join("bench-service.{json,png}").display());
    }
    Ok(())
}

fn print_round(r: &RoundReport) {
    let load = match r.offered_per_second {
        Some(rate) => format!("open {rate:>7.0}/s"),
        None => format!("closed c={:<5}", r.concurrency),
    };
    println!(
        "{load}  ok {:>7.1}/s  p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms  refused {:>6} (p99 {:>6.1} ms)  errors {:?}  rss {}",
        r.ok_per_second,
        r.p50_ms,
        r.p95_ms,
        r.p99_ms,
        r.refused,
        r.refused_p99_ms,
        r.errors_by_status,
        r.rss_mib.map_or("-".into(), |m| format!("{m:.0} MiB"))
    );
}

fn write_plot(report: &Report, path: &std::path::Path) -> Result<(), BenchError> {
    let closed: Vec<&RoundReport> = report
        .rounds
        .iter()
        .filter(|r| r.kind == "closed")
        .collect();
    let line = |name: &str, pick: fn(&RoundReport) -> f64| Series {
        name: name.to_string(),
        points: closed
            .iter()
            .map(|r| (r.ok_per_second, pick(r)))
            .filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)
            .collect(),
        thin: false,
        color: None,
    };
    let mut series = vec![
        line("p50 (closed loop)", |r| r.p50_ms),
        line("p99 (closed loop)", |r| r.p99_ms),
    ];
    if let Some(open) = report.rounds.iter().find(|r| r.kind == "open") {
        series.push(Series {
            name: format!(
                "p99 admitted at {:.0}/s offered ({} refused)",
                open.offered_per_second.unwrap_or(0.0),
                open.refused
            ),
            points: vec![(open.ok_per_second, open.p99_ms)],
            thin: false,
            color: Some((200, 30, 30)),
        });
    }
    series.push(Series {
        name: format!("p99 target {} ms", report.p99_target_ms),
        points: closed
            .iter()
            .map(|r| (r.ok_per_second, report.p99_target_ms))
            .filter(|(x, _)| *x > 0.0)
            .collect(),
        thin: true,
        color: Some((120, 120, 120)),
    });
    LineChart {
        title: format!(
            "vigie bench service: Screen latency against throughput ({})",
            report.server
        ),
        x_label: "answered screens per second".into(),
        y_label: "latency (ms)".into(),
        log_x: false,
        log_y: true,
        series,
    }
    .write_png(path)
    .map_err(|e| BenchError(e.to_string()))
}

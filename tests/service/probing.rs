//! Issue 16, item 10: bank hashes are not readable back through screen answers. The issue's
//! attacks run adaptively against a real server (gRPC on 127.0.0.1:0) with a `screen` key under
//! the default policy: the distance walk, and the threshold-boundary walk that reads only
//! match/no-match. Beside them: an `exact` key still gets distances, the rate limit answers
//! RESOURCE_EXHAUSTED with retry information (and HTTP 429 with Retry-After), and normal traffic
//! (one picture screened 100 times, 20 edits of one photo) does not trip detection.

use crate::common;

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use vigie::http::HttpConfig;
use vigie::http::fetch::FetchPolicy;
use vigie::service::ServiceLimits;
use vigie::service::proto::banks_client::BanksClient;
use vigie::service::proto::screening_client::ScreeningClient;
use vigie::service::proto::*;
use vigie::service::server::RunningServer;
use vigie::store::api_keys::{Detail, KeyPolicy, Role, generate_key};
use vigie::store::{AuditAction, AuditFilter, RocksOptions, Store};

/// Queries each attack may spend.
const BUDGET: usize = 10_000;
/// An attacker that got nothing but withheld answers this many times in a row stops early: the
/// fence lasts an hour, so the rest of the budget would be withheld as well.
const GIVE_UP_AFTER: usize = 1_000;

struct Harness {
    server: RunningServer,
    channel: Channel,
    store: Arc<Store>,
    curate: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(Store::open(dir.path(), &RocksOptions::default()).expect("open store"));
    let curate = generate_key();
    store
        .create_api_key("curator", Role::Curate, &curate, "test")
        .expect("key");
    let (server, channel) = crate::serve(
        store.clone(),
        ServiceLimits {
            hash_workers: 2,
            queue_wait: Duration::from_secs(5),
            ..ServiceLimits::default()
        },
    )
    .await;
    Harness {
        server,
        channel,
        store,
        curate,
        _dir: dir,
    }
}

/// A new `screen` key named `name` with `policy` (default: none of its own).
fn screen_key(h: &Harness, name: &str, policy: KeyPolicy) -> String {
    let key = generate_key();
    h.store
        .create_api_key_with_policy(name, Role::Screen, policy, &key, "test")
        .expect("key");
    key
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut r = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().expect("header");
    r.metadata_mut().insert("authorization", value);
    r
}

type Pdq = [u8; 32];

fn hex(h: &Pdq) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn flip(h: &Pdq, bit: usize) -> Pdq {
    let mut out = *h;
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

fn distance(a: &Pdq, b: &Pdq) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// A banked PDQ, and a start 20 bits from it (the issue's attacker), from a fixed seed.
fn banked_and_start(seed: u64) -> (Pdq, Pdq) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut banked = [0u8; 32];
    rng.fill(&mut banked);
    let mut start = banked;
    let mut flipped = std::collections::HashSet::new();
    while flipped.len() < 20 {
        let bit = rng.random_range(0..256);
        if flipped.insert(bit) {
            start = flip(&start, bit);
        }
    }
    (banked, start)
}

async fn bank_pdq(h: &Harness, bank: &str, pdq: &Pdq) {
    let mut banks = BanksClient::new(h.channel.clone());
    banks
        .create_bank(with_key(
            CreateBankRequest {
                name: bank.into(),
                kind: "block".into(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect("create bank");
    banks
        .add_entries(with_key(
            AddEntriesRequest {
                bank: bank.into(),
                entries: vec![NewEntry {
                    external_id: "x1".into(),
                    content: Some(new_entry::Content::Hashes(HashSet {
                        pdq: hex(pdq),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
            },
            &h.curate,
        ))
        .await
        .expect("add entry");
}

/// What one query told the attacker.
enum Answer {
    /// The screen was answered.
    Answered(ScreenResponse),
    /// The answer was withheld (probing detected) or the key suspended: nothing learned.
    Withheld,
}

struct Attacker {
    client: ScreeningClient<Channel>,
    key: String,
    bank: String,
    queries: usize,
    /// Queries answered before the first withheld answer (the attack's useful queries).
    answered_before_stop: Option<usize>,
    withheld_in_a_row: usize,
}

impl Attacker {
    fn new(h: &Harness, key: String, bank: &str) -> Attacker {
        Attacker {
            client: ScreeningClient::new(h.channel.clone()),
            key,
            bank: bank.into(),
            queries: 0,
            answered_before_stop: None,
            withheld_in_a_row: 0,
        }
    }

    fn out_of_budget(&self) -> bool {
        self.queries >= BUDGET || self.withheld_in_a_row >= GIVE_UP_AFTER
    }

    /// Screens `pdq`, waiting out the rate limit as a patient attacker would (a refused screen
    /// is not counted as a query).
    async fn query(&mut self, pdq: &Pdq) -> Answer {
        loop {
            let result = self
                .client
                .screen(with_key(
                    ScreenRequest {
                        banks: vec![self.bank.clone()],
                        input: Some(screen_request::Input::Hashes(HashSet {
                            pdq: hex(pdq),
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                    &self.key,
                ))
                .await;
            match result {
                Ok(r) => {
                    self.queries += 1;
                    self.withheld_in_a_row = 0;
                    return Answer::Answered(r.into_inner());
                }
                Err(s) if s.code() == Code::ResourceExhausted => {
                    let ms: u64 = s
                        .metadata()
                        .get("vigie-retry-after-ms")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .expect("a rate-limited answer says when to retry");
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(s) if s.code() == Code::PermissionDenied => {
                    let kind = s
                        .metadata()
                        .get("vigie-error-kind")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    assert!(
                        kind == "probing_withheld" || kind == "key_suspended",
                        "{kind}: {}",
                        s.message()
                    );
                    self.answered_before_stop.get_or_insert(self.queries);
                    self.queries += 1;
                    self.withheld_in_a_row += 1;
                    return Answer::Withheld;
                }
                Err(s) => panic!("unexpected answer: {s:?}"),
            }
        }
    }
}

/// How good an answer looks to the distance-walk attacker: (matched, -distance) when distances
/// are given, else (matched, confidence in thousandths): higher is closer.
fn score(r: &ScreenResponse) -> (bool, i64) {
    let Some(m) = r.matches.first() else {
        return (false, 0);
    };
    if r.detail == "exact" {
        (r.matched, -i64::from(m.distance))
    } else {
        (r.matched, (m.confidence * 1000.0).round() as i64)
    }
}

/// The issue's attack: flip one bit at a time, keep the flips that improve the answer.
/// Returns the attacker's best estimate.
async fn distance_walk(a: &mut Attacker, start: &Pdq) -> Pdq {
    let mut best = *start;
    let mut best_score = match a.query(&best).await {
        Answer::Answered(r) => Some(score(&r)),
        Answer::Withheld => None,
    };
    let mut bit = 0;
    while !a.out_of_budget() {
        let candidate = flip(&best, bit % 256);
        bit += 1;
        if let Answer::Answered(r) = a.query(&candidate).await {
            let s = score(&r);
            match best_score {
                Some(b) if s > b => {
                    best = candidate;
                    best_score = Some(s);
                }
                None => best_score = Some(s),
                _ => {}
            }
        }
    }
    best
}

/// The threshold-boundary attack with match/no-match only: walk away from the start (keeping
/// each flip) until the answer turns to no match; the point before (the edge) is at exactly the
/// threshold; then flip each bit there: a match means the edge had that bit wrong (the flip
/// brought it closer). A bit is wrong in the start when it is wrong in the edge and was not
/// walked, or right in the edge and was walked. The estimate is the start with every bit known
/// to be wrong corrected (bits not yet tested are left as they are). Starts over when a phase
/// gives out, until the budget is spent.
async fn boundary_walk(a: &mut Attacker, start: &Pdq) -> Pdq {
    let mut estimate = *start;
    'attempt: while !a.out_of_budget() {
        // Phase 1: away from the start until no match.
        let mut current = *start;
        let mut walked = [false; 256];
        let mut at_threshold = None;
        for (bit, was_walked) in walked.iter_mut().enumerate() {
            if a.out_of_budget() {
                break 'attempt;
            }
            let next = flip(&current, bit);
            match a.query(&next).await {
                Answer::Answered(r) if !r.matched => {
                    at_threshold = Some(current);
                    break;
                }
                // A match, or no answer (the attacker cannot tell which side it is on): on.
                Answer::Answered(_) | Answer::Withheld => {
                    current = next;
                    *was_walked = true;
                }
            }
        }
        let Some(edge) = at_threshold else {
            continue 'attempt;
        };
        // Phase 2: every bit at the edge.
        for (bit, &was_walked) in walked.iter().enumerate() {
            if a.out_of_budget() {
                break 'attempt;
            }
            if let Answer::Answered(r) = a.query(&flip(&edge, bit)).await {
                let wrong_in_start = r.matched != was_walked;
                let as_in_start = (estimate[bit / 8] ^ start[bit / 8]) & (1 << (bit % 8)) == 0;
                if wrong_in_start == as_in_start {
                    estimate = flip(&estimate, bit);
                }
            }
        }
        if a.answered_before_stop.is_none() {
            // Unguarded, one pass is the whole attack.
            break;
        }
    }
    estimate
}

async fn metrics_text(h: &Harness) -> String {
    let addr = h.server.metrics_addr.expect("metrics address");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}

fn probing_events(h: &Harness, key: &str) -> usize {
    h.store
        .audit_events(&AuditFilter::default())
        .expect("audit")
        .iter()
        .filter(|e| e.action == AuditAction::KeyProbing && e.detail["key"] == key)
        .count()
}

/// What both attacks must end with under the default policy: stopped within 16 answers, an
/// estimate no closer to the banked hash than the start, one audit event, the probing metric and
/// the withheld answers counted.
async fn assert_stopped_and_recorded(
    h: &Harness,
    a: &Attacker,
    attack: &str,
    who: &str,
    (estimate, start, banked): (&Pdq, &Pdq, &Pdq),
) {
    let stopped = a.answered_before_stop.expect("the attack was stopped");
    eprintln!(
        "{attack}: {} queries spent, {stopped} answered before answers were withheld, \
         estimate {} bits from the banked hash (start {})",
        a.queries,
        distance(estimate, banked),
        distance(start, banked)
    );
    assert!(
        distance(estimate, banked) >= distance(start, banked),
        "{attack}: the attacker got closer: {} bits",
        distance(estimate, banked)
    );
    assert!(stopped <= 16, "{attack}: stopped after {stopped} answers");
    assert_eq!(probing_events(h, who), 1, "{attack}: one audit event");
    let metrics = metrics_text(h).await;
    assert!(
        metrics.contains(&format!("vigie_probing_detected_total{{key=\"{who}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("vigie_screens_withheld_total{{key=\"{who}\"}}")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distance_walk_recovers_nothing_under_the_default_policy() {
    let h = start().await;
    let (banked, start) = banked_and_start(16);
    bank_pdq(&h, "walk", &banked).await;
    let key = screen_key(&h, "attacker-a", KeyPolicy::default());
    let mut a = Attacker::new(&h, key, "walk");
    let estimate = distance_walk(&mut a, &start).await;
    assert_stopped_and_recorded(
        &h,
        &a,
        "distance walk",
        "attacker-a",
        (&estimate, &start, &banked),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_boundary_walk_recovers_nothing_under_the_default_policy() {
    let h = start().await;
    let (banked, start) = banked_and_start(10);
    bank_pdq(&h, "edge", &banked).await;
    let key = screen_key(&h, "attacker-b", KeyPolicy::default());
    let mut a = Attacker::new(&h, key, "edge");
    let estimate = boundary_walk(&mut a, &start).await;
    assert_stopped_and_recorded(
        &h,
        &a,
        "boundary walk",
        "attacker-b",
        (&estimate, &start, &banked),
    )
    .await;
}

/// Without the guard (an `exact` key with detection off), the same boundary walk does recover
/// the banked hash: the attack above is a real one, and what stops it is the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_key_gets_distances_and_unguarded_the_boundary_walk_works() {
    let h = start().await;
    let (banked, start) = banked_and_start(10);
    bank_pdq(&h, "edge", &banked).await;
    let trusted = KeyPolicy {
        detail: Some(Detail::Exact),
        on_probe: Some(vigie::store::api_keys::ProbeAction::Off),
        rate: Some(0),
        ..KeyPolicy::default()
    };
    let key = screen_key(&h, "trusted", trusted);
    let mut a = Attacker::new(&h, key, "edge");
    let Answer::Answered(r) = a.query(&start).await else {
        panic!("withheld");
    };
    assert_eq!(r.detail, "exact");
    assert_eq!(r.matches[0].distance, 20);
    assert!(r.matches[0].confidence > 0.0);
    let estimate = boundary_walk(&mut a, &start).await;
    eprintln!(
        "boundary walk, unguarded exact key: {} queries, estimate {} bits from the banked hash",
        a.queries,
        distance(&estimate, &banked)
    );
    assert_eq!(estimate, banked, "unguarded, the walk recovers the hash");
    assert!(a.answered_before_stop.is_none());

    // A default screen key: no distance, a coarse confidence and a band.
    let key = screen_key(&h, "platform", KeyPolicy::default());
    let mut a = Attacker::new(&h, key, "edge");
    let Answer::Answered(r) = a.query(&start).await else {
        panic!("withheld");
    };
    assert_eq!(r.detail, "confidence");
    assert!(r.matched);
    assert_eq!(r.matches[0].distance, 0);
    assert!([0.9, 0.5].contains(&r.matches[0].confidence));
    assert!(!r.matches[0].band.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_rate_a_key_is_told_when_to_retry_on_grpc_and_http() {
    let h = start().await;
    let limited = KeyPolicy {
        rate: Some(1),
        burst: Some(2),
        ..KeyPolicy::default()
    };
    let key = screen_key(&h, "slow", limited);
    let mut client = ScreeningClient::new(h.channel.clone());
    for _ in 0..2 {
        client
            .screen(common::authorized_screen(&key))
            .await
            .expect("within the burst");
    }
    let refused = client
        .screen(common::authorized_screen(&key))
        .await
        .expect_err("over the burst");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let meta = |k: &str| {
        refused
            .metadata()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(meta("vigie-error-kind").as_deref(), Some("rate_limited"));
    assert_eq!(meta("retry-after").as_deref(), Some("1"));
    let ms: u64 = meta("vigie-retry-after-ms")
        .and_then(|v| v.parse().ok())
        .expect("milliseconds");
    assert!(ms > 0 && ms <= 1000, "{ms}");

    // The HTTP edge shares the key's bucket: still empty, 429 with Retry-After.
    let http = vigie::http::start(
        HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            insecure_no_auth: false,
            keyless_role: None,
            fetch: FetchPolicy {
                allow_hosts: Vec::new(),
                timeout: Duration::from_millis(500),
            },
        },
        h.server.state.clone(),
        h.store.clone(),
    )
    .await
    .expect("http starts");
    let body = r#"{"hashes": {"md5": "d41d8cd98f00b204e9800998ecf8427e"}}"#;
    let request = format!(
        "POST /v1/screen HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(http.addr)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    assert!(answer.contains("rate_limited"), "{answer}");
    http.shutdown().await.expect("http stops");
}

fn jpeg(picture: &image::DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut Cursor::new(&mut out), quality)
        .encode_image(&picture.to_rgb8())
        .expect("encode");
    out
}

/// Twenty different edits of one photo, as a platform sees an ad's picture come back.
fn twenty_edits(photo: &image::DynamicImage) -> Vec<Vec<u8>> {
    let (w, h) = (photo.width(), photo.height());
    let crop = |f: f32| {
        let (dx, dy) = ((w as f32 * f) as u32, (h as f32 * f) as u32);
        photo.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy)
    };
    let edits = vec![
        jpeg(photo, 95),
        jpeg(photo, 60),
        jpeg(photo, 30),
        jpeg(&photo.brighten(20), 90),
        jpeg(&photo.brighten(-20), 90),
        jpeg(&photo.brighten(45), 90),
        jpeg(&photo.adjust_contrast(20.0), 90),
        jpeg(&photo.adjust_contrast(-25.0), 90),
        jpeg(&photo.blur(1.5), 90),
        jpeg(&photo.blur(3.0), 90),
        jpeg(&photo.unsharpen(2.0, 5), 90),
        jpeg(&photo.grayscale(), 90),
        jpeg(&photo.huerotate(40), 90),
        jpeg(&crop(0.04), 90),
        jpeg(&crop(0.1), 90),
        jpeg(
            &photo.resize_exact(w / 2, h / 2, image::imageops::FilterType::Triangle),
            90,
        ),
        jpeg(
            &photo.resize_exact(w * 3 / 4, h, image::imageops::FilterType::Triangle),
            90,
        ),
        jpeg(&photo.fliph(), 90),
        jpeg(&photo.rotate90(), 90),
        jpeg(&crop(0.07).brighten(15).adjust_contrast(10.0), 80),
    ];
    assert_eq!(edits.len(), 20);
    edits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reposts_and_edits_of_a_banked_photo_do_not_trip_detection() {
    let h = start().await;
    let photo_bytes = common::read_fixture("wine.jpg");
    let photo = image::load_from_memory(&photo_bytes).expect("photo");
    // The photo is banked: every upload below is near the bank, the case detection watches.
    let mut banks = BanksClient::new(h.channel.clone());
    banks
        .create_bank(with_key(
            CreateBankRequest {
                name: "ads".into(),
                kind: "block".into(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect("bank");
    banks
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "ads".into(),
                entries: vec![NewEntry {
                    external_id: "photo".into(),
                    content: Some(new_entry::Content::Image(photo_bytes.clone())),
                    ..Default::default()
                }],
            },
            &h.curate,
        ))
        .await
        .expect("add");
    let key = screen_key(&h, "busy-platform", KeyPolicy::default());
    let mut client = ScreeningClient::new(h.channel.clone());
    let screen = |image: Vec<u8>| {
        with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Image(image)),
                ..Default::default()
            },
            &key,
        )
    };
    for i in 0..100 {
        let r = client
            .screen(screen(photo_bytes.clone()))
            .await
            .unwrap_or_else(|e| panic!("repost {i}: {e:?}"))
            .into_inner();
        assert!(r.matched, "repost {i}");
    }
    let mut matched = 0;
    for (i, edit) in twenty_edits(&photo).into_iter().enumerate() {
        let r = client
            .screen(screen(edit))
            .await
            .unwrap_or_else(|e| panic!("edit {i}: {e:?}"))
            .into_inner();
        matched += usize::from(r.matched);
    }
    assert!(
        matched >= 10,
        "the edits are of the banked photo: {matched} matched"
    );
    assert_eq!(probing_events(&h, "busy-platform"), 0);
    let metrics = metrics_text(&h).await;
    assert!(
        !metrics.contains("vigie_probing_detected_total{key=\"busy-platform\"} 1"),
        "{metrics}"
    );
}

//! End-to-end: the real server on 127.0.0.1:0 with a temporary RocksDB store, a tonic client:
//! auth, limits, streams, status codes, restart, metrics. The screen decision itself (crop windows,
//! allow banks, mirror + banner, featureless pictures) is tested on the core, in
//! `src/matcher/live.rs`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use image::imageops::FilterType;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use vigie::service::ServiceLimits;
use vigie::service::proto::banks_client::BanksClient;
use vigie::service::proto::keys_client::KeysClient;
use vigie::service::proto::screening_client::ScreeningClient;
use vigie::service::proto::*;
use vigie::service::server::RunningServer;
use vigie::store::api_keys::{Role, generate_key};
use vigie::store::{RocksOptions, Store};

struct Harness {
    server: RunningServer,
    channel: Channel,
    admin: String,
    curate: String,
    screen: String,
    dir: tempfile::TempDir,
}

fn limits() -> ServiceLimits {
    ServiceLimits {
        hash_workers: 2,
        queue_wait: Duration::from_secs(5),
        ..ServiceLimits::default()
    }
}

async fn start_on(
    dir: tempfile::TempDir,
    limits: ServiceLimits,
    keys: Option<(String, String, String)>,
) -> Harness {
    let store = Arc::new(Store::open(dir.path(), &RocksOptions::default()).expect("open store"));
    let (admin, curate, screen) = keys.unwrap_or_else(|| {
        let keys = (generate_key(), generate_key(), generate_key());
        store
            .create_api_key("admin-key", Role::Admin, &keys.0, "test")
            .expect("key");
        store
            .create_api_key("curator", Role::Curate, &keys.1, "test")
            .expect("key");
        store
            .create_api_key("platform", Role::Screen, &keys.2, "test")
            .expect("key");
        keys
    });
    let (server, channel) = crate::serve(store, limits).await;
    Harness {
        server,
        channel,
        admin,
        curate,
        screen,
        dir,
    }
}

async fn start(limits: ServiceLimits) -> Harness {
    start_on(tempfile::tempdir().expect("tmp"), limits, None).await
}

/// Shut the server down cleanly and start a new one on the same store and keys.
async fn restart(h: Harness) -> Harness {
    let Harness {
        server,
        admin,
        curate,
        screen,
        dir,
        ..
    } = h;
    server.shutdown().await.expect("clean shutdown");
    start_on(dir, limits(), Some((admin, curate, screen))).await
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut r = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().expect("header");
    r.metadata_mut().insert("authorization", value);
    r
}

fn encode(picture: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        image::ImageFormat::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 30);
            picture.to_rgb8().write_with_encoder(enc).expect("jpeg");
        }
        _ => picture
            .write_to(&mut std::io::Cursor::new(&mut out), format)
            .expect("encode"),
    }
    out
}

async fn create_bank(h: &Harness, name: &str, kind: &str) {
    BanksClient::new(h.channel.clone())
        .create_bank(with_key(
            CreateBankRequest {
                name: name.into(),
                kind: kind.into(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect("create bank");
}

async fn add_image(h: &Harness, bank: &str, external_id: &str, image: Vec<u8>, label: &str) -> u64 {
    let r = BanksClient::new(h.channel.clone())
        .add_entries(with_key(
            AddEntriesRequest {
                bank: bank.into(),
                entries: vec![NewEntry {
                    external_id: external_id.into(),
                    content: Some(new_entry::Content::Image(image)),
                    label: label.into(),
                    source: "internal".into(),
                    note: String::new(),
                }],
            },
            &h.curate,
        ))
        .await
        .expect("add entries")
        .into_inner();
    r.entry_ids[0]
}

/// Adds one image entry without a label; the whole answer (its warnings).
async fn add_image_entry(
    h: &Harness,
    bank: &str,
    external_id: &str,
    image: Vec<u8>,
) -> AddEntriesResponse {
    BanksClient::new(h.channel.clone())
        .add_entries(with_key(
            AddEntriesRequest {
                bank: bank.into(),
                entries: vec![NewEntry {
                    external_id: external_id.into(),
                    content: Some(new_entry::Content::Image(image)),
                    ..Default::default()
                }],
            },
            &h.curate,
        ))
        .await
        .expect("add entries")
        .into_inner()
}

async fn screen_image(h: &Harness, image: Vec<u8>) -> Result<ScreenResponse, tonic::Status> {
    ScreeningClient::new(h.channel.clone())
        .screen(with_key(
            ScreenRequest {
                request_id: "r".into(),
                input: Some(screen_request::Input::Image(image)),
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_only_screening_and_bad_hashes() {
    let h = start(limits()).await;
    create_bank(&h, "hotline", "block").await;
    let pdq = "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2";
    let mut banks = BanksClient::new(h.channel.clone());
    let added = banks
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "hotline".into(),
                entries: vec![NewEntry {
                    external_id: "ncmec-1".into(),
                    content: Some(new_entry::Content::Hashes(HashSet {
                        pdq: pdq.into(),
                        ..Default::default()
                    })),
                    label: "csam".into(),
                    source: "ncmec".into(),
                    note: String::new(),
                }],
            },
            &h.curate,
        ))
        .await
        .expect("add")
        .into_inner();
    let mut client = ScreeningClient::new(h.channel.clone());
    // Two bits away from the banked hash.
    let near = "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b1";
    let near_screen = |key: &str| {
        with_key(
            ScreenRequest {
                request_id: "x".into(),
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: near.into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
            key,
        )
    };
    // The curator's key has exact detail: the distance.
    let r = client
        .screen(near_screen(&h.curate))
        .await
        .expect("screen")
        .into_inner();
    assert!(r.matched);
    assert_eq!(r.matches[0].entry_id, added.entry_ids[0]);
    assert_eq!(r.matches[0].distance, 2);
    assert_eq!(r.detail, "exact");
    // A screen key's default detail: the match, a coarse confidence, no distance.
    let r = client
        .screen(near_screen(&h.screen))
        .await
        .expect("screen")
        .into_inner();
    assert!(r.matched);
    assert_eq!(r.matches[0].entry_id, added.entry_ids[0]);
    assert_eq!(
        (r.detail.as_str(), r.matches[0].distance),
        ("confidence", 0)
    );
    assert_eq!(r.matches[0].band, "strong");
    assert_eq!(r.request_id, "x");
    // max_distance may only tighten: at 1 it no longer matches.
    let r = client
        .screen(with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: near.into(),
                    ..Default::default()
                })),
                max_distance: Some(1),
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .expect("screen")
        .into_inner();
    assert!(!r.matched);
    // A malformed hash names its field.
    let e = client
        .screen(with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: "zz".into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .expect_err("bad hash");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("hashes.pdq"), "{}", e.message());
    // An unknown bank is NOT_FOUND; a bad bank name INVALID_ARGUMENT.
    let e = client
        .screen(with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: pdq.into(),
                    ..Default::default()
                })),
                banks: vec!["nope".into()],
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .expect_err("unknown bank");
    assert_eq!(e.code(), Code::NotFound);
    let _ = h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_revocation_and_audit_actor() {
    let h = start(limits()).await;
    let list = |key: Option<&str>| {
        let channel = h.channel.clone();
        let key = key.map(str::to_string);
        async move {
            let request = match key {
                Some(k) => with_key(ListBanksRequest {}, &k),
                None => Request::new(ListBanksRequest {}),
            };
            BanksClient::new(channel)
                .list_banks(request)
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }
    };
    let hash_call = |key: &str| {
        let channel = h.channel.clone();
        let key = key.to_string();
        async move {
            ScreeningClient::new(channel)
                .screen(with_key(
                    ScreenRequest {
                        input: Some(screen_request::Input::Hashes(HashSet {
                            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                    &key,
                ))
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }
    };
    let keys_call = |key: &str| {
        let channel = h.channel.clone();
        let key = key.to_string();
        async move {
            KeysClient::new(channel)
                .list_keys(with_key(ListKeysRequest {}, &key))
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }
    };
    assert_eq!(list(None).await, Err(Code::Unauthenticated));
    assert_eq!(list(Some("vk_not-a-key")).await, Err(Code::Unauthenticated));
    assert_eq!(list(Some(&h.screen)).await, Err(Code::PermissionDenied));
    assert_eq!(list(Some(&h.curate)).await, Ok(()));
    assert_eq!(list(Some(&h.admin)).await, Ok(()));
    for key in [&h.screen, &h.curate, &h.admin] {
        assert_eq!(hash_call(key).await, Ok(()));
    }
    assert_eq!(keys_call(&h.screen).await, Err(Code::PermissionDenied));
    assert_eq!(keys_call(&h.curate).await, Err(Code::PermissionDenied));
    assert_eq!(keys_call(&h.admin).await, Ok(()));

    // A key created through the API works, and fails on its next call once revoked.
    let mut keys = KeysClient::new(h.channel.clone());
    let created = keys
        .create_key(with_key(
            CreateKeyRequest {
                name: "temp".into(),
                role: "curate".into(),
            },
            &h.admin,
        ))
        .await
        .expect("create key")
        .into_inner();
    assert_eq!(list(Some(&created.key)).await, Ok(()));
    BanksClient::new(h.channel.clone())
        .create_bank(with_key(
            CreateBankRequest {
                name: "by-temp".into(),
                ..Default::default()
            },
            &created.key,
        ))
        .await
        .expect("create bank");
    keys.revoke_key(with_key(
        RevokeKeyRequest {
            name: "temp".into(),
        },
        &h.admin,
    ))
    .await
    .expect("revoke");
    assert_eq!(list(Some(&created.key)).await, Err(Code::Unauthenticated));
    let listed = keys
        .list_keys(with_key(ListKeysRequest {}, &h.admin))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.keys.iter().any(|k| k.name == "temp" && k.revoked));

    // The audit log names the key.
    let events = BanksClient::new(h.channel.clone())
        .list_audit_events(with_key(
            ListAuditEventsRequest {
                bank: "by-temp".into(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect("audit")
        .into_inner()
        .events;
    assert!(events.iter().any(|e| e.actor == "key:temp"), "{events:?}");
    let _ = h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_and_the_size_limit() {
    let h = start(ServiceLimits {
        max_request_bytes: 1 << 20,
        max_image_bytes: 1 << 20,
        ..limits()
    })
    .await;
    // A PNG cut inside its image data (a truncated JPEG may still decode: missing blocks come out grey).
    let mut truncated = read_fixture("tux_747.png");
    truncated.truncate(2000);
    let e = screen_image(&h, truncated).await.expect_err("corrupt");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.metadata()
            .get("vigie-error-kind")
            .and_then(|v| v.to_str().ok()),
        Some("corrupt")
    );
    let e = screen_image(&h, b"just text".to_vec())
        .await
        .expect_err("not an image");
    assert_eq!(
        e.metadata()
            .get("vigie-error-kind")
            .and_then(|v| v.to_str().ok()),
        Some("unsupported_format")
    );
    let e = screen_image(&h, Vec::new()).await.expect_err("empty");
    assert_eq!(e.code(), Code::InvalidArgument);
    // Over the 1 MiB message limit.
    let e = screen_image(&h, vec![0xff; 2 << 20])
        .await
        .expect_err("too large");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The server is still fine.
    assert!(screen_image(&h, read_fixture("bridge.jpg")).await.is_ok());
    let _ = h.server.shutdown().await;
}

fn big_png() -> Vec<u8> {
    let bridge = image::load_from_memory(&read_fixture("bridge.jpg")).expect("decode");
    encode(
        &bridge.resize_exact(3000, 2000, FilterType::Triangle),
        image::ImageFormat::Png,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_fast_and_deadlines_are_honoured() {
    let h = start(ServiceLimits {
        hash_workers: 1,
        queue_wait: Duration::from_millis(1),
        ..limits()
    })
    .await;
    let image = big_png();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (channel, key, image) = (h.channel.clone(), h.screen.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            ScreeningClient::new(channel)
                .screen(with_key(
                    ScreenRequest {
                        input: Some(screen_request::Input::Image(image)),
                        ..Default::default()
                    },
                    &key,
                ))
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => ok += 1,
            Err(Code::ResourceExhausted) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");

    // A client deadline shorter than the work answers DEADLINE_EXCEEDED. The picture is large in
    // pixels (slow to hash) but small in bytes (quick to send), so the server's answer, sent a little
    // before the deadline, arrives before the tonic client's own timer would give up.
    let slow = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(6000, 6000, |x, y| {
        image::Luma([((x / 7 + y / 5) % 256) as u8])
    }));
    let slow = encode(&slow, image::ImageFormat::Png);
    assert!(slow.len() < 4 << 20, "{} bytes", slow.len());
    let mut request = with_key(
        ScreenRequest {
            input: Some(screen_request::Input::Image(slow)),
            ..Default::default()
        },
        &h.screen,
    );
    request.set_timeout(Duration::from_millis(150));
    let e = ScreeningClient::new(h.channel.clone())
        .screen(request)
        .await
        .expect_err("deadline");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    let _ = h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_with_100_requests_in_flight() {
    let h = start(limits()).await;
    create_bank(&h, "ads", "block").await;
    let bridge = read_fixture("bridge.jpg");
    add_image(&h, "ads", "b", bridge.clone(), "x").await;
    let wine = read_fixture("wine.jpg");
    let requests: Vec<ScreenRequest> = (0..100)
        .map(|i| ScreenRequest {
            request_id: format!("req-{i}"),
            input: Some(match i % 4 {
                0 => screen_request::Input::Image(bridge.clone()),
                1 => screen_request::Input::Image(wine.clone()),
                2 => screen_request::Input::Image(b"broken".to_vec()),
                _ => screen_request::Input::Hashes(HashSet {
                    pdq: "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
        .collect();
    let outbound = tokio_stream::iter(requests);
    let mut inbound = ScreeningClient::new(h.channel.clone())
        .screen_stream(with_key(outbound, &h.screen))
        .await
        .expect("stream")
        .into_inner();
    let mut answers = std::collections::HashMap::new();
    while let Some(answer) = inbound.message().await.expect("answer") {
        answers.insert(answer.request_id.clone(), answer);
    }
    assert_eq!(answers.len(), 100);
    for i in 0..100 {
        let a = &answers[&format!("req-{i}")];
        match i % 4 {
            0 | 3 => assert!(a.matched && a.error.is_none(), "req-{i}"),
            1 => assert!(!a.matched && a.error.is_none(), "req-{i}"),
            _ => {
                let e = a.error.as_ref().expect("item error");
                assert_eq!(e.code, Code::InvalidArgument as i32);
                assert_eq!(e.kind, "unsupported_format");
            }
        }
    }
    let _ = h.server.shutdown().await;
}

/// A batch sent over ScreenStream waits for the hashing workers instead of being refused: with
/// one worker and a 1 ms queue wait (unary callers are refused after 1 ms), 40 large pictures in
/// flight at once are all answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_queues_for_the_workers_instead_of_being_refused() {
    let h = start(ServiceLimits {
        hash_workers: 1,
        queue_wait: Duration::from_millis(1),
        ..limits()
    })
    .await;
    let image = big_png();
    let requests: Vec<ScreenRequest> = (0..40)
        .map(|i| ScreenRequest {
            request_id: format!("req-{i}"),
            input: Some(screen_request::Input::Image(image.clone())),
            ..Default::default()
        })
        .collect();
    let mut inbound = ScreeningClient::new(h.channel.clone())
        .screen_stream(with_key(tokio_stream::iter(requests), &h.screen))
        .await
        .expect("stream")
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = inbound.message().await.expect("answer") {
        assert!(answer.error.is_none(), "{:?}", answer.error);
        answered += 1;
    }
    assert_eq!(answered, 40);
    let _ = h.server.shutdown().await;
}

/// An entry added as an image keeps PDQs of centred crops of it, so a cropped re-upload (10% off
/// each side, recompressed) still meets it; one added as bare hashes has none and does not. The
/// windows survive a restart (stored in the entry record, reloaded into their own index).
/// A mirrored copy with a phone-number banner across it: the banner moves PDQ (mirrored or not)
/// out of reach, but the mirrored upload's dHash/pHash still meet the banked picture, reported as
/// a mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_round_trip_restart_health_and_metrics() {
    let h = start(limits()).await;
    create_bank(&h, "shared", "block").await;
    let lines = "pdq 3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2 collab-1 trafficking\n\
                 pdq 188f8d99b54f326353b043910e76ef7499e19429feee62c3629f5c1c35272561\n\
                 url http://example.invalid/x\n\
                 pdq not-a-hash\n";
    let chunks: Vec<ImportEntriesRequest> = lines
        .as_bytes()
        .chunks(50)
        .enumerate()
        .map(|(i, c)| ImportEntriesRequest {
            bank: if i == 0 {
                "shared".into()
            } else {
                String::new()
            },
            format: if i == 0 {
                "signal-lines".into()
            } else {
                String::new()
            },
            data: c.to_vec(),
            ..Default::default()
        })
        .collect();
    let mut banks = BanksClient::new(h.channel.clone());
    let summary = banks
        .import_entries(with_key(tokio_stream::iter(chunks), &h.curate))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(
        (
            summary.added,
            summary.updated,
            summary.skipped,
            summary.failed
        ),
        (2, 0, 1, 1),
        "{summary:?}"
    );
    // Imported hashes are live at once.
    let r = screen_image(&h, read_fixture("wine.jpg"))
        .await
        .expect("screen");
    assert!(r.matched, "imported wine hash should match the wine photo");

    let mut export = banks
        .export_entries(with_key(
            ExportEntriesRequest {
                bank: "shared".into(),
                format: "jsonl".into(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect("export")
        .into_inner();
    let mut exported = Vec::new();
    while let Some(chunk) = export.message().await.expect("chunk") {
        exported.extend(chunk.data);
    }
    let text = String::from_utf8(exported).expect("utf-8");
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2"));

    // Round trip: the export imports into a second bank as the same entries.
    create_bank(&h, "copy", "block").await;
    let again = banks
        .import_entries(with_key(
            tokio_stream::iter(vec![ImportEntriesRequest {
                bank: "copy".into(),
                format: "jsonl".into(),
                data: text.clone().into_bytes(),
                ..Default::default()
            }]),
            &h.curate,
        ))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((again.added, again.failed), (2, 0));

    // Health says SERVING once loaded.
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "vigie.v1.Screening".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Metrics count the calls.
    let metrics_addr = h.server.metrics_addr.expect("metrics");
    let body = http_get(metrics_addr, "/metrics").await;
    assert!(
        body.contains("vigie_requests_total{method=\"Screen\",code=\"OK\"}"),
        "{body}"
    );
    assert!(
        body.contains("vigie_index_hashes{algorithm=\"pdq\"} 4"),
        "{body}"
    );

    // Restart on the same directory: every bank and entry is still there, and still matches.
    let stats_before = banks
        .get_stats(with_key(GetStatsRequest {}, &h.curate))
        .await
        .expect("stats")
        .into_inner();
    let h = restart(h).await;
    let mut banks = BanksClient::new(h.channel.clone());
    let stats_after = banks
        .get_stats(with_key(GetStatsRequest {}, &h.curate))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(
        (stats_after.banks, stats_after.entries),
        (stats_before.banks, stats_before.entries)
    );
    assert_eq!(stats_after.indexed, stats_before.indexed);
    assert!(
        screen_image(&h, read_fixture("wine.jpg"))
            .await
            .expect("screen")
            .matched
    );
    let _ = h.server.shutdown().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

fn pdq_entry(external_id: &str, pdq: &str) -> NewEntry {
    NewEntry {
        external_id: external_id.into(),
        content: Some(new_entry::Content::Hashes(HashSet {
            pdq: pdq.into(),
            ..Default::default()
        })),
        label: "csam".into(),
        source: "ncmec".into(),
        note: String::new(),
    }
}

async fn banks_health(channel: &Channel) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "vigie.v1.Banks".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status
}

/// A full disk (injected in the in-memory backend, as RocksDB reports ENOSPC): writes answer
/// UNAVAILABLE with kind `storage_full`, health says `vigie.v1.Banks` NOT_SERVING and the metrics
/// gauge 0 while screens go on; once space is back, health and writes recover by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_recovers_by_itself() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let backend = Arc::new(vigie::store::MemoryBackend::default());
    let store = Arc::new(Store::with_backend(Box::new(backend.clone())).expect("store"));
    let curate = generate_key();
    store
        .create_api_key("curator", Role::Curate, &curate, "test")
        .expect("key");
    let (server, channel) = crate::serve(store, limits()).await;
    let pdq = "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2";
    let mut banks = BanksClient::new(channel.clone());
    banks
        .create_bank(with_key(
            CreateBankRequest {
                name: "hotline".into(),
                kind: "block".into(),
                ..Default::default()
            },
            &curate,
        ))
        .await
        .expect("create bank");
    banks
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "hotline".into(),
                entries: vec![pdq_entry("a", pdq)],
            },
            &curate,
        ))
        .await
        .expect("add");

    backend.set_full(true);
    let e = banks
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "hotline".into(),
                entries: vec![pdq_entry("b", pdq)],
            },
            &curate,
        ))
        .await
        .expect_err("disk full");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(
        e.metadata()
            .get("vigie-error-kind")
            .and_then(|v| v.to_str().ok()),
        Some("storage_full")
    );
    assert!(e.message().contains("disk is full"), "{}", e.message());
    // Screens go on (the curate key may screen).
    let r = ScreeningClient::new(channel.clone())
        .screen(with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: pdq.into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
            &curate,
        ))
        .await
        .expect("screen while the disk is full")
        .into_inner();
    assert!(r.matched);
    // Health and metrics report writes unavailable within a few checks.
    let mut waited = 0;
    while banks_health(&channel).await != ServingStatus::NotServing as i32 {
        waited += 1;
        assert!(waited < 100, "vigie.v1.Banks never reported NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics_addr = server.metrics_addr.expect("metrics");
    let body = http_get(metrics_addr, "/metrics").await;
    assert!(body.contains("vigie_store_writes_available 0"), "{body}");

    // Space is back: health recovers without any client write, then writes succeed.
    let freed = std::time::Instant::now();
    backend.set_full(false);
    while banks_health(&channel).await != ServingStatus::Serving as i32 {
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "writes never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "health SERVING again {} ms after space was freed",
        freed.elapsed().as_millis()
    );
    let body = http_get(metrics_addr, "/metrics").await;
    assert!(body.contains("vigie_store_writes_available 1"), "{body}");
    banks
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "hotline".into(),
                entries: vec![pdq_entry("b", pdq)],
            },
            &curate,
        ))
        .await
        .expect("add after space is back");
    let _ = server.shutdown().await;
}

/// An error quotes what the caller sent cut short, so a huge field yields its real error, not a
/// status too large for the client's metadata limit (RESOURCE_EXHAUSTED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_quote_huge_input_cut_short() {
    let h = start(limits()).await;
    let huge = "x".repeat(1 << 20);
    let e = ScreeningClient::new(h.channel.clone())
        .screen(with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2".into(),
                    ..Default::default()
                })),
                banks: vec![huge.clone()],
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .expect_err("bad bank name");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().len() <= 1024, "{} bytes", e.message().len());
    assert!(
        e.message().contains("1048576 characters"),
        "{}",
        e.message()
    );
    let e = BanksClient::new(h.channel.clone())
        .create_bank(with_key(
            CreateBankRequest {
                name: huge.clone(),
                kind: "block".into(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect_err("bad name");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().len() <= 1024, "{} bytes", e.message().len());
    let e = BanksClient::new(h.channel.clone())
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "nope".into(),
                entries: vec![pdq_entry(&huge, &huge)],
            },
            &h.curate,
        ))
        .await
        .expect_err("bad entry");
    assert_ne!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().len() <= 1024, "{} bytes", e.message().len());
    let _ = h.server.shutdown().await;
}

/// RFC 9110: the authentication scheme is case-insensitive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let h = start(limits()).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let mut request = Request::new(ScreenRequest {
            input: Some(screen_request::Input::Hashes(HashSet {
                pdq: "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2".into(),
                ..Default::default()
            })),
            ..Default::default()
        });
        let value: MetadataValue<_> = format!("{scheme} {}", h.screen).parse().expect("header");
        request.metadata_mut().insert("authorization", value);
        let r = ScreeningClient::new(h.channel.clone())
            .screen(request)
            .await;
        assert!(r.is_ok(), "{scheme}: {r:?}");
    }
    let _ = h.server.shutdown().await;
}

/// Every repeated request field has a cap, checked on the wire before decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_fields_are_capped_before_any_work() {
    let h = start(limits()).await;
    let kind = |e: &tonic::Status| {
        e.metadata()
            .get("vigie-error-kind")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Two million one-byte bank names: about 6 MB, under the size limit.
    let started = std::time::Instant::now();
    let e = ScreeningClient::new(h.channel.clone())
        .screen(with_key(
            ScreenRequest {
                input: Some(screen_request::Input::Hashes(HashSet {
                    pdq: "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2".into(),
                    ..Default::default()
                })),
                banks: vec!["b".into(); 2_000_000],
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .expect_err("too many banks");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(kind(&e).as_deref(), Some("too_many"));
    assert!(e.message().contains("banks"), "{}", e.message());
    println!(
        "2,000,000 bank names refused in {} ms (client encode included)",
        started.elapsed().as_millis()
    );
    let e = BanksClient::new(h.channel.clone())
        .remove_entries(with_key(
            RemoveEntriesRequest {
                bank: "b".into(),
                entry_ids: (1..=20_000).collect(),
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect_err("too many ids");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(kind(&e).as_deref(), Some("too_many"));
    let e = BanksClient::new(h.channel.clone())
        .remove_entries(with_key(
            RemoveEntriesRequest {
                bank: "b".into(),
                external_ids: vec!["x".into(); 20_000],
                ..Default::default()
            },
            &h.curate,
        ))
        .await
        .expect_err("too many external ids");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = ScreeningClient::new(h.channel.clone())
        .hash(with_key(
            HashRequest {
                algorithms: vec!["pdq".into(); 100],
                ..Default::default()
            },
            &h.screen,
        ))
        .await
        .expect_err("too many algorithms");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(kind(&e).as_deref(), Some("too_many"));
    let _ = h.server.shutdown().await;
}

/// A stream of many pictures does not starve unary callers: streams together hold all hashing
/// workers but one, so a `Screen` beside a busy stream finds a worker within its queue wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_screens_are_answered_beside_a_busy_stream() {
    let h = start(ServiceLimits {
        hash_workers: 2,
        queue_wait: Duration::from_millis(10),
        ..limits()
    })
    .await;
    let bridge = read_fixture("bridge.jpg");
    let requests: Vec<ScreenRequest> = (0..300)
        .map(|i| ScreenRequest {
            request_id: format!("req-{i}"),
            input: Some(screen_request::Input::Image(bridge.clone())),
            ..Default::default()
        })
        .collect();
    let mut inbound = ScreeningClient::new(h.channel.clone())
        .screen_stream(with_key(tokio_stream::iter(requests), &h.screen))
        .await
        .expect("stream")
        .into_inner();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Ok(Some(answer)) = inbound.message().await {
            assert!(answer.error.is_none(), "{:?}", answer.error);
            n += 1;
        }
        n
    });
    // Let the stream fill the workers first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let wine = read_fixture("wine.jpg");
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..40 {
        match screen_image(&h, wine.clone()).await {
            Ok(_) => ok += 1,
            Err(e) if e.code() == Code::ResourceExhausted => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let streamed = reader.await.expect("reader");
    println!(
        "unary screens beside a 300-picture stream: {ok} answered, {refused} refused; stream answered {streamed}"
    );
    assert_eq!(streamed, 300);
    assert!(
        ok >= 38,
        "{ok} of 40 unary screens answered beside the stream"
    );
    let _ = h.server.shutdown().await;
}

/// Silent connections are bounded: past the cap they are closed at accept, and those admitted are
/// closed at the handshake timeout, so a client connecting afterwards is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_and_timed_out() {
    use tokio::io::AsyncReadExt;
    let h = start(ServiceLimits {
        connections: vigie::service::connections::ConnectionLimits {
            max_connections: 20,
            handshake_timeout: Duration::from_millis(1000),
            idle_timeout: Duration::from_secs(90),
        },
        ..limits()
    })
    .await;
    // The harness's own channel is one connection already.
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(
            tokio::net::TcpStream::connect(h.server.addr)
                .await
                .expect("connect"),
        );
    }
    let started = std::time::Instant::now();
    let mut closed_at = Vec::new();
    for s in &mut silent {
        let mut buf = [0u8; 64];
        // Read until EOF (the server may first send its SETTINGS frame on an admitted socket).
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        assert!(closed, "a silent connection stayed open");
        closed_at.push(started.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let body = http_get(h.server.metrics_addr.expect("metrics"), "/metrics").await;
    let count = |reason: &str| -> u64 {
        let prefix = format!("vigie_connections_refused_total{{reason=\"{reason}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{reason} missing: {body}"))
    };
    let (cap, handshake) = (count("cap"), count("handshake_timeout"));
    assert!(cap >= 10, "{body}");
    assert_eq!(cap + handshake, 30, "{body}");
    // A client that connects now is served.
    let fresh = Channel::from_shared(format!("http://{}", h.server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    ScreeningClient::new(fresh)
        .screen(authorized_screen(&h.screen))
        .await
        .expect("served after the silent ones are gone");
    let _ = h.server.shutdown().await;
}

/// `n` distinct PDQ lines in the hex format.
fn hex_lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            let x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!(
                "{x:016x}{:016x}{:016x}{:016x}\n",
                x ^ 1,
                x.rotate_left(7),
                !x
            )
        })
        .collect()
}

fn import_chunks(bank: &str, strict: bool, text: &str) -> Vec<ImportEntriesRequest> {
    text.as_bytes()
        .chunks(64 << 10)
        .enumerate()
        .map(|(i, c)| ImportEntriesRequest {
            bank: if i == 0 { bank.into() } else { String::new() },
            format: if i == 0 { "hex".into() } else { String::new() },
            algorithm: if i == 0 { "pdq".into() } else { String::new() },
            strict: i == 0 && strict,
            data: c.to_vec(),
        })
        .collect()
}

async fn entry_count(h: &Harness, bank: &str) -> u64 {
    BanksClient::new(h.channel.clone())
        .get_bank(with_key(GetBankRequest { name: bank.into() }, &h.curate))
        .await
        .expect("get bank")
        .into_inner()
        .entry_count
}

/// Sends the first chunks of an import, then cancels the call; returns once the server has
/// recorded the import's outcome in the audit log (its `detail_json`).
async fn cancelled_import(h: &Harness, bank: &str, strict: bool) -> serde_json::Value {
    let chunks = import_chunks(bank, strict, &hex_lines(20_000));
    let (tx, rx) = tokio::sync::mpsc::channel::<ImportEntriesRequest>(1);
    let mut banks = BanksClient::new(h.channel.clone());
    let key = h.curate.clone();
    let call = tokio::spawn(async move {
        banks
            .import_entries(with_key(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &key,
            ))
            .await
    });
    for c in chunks.into_iter().take(10) {
        tx.send(c).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The request body stays open (`tx` lives to the end of this function): the client cancels
    // (RST_STREAM CANCEL), it does not end its stream. Closing `tx` here would race hyper's
    // body pipe, which can send a clean END_STREAM before the cancellation reaches it.
    call.abort();
    let _ = call.await;
    for _ in 0..250 {
        let events = BanksClient::new(h.channel.clone())
            .list_audit_events(with_key(
                ListAuditEventsRequest {
                    bank: bank.into(),
                    ..Default::default()
                },
                &h.curate,
            ))
            .await
            .expect("audit")
            .into_inner()
            .events;
        if let Some(e) = events.iter().find(|e| e.action == "import") {
            return serde_json::from_str(&e.detail_json).expect("detail");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the cancelled import was never recorded");
}

/// Strict imports are all or nothing however the stream ends; a non-strict import that ends early
/// records exactly what it committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_imports_are_all_or_nothing_and_early_ends_are_accounted() {
    let h = start(limits()).await;
    for bank in ["strict-bad", "strict-cancel", "loose-cancel"] {
        create_bank(&h, bank, "block").await;
    }
    // 5,000 good lines, then a bad one.
    let text = format!("{}zz\n", hex_lines(5000));
    let e = BanksClient::new(h.channel.clone())
        .import_entries(with_key(
            tokio_stream::iter(import_chunks("strict-bad", true, &text)),
            &h.curate,
        ))
        .await
        .expect_err("a bad line");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("line 5001"), "{}", e.message());
    assert_eq!(entry_count(&h, "strict-bad").await, 0);

    let detail = cancelled_import(&h, "strict-cancel", true).await;
    assert_eq!(detail["complete"], false, "{detail}");
    assert_eq!(detail["added"], 0, "{detail}");
    assert_eq!(entry_count(&h, "strict-cancel").await, 0);

    let detail = cancelled_import(&h, "loose-cancel", false).await;
    assert_eq!(detail["complete"], false, "{detail}");
    let added = detail["added"].as_u64().expect("added");
    assert!(added > 0, "{detail}");
    assert_eq!(entry_count(&h, "loose-cancel").await, added);
    println!("a cancelled non-strict import recorded {added} committed entries: {detail}");
    let _ = h.server.shutdown().await;
}

/// Issue 15, kind 8: gRPC reflection answers clients of both protocol versions. Python's
/// `grpcio-reflection` and older `grpcurl` builds ask `grpc.reflection.v1alpha` (a v1-only server
/// answers them UNIMPLEMENTED); current `grpcurl` asks `grpc.reflection.v1`. Each lists every
/// service, both reflection services included, and resolves a service to its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha_clients() {
    let h = start(limits()).await;
    let expected = [
        "vigie.v1.Screening",
        "vigie.v1.Banks",
        "vigie.v1.Keys",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    {
        use tokio_stream::StreamExt as _;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, ServerReflectionResponse};
        let ask = |m: MessageRequest| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let answers: Vec<ServerReflectionResponse> = ServerReflectionClient::new(h.channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![
                ask(MessageRequest::ListServices(String::new())),
                ask(MessageRequest::FileContainingSymbol(
                    "vigie.v1.Screening".into(),
                )),
            ]))
            .await
            .expect("a v1alpha reflection call is served")
            .into_inner()
            .map(|a| a.expect("answer"))
            .collect()
            .await;
        assert_eq!(answers.len(), 2, "{answers:?}");
        let Some(MessageResponse::ListServicesResponse(list)) = &answers[0].message_response else {
            panic!("v1alpha: unexpected answer {:?}", answers[0]);
        };
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        for name in expected {
            assert!(
                names.contains(&name),
                "v1alpha: {name} missing from {names:?}"
            );
        }
        let Some(MessageResponse::FileDescriptorResponse(files)) = &answers[1].message_response
        else {
            panic!("v1alpha: unexpected answer {:?}", answers[1]);
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }

    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let answer = ServerReflectionClient::new(h.channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }]))
            .await
            .expect("a v1 reflection call is served")
            .into_inner()
            .message()
            .await
            .expect("answer")
            .expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("v1: unexpected answer");
        };
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        for name in expected {
            assert!(names.contains(&name), "v1: {name} missing from {names:?}");
        }
    }
    let _ = h.server.shutdown().await;
}

/// Issue 15, field case `featureless-64bit`, as its `run.sh` tries it through the service: a flat
/// pink card with a little text is banked (with warnings for PDQ and for pHash/dHash); a beige
/// card, plain white and plain navy are screened and match nothing (before: all three by dHash
/// at distance 1-3, confidence 0.999), each with notes saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn featureless_uploads_do_not_match_a_banked_flat_card() {
    let h = start(limits()).await;
    create_bank(&h, "ads", "block").await;
    let dir = fixture("field-cases/featureless-64bit");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("fixture");
    let response = add_image_entry(&h, "ads", "card-1", read("banked-pink-card.png")).await;
    assert!(
        response.warnings.iter().any(|w| w.contains("PDQ quality"))
            && response
                .warnings
                .iter()
                .any(|w| w.contains("pHash/dHash quality")),
        "{:?}",
        response.warnings
    );
    for name in [
        "upload-beige-card.png",
        "upload-white.png",
        "upload-navy.png",
    ] {
        let answer = screen_image(&h, read(name)).await.expect("screen");
        assert!(!answer.matched, "{name}: {:?}", answer.matches);
        assert!(answer.matches.is_empty(), "{name}: {:?}", answer.matches);
        assert!(
            answer
                .notes
                .iter()
                .any(|n| n.contains("pHash and dHash not matched")),
            "{name}: {:?}",
            answer.notes
        );
    }
    let _ = h.server.shutdown().await;
}

/// Issue 15, kinds 6 and 7 through the service: a frame match names its frame; a JPEG cut to a
/// third is screened with a note, and never banked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_match_says_which_frame_and_a_cut_file_is_never_banked_silently() {
    let h = start(limits()).await;
    create_bank(&h, "ads", "block").await;
    add_image(&h, "ads", "photo", read_fixture("viewer/photo.png"), "x").await;
    // The photo is the GIF's second frame (its first is blank): the match names frame 1.
    let r = screen_image(&h, read_fixture("viewer/gif-photo-in-frame-1.gif"))
        .await
        .expect("screen");
    assert!(r.matched, "{r:?}");
    assert_eq!(r.matches[0].external_id, "photo");
    assert_eq!(r.matches[0].frame, Some(1), "{r:?}");
    // The photo itself: no frame.
    let r = screen_image(&h, read_fixture("viewer/photo.png"))
        .await
        .expect("screen");
    assert_eq!(r.matches[0].frame, None, "{r:?}");
    // A JPEG cut to its first third: screened, and the answer says it is cut.
    let whole = read_fixture("field-cases/jpeg-unusual-sampling/photo-410.jpg");
    let cut = whole[..whole.len() / 3].to_vec();
    let r = screen_image(&h, cut.clone()).await.expect("screen");
    assert!(
        r.notes.iter().any(|n| n.starts_with("truncated")),
        "{:?}",
        r.notes
    );
    // Banking it is refused, naming why.
    let e = BanksClient::new(h.channel.clone())
        .add_entries(with_key(
            AddEntriesRequest {
                bank: "ads".into(),
                entries: vec![NewEntry {
                    external_id: "cut".into(),
                    content: Some(new_entry::Content::Image(cut)),
                    ..Default::default()
                }],
            },
            &h.curate,
        ))
        .await
        .expect_err("not banked");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.metadata()
            .get("vigie-error-kind")
            .and_then(|v| v.to_str().ok()),
        Some("corrupt")
    );
    assert!(e.message().contains("truncated"), "{}", e.message());
    // The whole file banks.
    assert!(
        add_image_entry(&h, "ads", "whole", whole)
            .await
            .warnings
            .is_empty()
    );
    let _ = h.server.shutdown().await;
}

//! The HTTP/JSON edge against a running server over real HTTP on 127.0.0.1: HMA's routes, shapes
//! and status codes (docs/HMA-COMPAT.md), vigie's `/v1` calls, keys by both headers, the key-less
//! role, URL-fetch refusals, and a test written as an HMA client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common;
use axum::http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use vigie::http::fetch::FetchPolicy;
use vigie::http::{HttpConfig, RunningHttp};
use vigie::service::ServiceLimits;
use vigie::service::server::{self, RunningServer, ServerConfig};
use vigie::store::api_keys::{Role, generate_key};
use vigie::store::{RocksOptions, Store};

struct Harness {
    server: RunningServer,
    http: RunningHttp,
    store: Arc<Store>,
    curate: String,
    screen: String,
    _dir: tempfile::TempDir,
}

fn limits() -> ServiceLimits {
    ServiceLimits {
        hash_workers: 2,
        queue_wait: Duration::from_secs(5),
        max_request_bytes: 2 << 20,
        max_image_bytes: 2 << 20,
        ..ServiceLimits::default()
    }
}

fn http_config(keyless_role: Option<Role>, allow_hosts: &[&str]) -> HttpConfig {
    HttpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        insecure_no_auth: false,
        keyless_role,
        fetch: FetchPolicy {
            allow_hosts: allow_hosts.iter().map(|h| h.to_string()).collect(),
            timeout: Duration::from_millis(500),
        },
    }
}

async fn start(keyless_role: Option<Role>, allow_hosts: &[&str]) -> Harness {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(Store::open(dir.path(), &RocksOptions::default()).expect("open store"));
    let (curate, screen) = (generate_key(), generate_key());
    store
        .create_api_key("curator", Role::Curate, &curate, "test")
        .expect("key");
    store
        .create_api_key("platform", Role::Screen, &screen, "test")
        .expect("key");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        insecure_no_auth: false,
        tls: None,
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        limits: limits(),
    };
    let mut server = server::start(config, store.clone())
        .await
        .expect("server starts");
    server.wait_ready().await;
    let http = vigie::http::start(
        http_config(keyless_role, allow_hosts),
        server.state.clone(),
        store.clone(),
    )
    .await
    .expect("http starts");
    Harness {
        server,
        http,
        store,
        curate,
        screen,
        _dir: dir,
    }
}

/// One HTTP/1.1 exchange over a fresh connection: status, content type and body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "vigie.test");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, ct, bytes)
}

/// A JSON exchange: asserts the answer is JSON (HMA clients parse every body as JSON).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let (status, ct, bytes) = exchange(
        addr,
        method,
        path,
        &headers,
        body.as_ref().map(|_| "application/json"),
        body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
    )
    .await;
    assert_eq!(ct, "application/json", "{method} {path}: {status}");
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {bytes:?}"));
    (status, value)
}

/// A multipart body: text fields, then one file field.
fn multipart(texts: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "vigie-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in texts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    texts: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (StatusCode, Value) {
    let (ct, body) = multipart(texts, file);
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let (status, rct, bytes) = exchange(addr, "POST", path, &headers, Some(&ct), body).await;
    assert_eq!(rct, "application/json", "POST {path}: {status}");
    let value: Value = serde_json::from_slice(&bytes).expect("JSON");
    (status, value)
}

fn encode_jpeg(img: &image::DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    img.to_rgb8().write_with_encoder(encoder).expect("encode");
    out
}

/// The banked photo re-encoded smaller, mirrored and a little brighter: what a re-upload is.
fn edited_copy(photo: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(photo).expect("decode");
    let (w, h) = (img.width() * 3 / 4, img.height() * 3 / 4);
    let edited = img
        .resize_exact(w, h, image::imageops::FilterType::Triangle)
        .fliph()
        .brighten(12);
    encode_jpeg(&edited, 70)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hma_client_runs_unmodified() {
    // As Coop's client: no key (key-less role curate), a base URL ending in '/'.
    let h = start(Some(Role::Curate), &[]).await;
    let base = h.http.addr;
    let photo = common::read_fixture("bridge.jpg");
    let other = common::read_fixture("wine.jpg");

    // Bank create, with the ratio as a string, as Coop sends it.
    let (s, bank) = call(
        base,
        "POST",
        "//c/banks",
        None,
        Some(json!({"name": "COOP_ORG1_BRIDGES", "enabled_ratio": "1"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{bank}");
    assert_eq!(
        bank,
        json!({"name": "COOP_ORG1_BRIDGES", "matching_enabled_ratio": 1.0})
    );

    // Content add by photo, with metadata and a note.
    let (s, added) = upload(
        base,
        "//c/bank/COOP_ORG1_BRIDGES/content",
        None,
        &[
            ("content_id", "item-42"),
            ("metadata", r#"{"reviewer":"r1"}"#),
            ("note", "seen twice"),
        ],
        Some(("photo", &photo)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    let id = added["id"].as_u64().expect("integer id");
    let banked_pdq = added["signals"]["pdq"].as_str().expect("pdq").to_string();
    assert_eq!(banked_pdq.len(), 64);

    // Lookup of an edited copy finds it, the distance a string; vigie's fields beside HMA's.
    let (s, found) = upload(
        base,
        "//m/lookup",
        None,
        &[],
        Some(("photo", &edited_copy(&photo))),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let hits = found["pdq"]["COOP_ORG1_BRIDGES"]
        .as_array()
        .unwrap_or_else(|| panic!("no match: {found}"));
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["bank_content_id"], json!(id));
    let distance = hits[0]["distance"].as_str().expect("distance is a string");
    assert!(distance.parse::<u32>().is_ok(), "{distance}");
    assert!(hits[0]["confidence"].as_f64().is_some_and(|c| c > 0.0));
    assert!(hits[0]["algorithm"].is_string());
    assert_eq!(hits[0]["transform"], json!("flip_horizontal"), "{found}");
    // A bank's hashes never appear in a matching answer.
    assert!(!found.to_string().contains(&banked_pdq), "{found}");

    // An unrelated photo finds nothing.
    let (s, none) = upload(base, "//m/lookup", None, &[], Some(("photo", &other))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(none, json!({"pdq": {}}));

    // Lookup by hash: HMA's shape, distance "0"; no match answers {}.
    let (s, by_hash) = call(
        base,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={banked_pdq}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        by_hash["COOP_ORG1_BRIDGES"][0]["bank_content_id"],
        json!(id)
    );
    assert_eq!(by_hash["COOP_ORG1_BRIDGES"][0]["distance"], json!("0"));
    let far = "5".repeat(64);
    let (s, empty) = call(
        base,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={far}"),
        None,
        None,
    )
    .await;
    assert_eq!((s, empty), (StatusCode::OK, json!({})));

    // The content, with its signals, metadata and note.
    let (s, content) = call(
        base,
        "GET",
        &format!(
            "/c/bank/COOP_ORG1_BRIDGES/content/{id}?include_signals=true&include_metadata=true"
        ),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{content}");
    assert_eq!(content["id"], json!(id));
    assert_eq!(content["disable_until_ts"], json!(1));
    assert_eq!(content["signals"]["pdq"], json!(banked_pdq));
    assert_eq!(content["metadata"]["content_id"], json!("item-42"));
    assert_eq!(content["metadata"]["json"], json!({"reviewer": "r1"}));
    assert_eq!(content["note"], json!("seen twice"));
    assert_eq!(
        content["bank"],
        json!({"name": "COOP_ORG1_BRIDGES", "matching_enabled_ratio": 1.0})
    );

    // Bank read, update (disable: lookups stop finding it), delete.
    let (s, b) = call(base, "GET", "/c/bank/COOP_ORG1_BRIDGES", None, None).await;
    assert_eq!(
        (s, b["matching_enabled_ratio"].clone()),
        (StatusCode::OK, json!(1.0))
    );
    let (s, b) = call(
        base,
        "PUT",
        "/c/bank/COOP_ORG1_BRIDGES",
        None,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (s, b["matching_enabled_ratio"].clone()),
        (StatusCode::OK, json!(0.0))
    );
    let (_, after) = call(
        base,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={banked_pdq}"),
        None,
        None,
    )
    .await;
    assert_eq!(after, json!({}));
    let (s, b) = call(
        base,
        "PUT",
        "/c/bank/COOP_ORG1_BRIDGES",
        None,
        Some(json!({"enabled_ratio": 1})),
    )
    .await;
    assert_eq!(
        (s, b["matching_enabled_ratio"].clone()),
        (StatusCode::OK, json!(1.0))
    );
    let (s, done) = call(base, "DELETE", "/c/bank/COOP_ORG1_BRIDGES", None, None).await;
    assert_eq!((s, done), (StatusCode::OK, json!({"message": "Done"})));
    let (s, _) = call(base, "GET", "/c/bank/COOP_ORG1_BRIDGES", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Deleting again still answers HMA's 200.
    let (s, done) = call(base, "DELETE", "/c/bank/COOP_ORG1_BRIDGES", None, None).await;
    assert_eq!((s, done), (StatusCode::OK, json!({"message": "Done"})));
    h.http.shutdown().await.expect("http down");
    h.server.shutdown().await.expect("down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hma_banks_name_rule_ratios_and_status_codes() {
    let h = start(None, &[]).await;
    let (a, k) = (h.http.addr, Some(h.curate.as_str()));
    for bad in ["my_bank", "01_BANK", "BANK-1", ""] {
        let (s, e) = call(a, "POST", "/c/banks", k, Some(json!({"name": bad}))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            e["message"],
            json!("Bank names must be UPPER_WITH_UNDERSCORE")
        );
    }
    let (s, e) = call(a, "POST", "/c/banks", k, Some(json!({"enabled": true}))).await;
    assert_eq!(
        (s, e["message"].clone()),
        (StatusCode::BAD_REQUEST, json!("name is required"))
    );
    let (s, b) = call(
        a,
        "POST",
        "/c/banks",
        k,
        Some(json!({"name": "OFF_BANK", "enabled": "false"})),
    )
    .await;
    assert_eq!(
        (s, b["matching_enabled_ratio"].clone()),
        (StatusCode::CREATED, json!(0.0))
    );
    let (s, e) = call(a, "POST", "/c/banks", k, Some(json!({"name": "OFF_BANK"}))).await;
    assert_eq!(
        (s, e["message"].clone()),
        (StatusCode::FORBIDDEN, json!("Bank already exists"))
    );
    // A sampled ratio is refused with a clear message; out of range too.
    for ratio in [json!(0.5), json!("0.25"), json!(2)] {
        let (s, e) = call(
            a,
            "POST",
            "/c/banks",
            k,
            Some(json!({"name": "HALF", "enabled_ratio": ratio})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{ratio}");
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("0") && m.contains("1")),
            "{e}"
        );
    }
    let (s, _) = call(
        a,
        "POST",
        "/c/banks",
        k,
        Some(json!({"name": "HALF", "enabled_ratio": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Missing banks: GET/PUT 404, DELETE 200.
    let (s, e) = call(a, "GET", "/c/bank/NOPE", k, None).await;
    assert_eq!(
        (s, e["message"].clone()),
        (StatusCode::NOT_FOUND, json!("bank 'NOPE' not found"))
    );
    let (s, _) = call(a, "PUT", "/c/bank/NOPE", k, Some(json!({"enabled": true}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(a, "DELETE", "/c/bank/NOPE", k, None).await;
    assert_eq!(s, StatusCode::OK);
    // A rename is refused; to a taken name, HMA's 403.
    let (s, _) = call(a, "POST", "/c/banks", k, Some(json!({"name": "ON_BANK"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        a,
        "PUT",
        "/c/bank/ON_BANK",
        k,
        Some(json!({"name": "OFF_BANK"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = call(
        a,
        "PUT",
        "/c/bank/ON_BANK",
        k,
        Some(json!({"name": "NEW_NAME"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, banks) = call(a, "GET", "/c/banks", k, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        banks,
        json!([
            {"name": "OFF_BANK", "matching_enabled_ratio": 0.0},
            {"name": "ON_BANK", "matching_enabled_ratio": 1.0}
        ])
    );
    // Every answer is JSON: unknown routes, wrong methods, bodies over the limit.
    let (s, e) = call(a, "GET", "/c/nothing-here", k, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(e["message"].is_string());
    let (s, e) = call(a, "PATCH", "/c/banks", k, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(e["message"].is_string());
    let big = vec![0u8; 3 << 20];
    let (s, ct, body) = exchange(
        a,
        "POST",
        "/c/bank/ON_BANK/signal",
        &[("authorization", format!("Bearer {}", h.curate).as_str())],
        Some("application/json"),
        big,
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(ct, "application/json");
    assert!(serde_json::from_slice::<Value>(&body).expect("JSON")["message"].is_string());
    // Metrics carry the route as the method label.
    let metrics = http_text(h.server.metrics_addr.expect("metrics"), "/metrics").await;
    assert!(
        metrics.contains("method=\"POST /c/banks\",code=\"OK\""),
        "{metrics}"
    );
    h.http.shutdown().await.expect("http down");
    h.server.shutdown().await.expect("down");
}

async fn http_text(addr: SocketAddr, path: &str) -> String {
    let (_, _, body) = exchange(addr, "GET", path, &[], None, Vec::new()).await;
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hma_content_signals_matching_and_settings_routes() {
    let h = start(None, &[]).await;
    let (a, c, sk) = (
        h.http.addr,
        Some(h.curate.as_str()),
        Some(h.screen.as_str()),
    );
    call(a, "POST", "/c/banks", c, Some(json!({"name": "HASHES"}))).await;
    let pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    let (s, added) = call(
        a,
        "POST",
        "/c/bank/HASHES/signal",
        c,
        Some(json!({"pdq": pdq})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["signals"], json!({"pdq": pdq}));
    let id = added["id"].as_u64().expect("id");
    for (body, msg) in [
        (json!({}), "No signals given"),
        (json!({"tmk": "ab"}), "No such signal type tmk"),
    ] {
        let (s, e) = call(a, "POST", "/c/bank/HASHES/signal", c, Some(body)).await;
        assert_eq!(
            (s, e["message"].clone()),
            (StatusCode::BAD_REQUEST, json!(msg))
        );
    }
    let (s, e) = call(
        a,
        "POST",
        "/c/bank/HASHES/signal",
        c,
        Some(json!({"pdq": "zz"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid pdq signal"))
    );
    let (s, _) = call(
        a,
        "POST",
        "/c/bank/MISSING/signal",
        c,
        Some(json!({"pdq": pdq})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, e) = call(a, "POST", "/c/bank/HASHES/content", c, None).await;
    assert_eq!(
        (s, e["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("Neither `url` nor multipart file upload was received")
        )
    );

    // One flipped bit: distance "1" (for a key with exact detail: the curator's); raw lookup with
    // and without distances; bank filter.
    let near = format!("f9{}", &pdq[2..]);
    let (s, m) = call(
        a,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={near}"),
        c,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(m["HASHES"][0]["distance"], json!("1"));
    assert_eq!(m["HASHES"][0]["algorithm"], json!("pdq"));
    // A screen key's default detail leaves the distance out (docs/SECURITY.md).
    let (s, m) = call(
        a,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={near}"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(m["HASHES"][0].get("distance").is_none(), "{m}");
    assert_eq!(m["HASHES"][0]["band"], json!("strong"), "{m}");
    let (s, m) = call(
        a,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={near}&banks=OTHER"),
        sk,
        None,
    )
    .await;
    assert_eq!((s, m), (StatusCode::OK, json!({})));
    let (s, m) = call(
        a,
        "GET",
        &format!("/m/raw_lookup?signal_type=pdq&signal={pdq}"),
        sk,
        None,
    )
    .await;
    assert_eq!((s, m), (StatusCode::OK, json!({"matches": [id]})));
    let (s, m) = call(
        a,
        "GET",
        &format!("/m/raw_lookup?signal_type=pdq&signal={pdq}&include_distance=true"),
        c,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(m["matches"][0]["bank_content_id"], json!(id));
    assert_eq!(m["matches"][0]["distance"], json!("0"));
    let (s, m) = call(
        a,
        "GET",
        &format!("/m/raw_lookup?signal_type=pdq&signal={pdq}&include_distance=true"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(m["matches"][0]["bank_content_id"], json!(id));
    assert!(m["matches"][0].get("distance").is_none(), "{m}");
    let (s, _) = call(
        a,
        "GET",
        &format!("/m/raw_lookup?signal_type=pdq&signal={pdq}&include_distance=maybe"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, e) = call(a, "GET", "/m/lookup?signal_type=pdq", sk, None).await;
    assert_eq!(
        (s, e["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("Either url or both signal and signal_type are required")
        )
    );
    let (s, e) = call(
        a,
        "GET",
        "/m/lookup?signal_type=video_md5&signal=00",
        sk,
        None,
    )
    .await;
    assert_eq!(
        (s, e["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("No such SignalType 'video_md5'")
        )
    );
    let (s, _) = call(
        a,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={pdq}&bypass_coinflip=true"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Disabling the content (0) takes it out of lookups; 1 brings it back; too far ahead: 400.
    let path = format!("/c/bank/HASHES/content/{id}");
    let (s, cj) = call(a, "PUT", &path, c, Some(json!({"disable_until_ts": 0}))).await;
    assert_eq!(
        (s, cj["disable_until_ts"].clone()),
        (StatusCode::OK, json!(0))
    );
    let (_, m) = call(
        a,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={pdq}"),
        sk,
        None,
    )
    .await;
    assert_eq!(m, json!({}));
    let (s, cj) = call(a, "PUT", &path, c, Some(json!({"disable_until_ts": "1"}))).await;
    assert_eq!(
        (s, cj["disable_until_ts"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (_, m) = call(
        a,
        "GET",
        &format!("/m/lookup?signal_type=pdq&signal={pdq}"),
        sk,
        None,
    )
    .await;
    assert_eq!(m["HASHES"][0]["bank_content_id"], json!(id));
    for bad in [json!(-5), json!(9_999_999_999i64)] {
        let (s, _) = call(a, "PUT", &path, c, Some(json!({"disable_until_ts": bad}))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    let (s, cj) = call(a, "GET", &format!("{path}?signal_type=md5"), c, None).await;
    assert_eq!((s, cj["signals"].clone()), (StatusCode::OK, json!({})));
    let (s, _) = call(a, "GET", &format!("{path}?signal_type=nope"), c, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, cj) = call(a, "GET", &path, c, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(cj.get("signals").is_none(), "{cj}");
    let (s, e) = call(a, "GET", "/c/bank/HASHES/content/999999", c, None).await;
    assert_eq!(
        (s, e["message"].clone()),
        (StatusCode::NOT_FOUND, json!("content '999999' not found"))
    );
    let (s, d) = call(a, "DELETE", &path, c, None).await;
    assert_eq!((s, d), (StatusCode::OK, json!({"deleted": 1})));
    let (s, d) = call(a, "DELETE", &path, c, None).await;
    assert_eq!((s, d), (StatusCode::OK, json!({"deleted": 0})));

    // Compare, index status, signal and content types, exchanges.
    let (s, cmp) = call(a, "POST", "/m/compare", sk, Some(json!({"pdq": [pdq, near], "md5": ["d41d8cd98f00b204e9800998ecf8427e", "d41d8cd98f00b204e9800998ecf8427e"]}))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        cmp,
        json!({"pdq": [true, {"distance": 1}], "md5": [true, {}]})
    );
    let (s, _) = call(a, "POST", "/m/compare", sk, Some(json!({"pdq": [pdq]}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, st) = call(a, "GET", "/m/index/status", sk, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["pdq"]["present"], json!(true));
    assert!(st["pdq"]["size"].is_u64() && st["pdq"]["built_to"].as_i64().is_some_and(|t| t > 0));
    let (s, _) = call(a, "GET", "/m/index/status?signal_type=tmk", sk, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, types) = call(a, "GET", "/c/signal_type", c, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        types
            .as_array()
            .is_some_and(|t| t.contains(&json!({"name": "pdq", "enabled_ratio": 1.0})))
    );
    let (s, ct) = call(a, "GET", "/c/content_type", c, None).await;
    assert_eq!(
        (s, ct),
        (StatusCode::OK, json!([{"name": "photo", "enabled": true}]))
    );
    for path in ["/c/exchanges", "/c/exchanges/apis"] {
        assert_eq!(
            call(a, "GET", path, c, None).await,
            (StatusCode::OK, json!([]))
        );
    }
    let (s, e) = call(a, "GET", "/c/exchange/NCMEC", c, None).await;
    assert_eq!(
        (s, e["message"].clone()),
        (StatusCode::NOT_FOUND, json!("Exchange 'NCMEC' not found"))
    );
    let (s, _) = call(
        a,
        "POST",
        "/c/exchanges",
        c,
        Some(json!({"bank": "X", "api": "ncmec"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(a, "GET", "/c/exchanges/api/ncmec", c, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Probes and the OpenAPI document need no key.
    assert_eq!(
        call(a, "GET", "/status", None, None).await,
        (StatusCode::OK, json!("I-AM-ALIVE"))
    );
    assert_eq!(
        call(a, "GET", "/status/live", None, None).await,
        (StatusCode::OK, json!("I-AM-ALIVE"))
    );
    let (s, doc) = call(a, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/m/lookup",
        "/c/bank/{name}/content/{id}",
        "/v1/screen",
        "/h/hash",
        "/status",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // Hashing by upload: HMA's pdq plus vigie's own; `types` narrows it.
    let photo = common::read_fixture("bridge.jpg");
    let (s, hashes) = upload(a, "/h/hash", sk, &[], Some(("photo", &photo))).await;
    assert_eq!(s, StatusCode::OK);
    for t in ["pdq", "md5", "phash", "dhash", "sha256"] {
        assert!(hashes[t].is_string(), "{t}: {hashes}");
    }
    let (s, only) = upload(a, "/h/hash?types=pdq", sk, &[], Some(("photo", &photo))).await;
    assert_eq!(
        (s, only.as_object().map(|o| o.len())),
        (StatusCode::OK, Some(1))
    );
    let (s, e) = upload(a, "/h/hash", sk, &[], Some(("video", &photo))).await;
    assert_eq!(
        (s, e["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("no such content_type: 'video'")
        )
    );
    let (s, e) = call(a, "GET", "/h/hash", sk, None).await;
    assert_eq!(
        (s, e["message"].clone()),
        (StatusCode::BAD_REQUEST, json!("url is required"))
    );
    h.http.shutdown().await.expect("http down");
    h.server.shutdown().await.expect("down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_both_headers_and_the_keyless_role() {
    let h = start(None, &[]).await;
    let a = h.http.addr;
    // No key: 401; a screen key may look up but not curate (403); X-API-KEY works as Bearer.
    let (s, e) = call(a, "GET", "/c/banks", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(e["message"].is_string());
    let (s, _) = call(a, "GET", "/c/banks", Some(&h.screen), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, ct, body) = exchange(
        a,
        "GET",
        "/c/banks",
        &[("x-api-key", h.curate.as_str())],
        None,
        Vec::new(),
    )
    .await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON"),
        json!([])
    );
    let (s, _, _) = exchange(
        a,
        "GET",
        "/c/banks",
        &[("x-api-key", "not-a-key")],
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The audit actor is the key's name, as on gRPC.
    let (s, _, _) = exchange(
        a,
        "POST",
        "/c/banks",
        &[("x-api-key", h.curate.as_str())],
        Some("application/json"),
        br#"{"name":"AUDITED"}"#.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let events = h
        .store
        .audit_events(&vigie::store::AuditFilter::default())
        .expect("audit");
    assert!(
        events
            .iter()
            .any(|e| e.bank == "AUDITED" && e.actor == "key:curator")
    );

    // A second edge on the same core with key-less requests let in as `screen`.
    let keyless = vigie::http::start(
        http_config(Some(Role::Screen), &[]),
        h.server.state.clone(),
        h.store.clone(),
    )
    .await
    .expect("start");
    let k = keyless.addr;
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let (s, m) = call(
        k,
        "GET",
        &format!("/m/lookup?signal_type=md5&signal={md5}"),
        None,
        None,
    )
    .await;
    assert_eq!((s, m), (StatusCode::OK, json!({})));
    let (s, _) = call(k, "GET", "/c/banks", None, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A key that is sent is still checked.
    let (s, _) = call(k, "GET", "/c/banks", Some("wrong"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    keyless.shutdown().await.expect("down");
    h.http.shutdown().await.expect("http down");
    h.server.shutdown().await.expect("down");
}

/// A local picture server for the fetch tests: a photo, redirects, a body over the limit, and
/// an answer that never comes.
async fn picture_server(photo: Vec<u8>) -> SocketAddr {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let photo = Arc::new(photo);
    let app = axum::Router::new()
        .route(
            "/photo.jpg",
            get(move || {
                let photo = photo.clone();
                async move { ([("content-type", "image/jpeg")], photo.to_vec()) }
            }),
        )
        .route(
            "/same-host",
            get(|| async { (StatusCode::FOUND, [("location", "/photo.jpg")]) }),
        )
        .route(
            "/off-list",
            get(move || async move {
                (
                    StatusCode::FOUND,
                    [(
                        "location",
                        format!("http://localhost:{}/photo.jpg", addr.port()),
                    )],
                )
            }),
        )
        .route("/big", get(|| async { vec![0u8; 3 << 20] }))
        .route("/never", get(std::future::pending::<String>))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_fetches_and_each_refusal() {
    let photo = common::read_fixture("bridge.jpg");
    let pics = picture_server(photo.clone()).await;
    let port = pics.port();
    let h = start(None, &["127.0.0.1"]).await;
    let (a, c, sk) = (
        h.http.addr,
        Some(h.curate.as_str()),
        Some(h.screen.as_str()),
    );
    call(a, "POST", "/c/banks", c, Some(json!({"name": "FETCHED"}))).await;

    // Allowed: add by URL, then look the same URL up, also through a same-host redirect.
    let (s, added) = call(
        a,
        "POST",
        &format!("/c/bank/FETCHED/content?url=http://127.0.0.1:{port}/photo.jpg&content_id=c1"),
        c,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    let id = added["id"].clone();
    let (s, found) = call(
        a,
        "GET",
        &format!("/m/lookup?url=http://127.0.0.1:{port}/same-host"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["pdq"]["FETCHED"][0]["bank_content_id"], id);
    let (s, hashed) = call(
        a,
        "GET",
        &format!("/h/hash?url=http://127.0.0.1:{port}/photo.jpg"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hashed["pdq"], added["signals"]["pdq"]);

    // Each refusal, with its status.
    let cases = [
        (
            format!("ftp://127.0.0.1:{port}/photo.jpg"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("http://user:pw@127.0.0.1:{port}/photo.jpg"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("http://localhost:{port}/photo.jpg"),
            StatusCode::FORBIDDEN,
        ),
        (
            format!("http://127.0.0.1:{port}/off-list"),
            StatusCode::FORBIDDEN,
        ),
        (
            format!("http://127.0.0.1:{port}/big"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            format!("http://127.0.0.1:{port}/never"),
            StatusCode::GATEWAY_TIMEOUT,
        ),
        (
            format!("http://127.0.0.1:{port}/missing"),
            StatusCode::BAD_GATEWAY,
        ),
    ];
    for (url, want) in &cases {
        let (s, e) = call(a, "GET", &format!("/h/hash?url={url}"), sk, None).await;
        assert_eq!(s, *want, "{url}: {e}");
        assert!(e["message"].is_string());
    }

    // A listed name is no licence for a loopback address: only the address itself is.
    let by_name = vigie::http::start(
        http_config(None, &["localhost"]),
        h.server.state.clone(),
        h.store.clone(),
    )
    .await
    .expect("start");
    let (s, e) = call(
        by_name.addr,
        "GET",
        &format!("/h/hash?url=http://localhost:{port}/photo.jpg"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    by_name.shutdown().await.expect("down");

    // Off by default.
    let off = vigie::http::start(
        http_config(None, &[]),
        h.server.state.clone(),
        h.store.clone(),
    )
    .await
    .expect("start");
    let (s, e) = call(
        off.addr,
        "GET",
        &format!("/h/hash?url=http://127.0.0.1:{port}/photo.jpg"),
        sk,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("--fetch-allow-hosts"))
    );
    off.shutdown().await.expect("down");
    h.http.shutdown().await.expect("http down");
    h.server.shutdown().await.expect("down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigie_v1_calls_as_json() {
    let h = start(None, &[]).await;
    let (a, c, sk) = (
        h.http.addr,
        Some(h.curate.as_str()),
        Some(h.screen.as_str()),
    );
    let (s, b) = call(
        a,
        "POST",
        "/v1/banks",
        c,
        Some(json!({"name": "known-bad", "maxDistance": {"pdq": 20}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["maxDistance"]["pdq"], json!(20));
    assert_eq!(b["kind"], json!("block"));
    let (s, _) = call(
        a,
        "POST",
        "/v1/banks",
        c,
        Some(json!({"name": "known-bad"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // camelCase and snake_case both accepted.
    let md5 = "0123456789abcdef0123456789abcdef";
    // A second picture of entry a (an ad with several photos): `more`, as in gRPC's HashSet.
    let md5_more = "fedcba9876543210fedcba9876543210";
    let (s, added) = call(
        a,
        "POST",
        "/v1/banks/known-bad/entries",
        c,
        Some(json!({"entries": [
            {"externalId": "a", "hashes": {"md5": md5, "more": [format!("md5:{md5_more}")]}, "label": "x"},
            {"external_id": "b", "hashes": {"sha256": "ab".repeat(32)}},
        ]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["updated"], json!([false, false]));
    let first = added["entryIds"][0].as_u64().expect("id");
    let (s, sc) = call(
        a,
        "POST",
        "/v1/screen",
        sk,
        Some(json!({"requestId": "r1", "hashes": {"md5": md5}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sc}");
    assert_eq!(sc["requestId"], json!("r1"));
    assert_eq!(sc["matched"], json!(true));
    assert_eq!(sc["matches"][0]["entryId"], json!(first));
    assert_eq!(sc["matches"][0]["externalId"], json!("a"));
    // The further hash is searchable too, under its entry; a screen takes one hash of each
    // algorithm.
    let (s, sc) = call(
        a,
        "POST",
        "/v1/screen",
        sk,
        Some(json!({"hashes": {"md5": md5_more}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sc}");
    assert_eq!(sc["matches"][0]["externalId"], json!("a"));
    let (s, e) = call(
        a,
        "POST",
        "/v1/screen",
        sk,
        Some(json!({"hashes": {"md5": md5, "more": [format!("md5:{md5_more}")]}})),
    )
    .await;
    assert_eq!(
        (s, e["kind"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_hash"))
    );
    // A multipart image screen.
    let photo = common::read_fixture("bridge.jpg");
    let (s, sc) = upload(
        a,
        "/v1/screen",
        sk,
        &[("requestId", "img")],
        Some(("image", &photo)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sc}");
    assert_eq!(sc["matched"], json!(false));
    assert!(sc["hashes"].as_array().is_some_and(|h| h.len() == 5));
    let (s, e) = call(a, "POST", "/v1/screen", sk, Some(json!({}))).await;
    assert_eq!(
        (s, e["kind"].clone()),
        (StatusCode::BAD_REQUEST, json!("missing_input"))
    );
    let (s, list) = call(a, "GET", "/v1/banks/known-bad/entries?pageSize=1", c, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["nextPageToken"], json!("a"));
    let (s, e) = call(a, "GET", &format!("/v1/entries/{first}"), c, None).await;
    assert_eq!(
        (s, e["hashes"]["md5"].clone(), e["hashes"]["more"].clone()),
        (
            StatusCode::OK,
            json!(md5),
            json!([format!("md5:{md5_more}")])
        )
    );
    let (s, e) = call(a, "GET", "/v1/banks/known-bad/entries/b", c, None).await;
    assert_eq!((s, e["externalId"].clone()), (StatusCode::OK, json!("b")));
    let (s, r) = call(
        a,
        "POST",
        "/v1/banks/known-bad/remove-entries",
        c,
        Some(json!({"entryIds": [first.to_string()]})),
    )
    .await;
    assert_eq!((s, r), (StatusCode::OK, json!({"removed": 1})));
    let (s, b) = call(
        a,
        "PATCH",
        "/v1/banks/known-bad",
        c,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (s, b["enabled"].clone(), b["entryCount"].clone()),
        (StatusCode::OK, json!(false), json!(1))
    );
    let (s, st) = call(a, "GET", "/v1/stats", c, None).await;
    assert_eq!(
        (s, st["banks"].clone(), st["entries"].clone()),
        (StatusCode::OK, json!(1), json!(1))
    );
    let (s, au) = call(a, "GET", "/v1/audit?bank=known-bad", c, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        au["events"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["actor"] == json!("key:curator")) && !e.is_empty())
    );
    let (s, _, exported) = exchange(
        a,
        "GET",
        "/v1/banks/known-bad/export?format=jsonl",
        &[("authorization", format!("Bearer {}", h.curate).as_str())],
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&exported).contains("\"b\""));
    let (s, _, body) = exchange(
        a,
        "POST",
        "/v1/banks/known-bad/import?format=hex&algorithm=md5",
        &[("authorization", format!("Bearer {}", h.curate).as_str())],
        Some("text/plain"),
        format!("{md5}\n").into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON")["added"],
        json!(1)
    );
    let (s, d) = call(a, "DELETE", "/v1/banks/known-bad", c, None).await;
    assert_eq!((s, d), (StatusCode::OK, json!({"entriesRemoved": 2})));
    let (s, _) = call(a, "GET", "/v1/banks/known-bad", c, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, hashed) = upload(
        a,
        "/v1/hash",
        sk,
        &[("dihedral", "true")],
        Some(("image", &photo)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hashed["pdqDihedral"].as_array().map(Vec::len), Some(7));
    h.http.shutdown().await.expect("http down");
    h.server.shutdown().await.expect("down");
}

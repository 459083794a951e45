//! Meta's hasher-matcher-actioner (HMA 2.x, "OpenMediaMatch") routes, with HMA's JSON and
//! status codes: `/h` hashing, `/m` matching, `/c` curation, the probes. Every field and code
//! is recorded, with HMA's source, in `docs/HMA-COMPAT.md`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::upload::{self, Body, Upload};
use super::{Api, json as json_response};
use crate::hashing::{AlgorithmSet, Dihedral, ImageHashes};
use crate::matcher::guard::Band;
use crate::matcher::{MatchInfo, ScreenOptions, ScreenOutcome};
use crate::service::auth::Caller;
use crate::service::error::ServiceError;
use crate::service::screening::{Admission, run_bounded};
use crate::store::api_keys::Role;
use crate::store::{
    Algorithm, Applied, Bank, BankKind, BankUpdate, Change, Entry, EntryHashes, EntryId, HashValue,
    NewBank, NewEntry, Origin, StoreError, Timestamp,
};

/// HMA's photo content type, the only one vigie has.
const PHOTO: &str = "photo";

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/status", get(status))
        .route("/status/live", get(live))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/h/hash", get(hash_get).post(hash_post))
        .route("/m/lookup", get(lookup_get).post(lookup_post))
        .route("/m/raw_lookup", get(raw_lookup))
        .route("/m/compare", post(compare))
        .route("/m/index/status", get(index_status))
        .route("/c/banks", get(banks_list).post(bank_create))
        .route(
            "/c/bank/{name}",
            get(bank_get).put(bank_update).delete(bank_delete),
        )
        .route("/c/bank/{name}/content", post(content_add))
        .route("/c/bank/{name}/signal", post(signal_add))
        .route(
            "/c/bank/{name}/content/{id}",
            get(content_get).put(content_update).delete(content_delete),
        )
        .route("/c/signal_type", get(signal_types))
        .route("/c/signal_type/index", get(signal_type_index))
        .route("/c/content_type", get(content_types))
        .route("/c/exchanges", get(exchanges_list).post(exchange_create))
        .route("/c/exchanges/apis", get(exchange_apis))
        .route(
            "/c/exchanges/api/{api}",
            get(exchange_api).post(exchange_api),
        )
        .route("/c/exchanges/api/{api}/schema", get(exchange_api_schema))
        .route(
            "/c/exchange/{name}",
            get(exchange_missing)
                .put(exchange_missing)
                .delete(exchange_missing),
        )
        .route("/c/exchange/{name}/status", get(exchange_missing))
        .route("/c/exchange/{name}/credentials", post(exchange_missing))
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

type Params = HashMap<String, String>;

fn params(uri: &axum::http::Uri) -> Result<Params, ApiError> {
    Query::<Params>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
}

/// HMA's boolean parameters: `true`/`1` or `false`/`0` (any case).
fn str_to_bool(text: &str) -> Result<bool, ApiError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid boolean parameter - prefer true/false",
        )),
    }
}

/// A JSON value HMA reads as a number: a number or a numeric string.
fn json_float(value: &Value) -> Result<f64, ApiError> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ApiError::bad_request(format!("Invalid float: '{n}'"))),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| ApiError::bad_request(format!("Invalid float: '{s}'"))),
        other => Err(ApiError::bad_request(format!("Invalid float: '{other}'"))),
    }
}

fn json_int(value: &Value) -> Result<i64, ApiError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ApiError::bad_request(format!("Invalid int: '{n}'"))),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("Invalid int: '{s}'"))),
        other => Err(ApiError::bad_request(format!("Invalid int: '{other}'"))),
    }
}

fn json_bool(value: &Value) -> Result<bool, ApiError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => str_to_bool(s),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid boolean parameter - prefer true/false",
        )),
    }
}

/// HMA's `enabled_ratio`, of which vigie keeps only 0 (disabled) and 1 (enabled). Errors: 400
/// outside 0..=1, and a clear refusal for a sampled ratio in between.
fn ratio_to_enabled(ratio: f64) -> Result<bool, ApiError> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(ApiError::bad_request(format!(
            "Invalid enabled ratio {ratio}. Must be in the range 0.0-1.0 inclusive."
        )));
    }
    if ratio == 0.0 {
        Ok(false)
    } else if ratio == 1.0 {
        Ok(true)
    } else {
        Err(ApiError::bad_request(format!(
            "vigie matches a bank always or never: enabled_ratio must be 0 or 1, got {ratio} \
             (a sampled bank is not supported; see docs/HMA-COMPAT.md)"
        )))
    }
}

/// HMA's bank name rule, kept on HMA's routes: `[A-Z_][A-Z0-9_]*`.
fn hma_bank_name_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A signal type name vigie knows (HMA's `pdq`, vigie's others). Errors: `message` with the
/// name.
fn signal_type(name: &str, message: impl Fn(&str) -> String) -> Result<Algorithm, ApiError> {
    Algorithm::from_signal_type(name).ok_or_else(|| ApiError::bad_request(message(name)))
}

/// The `types` parameter (a comma list), as HMA validates it.
fn parse_types(types: Option<&String>) -> Result<Option<Vec<Algorithm>>, ApiError> {
    let Some(list) = types else { return Ok(None) };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        out.push(signal_type(name, |n| {
            format!("signal type '{n}' doesn't exist or is disabled")
        })?);
    }
    if out.is_empty() {
        return Err(ApiError::bad_request("empty signal type selection"));
    }
    Ok(Some(out))
}

fn check_content_type(name: &str) -> Result<(), ApiError> {
    if name == PHOTO {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "no such content_type: '{name}'"
        )))
    }
}

/// A bank as HMA shows it.
#[derive(Serialize)]
struct HmaBank<'a> {
    name: &'a str,
    matching_enabled_ratio: f64,
}

fn hma_bank(b: &Bank) -> HmaBank<'_> {
    HmaBank {
        name: &b.name,
        matching_enabled_ratio: if b.enabled { 1.0 } else { 0.0 },
    }
}

/// One match in HMA's shape, with vigie's fields beside HMA's.
#[derive(Serialize)]
struct HmaMatch {
    bank_content_id: EntryId,
    /// A string, as HMA prints it; left out when the key's detail hides distances
    /// (docs/SECURITY.md), `band` then says how strong the match is.
    #[serde(skip_serializing_if = "Option::is_none")]
    distance: Option<String>,
    confidence: f64,
    /// strong, medium or weak (vigie's; see `matcher::guard::Band`).
    band: &'static str,
    algorithm: &'static str,
    transform: &'static str,
}

fn hma_match(m: &MatchInfo, distance_hidden: bool) -> HmaMatch {
    HmaMatch {
        bank_content_id: m.entry_id,
        distance: (!distance_hidden).then(|| m.distance.to_string()),
        confidence: m.confidence,
        band: Band::of(m.confidence).name(),
        algorithm: if m.keypoints() > 0 {
            "keypoints"
        } else {
            m.algorithm.name()
        },
        transform: match m.transform() {
            Dihedral::Original => "",
            t => t.name(),
        },
    }
}

/// Matches grouped by bank, best first within each; block matches cancelled by an allow bank
/// are left out (HMA has no allow banks).
fn by_bank(outcome: &ScreenOutcome) -> BTreeMap<String, Vec<HmaMatch>> {
    let mut out: BTreeMap<String, Vec<HmaMatch>> = BTreeMap::new();
    for m in outcome.matches.iter().filter(|m| !m.suppressed) {
        out.entry(m.bank.clone())
            .or_default()
            .push(hma_match(m, outcome.distances_hidden));
    }
    out
}

/// Screen options for HMA's `banks` parameter: only the listed banks that exist (an unknown bank
/// matches nothing, as in HMA); `None` when none of them exists.
fn bank_options(api: &Api, banks: Option<&String>) -> Result<Option<ScreenOptions>, ApiError> {
    let Some(list) = banks.filter(|b| !b.trim().is_empty()) else {
        return Ok(Some(ScreenOptions::default()));
    };
    let known = api.state.store().list_banks()?;
    let chosen: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|n| known.iter().any(|b| b.name == *n))
        .map(str::to_string)
        .collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    Ok(Some(ScreenOptions {
        banks: chosen,
        ..ScreenOptions::default()
    }))
}

fn refuse_bypass(p: &Params) -> Result<(), ApiError> {
    if let Some(b) = p.get("bypass_coinflip")
        && str_to_bool(b)?
    {
        return Err(ApiError::bad_request(
            "bypass_coinflip=true is not supported: vigie keeps disabled banks (ratio 0) out of its \
             index; enable the bank instead (see docs/HMA-COMPAT.md)",
        ));
    }
    Ok(())
}

fn require_ready(api: &Api) -> Result<(), ApiError> {
    if api.state.is_ready() {
        Ok(())
    } else {
        Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "index not yet ready",
        ))
    }
}

fn record_matches(api: &Api, outcome: &ScreenOutcome) {
    for m in &outcome.matches {
        api.state.metrics.record_match(&m.bank);
    }
}

/// Screens one client hash (HMA's `signal_type` + `signal`).
async fn screen_signal(
    api: &Api,
    caller: &Caller,
    signal_type_name: &str,
    signal: &str,
    options: ScreenOptions,
) -> Result<ScreenOutcome, ApiError> {
    let algorithm = signal_type(signal_type_name, |n| format!("No such SignalType '{n}'"))?;
    let value = HashValue::parse(algorithm, signal)
        .map_err(|e| ApiError::bad_request(format!("invalid signal: {e}")))?;
    let mut hashes = EntryHashes::default();
    hashes.set(value);
    require_ready(api)?;
    let access = api.state.access(caller);
    api.state.admit(&access)?;
    let state = api.state.clone();
    let outcome = run_bounded(&api.state, None, Admission::Queue, move || {
        Ok(state
            .guard
            .screen_hashes(&state.banks, &access, &hashes, &options)?)
    })
    .await?;
    record_matches(api, &outcome);
    Ok(outcome)
}

/// Screens an uploaded or fetched picture as a gRPC `Screen` does.
async fn screen_picture(
    api: &Api,
    caller: &Caller,
    bytes: Bytes,
    options: ScreenOptions,
) -> Result<ScreenOutcome, ApiError> {
    check_size(api, &bytes)?;
    require_ready(api)?;
    let access = api.state.access(caller);
    api.state.admit(&access)?;
    let state = api.state.clone();
    let result = run_bounded(&api.state, None, Admission::Queue, move || {
        Ok(state
            .guard
            .screen_image(&state.banks, &access, &bytes, &options)?)
    })
    .await;
    if let Err(ServiceError::BadImage(e)) = &result {
        api.state.metrics.record_decode_error(e.kind.as_str());
    }
    let screened = result?;
    record_matches(api, &screened.outcome);
    Ok(screened.outcome)
}

fn check_size(api: &Api, bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the uploaded file is empty"));
    }
    if bytes.len() > api.state.limits.max_image_bytes {
        return Err(ServiceError::TooLarge(format!(
            "image of {} bytes exceeds the limit of {}",
            bytes.len(),
            api.state.limits.max_image_bytes
        ))
        .into());
    }
    Ok(())
}

/// The picture of a request: `?url=` fetched under the fetch policy, else the multipart file
/// (whose field must be HMA's content type name). `None` when neither was sent.
async fn picture(api: &Api, p: &Params, upload: Option<Upload>) -> Result<Option<Bytes>, ApiError> {
    if let Some(ct) = p.get("content_type") {
        check_content_type(ct)?;
    }
    if let Some(url) = p.get("url").filter(|u| !u.is_empty()) {
        let fetched = api
            .fetcher
            .fetch(url)
            .await
            .map_err(|e| ApiError::status(e.http_status(), e.to_string()))?;
        return Ok(Some(fetched.body));
    }
    match upload.and_then(|u| u.file) {
        Some((field, bytes)) => {
            check_content_type(&field)?;
            Ok(Some(bytes))
        }
        None => Ok(None),
    }
}

async fn multipart_of(request: Request) -> Result<Option<Upload>, ApiError> {
    match upload::read_body(request).await? {
        Body::Multipart(u) => Ok(Some(u)),
        Body::Raw(_) => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Probes

async fn status(State(api): State<Api>) -> Response {
    match not_serving(&api) {
        None => json_response(StatusCode::OK, &"I-AM-ALIVE"),
        Some(why) => json_response(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

async fn readyz(State(api): State<Api>) -> Response {
    match not_serving(&api) {
        None => json_response(StatusCode::OK, &"READY"),
        Some(why) => json_response(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

/// Why this process should not take traffic, in HMA's words: `INDEX-NOT-LOADED` before the index
/// is loaded, `INDEX-STALE` while a cluster replica is behind its stream (it still answers
/// screens from what it applied); `None` when it should.
fn not_serving(api: &Api) -> Option<&'static str> {
    if !api.state.is_ready() {
        Some("INDEX-NOT-LOADED")
    } else if !api.state.is_serving() {
        Some("INDEX-STALE")
    } else {
        None
    }
}

async fn live() -> Response {
    json_response(StatusCode::OK, &"I-AM-ALIVE")
}

async fn livez() -> Response {
    json_response(StatusCode::OK, &"OK")
}

// ---------------------------------------------------------------------------------------------
// Hashing

async fn hash_get(State(api): State<Api>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(&headers, Role::Screen)?;
        let p = params(&uri)?;
        if p.get("url").is_none_or(|u| u.is_empty()) {
            return Err(ApiError::bad_request("url is required"));
        }
        let bytes = picture(&api, &p, None).await?.unwrap_or_default();
        hash_answer(&api, bytes, parse_types(p.get("types"))?).await
    }
    .await;
    api.finish("GET /h/hash", started, result)
}

async fn hash_post(State(api): State<Api>, request: Request) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(request.headers(), Role::Screen)?;
        let p = params(request.uri())?;
        let upload = multipart_of(request).await?;
        let Some(bytes) = picture(&api, &HashMap::new(), upload).await? else {
            return Err(ApiError::bad_request(
                "Missing multipart/form-data file upload",
            ));
        };
        hash_answer(&api, bytes, parse_types(p.get("types"))?).await
    }
    .await;
    api.finish("POST /h/hash", started, result)
}

async fn hash_answer(
    api: &Api,
    bytes: Bytes,
    types: Option<Vec<Algorithm>>,
) -> Result<Response, ApiError> {
    check_size(api, &bytes)?;
    let hasher = api.state.banks.setup().plain(AlgorithmSet::all(), false);
    let result = run_bounded(&api.state, None, Admission::Queue, move || {
        Ok(hasher.hash_bytes(&bytes)?)
    })
    .await;
    if let Err(ServiceError::BadImage(e)) = &result {
        api.state.metrics.record_decode_error(e.kind.as_str());
    }
    let h = result?;
    let mut out = Map::new();
    for (algorithm, hex) in image_hex(&h) {
        if types.as_ref().is_none_or(|t| t.contains(&algorithm)) {
            out.insert(algorithm.name().into(), Value::String(hex));
        }
    }
    Ok(json_response(StatusCode::OK, &out))
}

fn image_hex(h: &ImageHashes) -> Vec<(Algorithm, String)> {
    let mut out = Vec::new();
    if let Some(p) = h.pdq {
        out.push((Algorithm::Pdq, p.hash.to_hex()));
    }
    if let Some(x) = h.phash {
        out.push((Algorithm::Phash, x.to_hex()));
    }
    if let Some(x) = h.dhash {
        out.push((Algorithm::Dhash, x.to_hex()));
    }
    if let Some(x) = h.md5 {
        out.push((Algorithm::Md5, x.to_hex()));
    }
    if let Some(x) = h.sha256 {
        out.push((Algorithm::Sha256, x.to_hex()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Matching

async fn lookup_get(State(api): State<Api>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Screen)?;
        let p = params(&uri)?;
        refuse_bypass(&p)?;
        let options = bank_options(&api, p.get("banks"))?;
        if p.get("url").is_some_and(|u| !u.is_empty()) {
            let types = parse_types(p.get("types"))?;
            let bytes = picture(&api, &p, None).await?.unwrap_or_default();
            let found = match options {
                Some(o) => by_bank(&screen_picture(&api, &caller, bytes, o).await?),
                None => BTreeMap::new(),
            };
            return Ok(picture_answer(found, types, p.get("signal_type")));
        }
        let (Some(signal), Some(st)) = (
            p.get("signal").filter(|s| !s.is_empty()),
            p.get("signal_type").filter(|s| !s.is_empty()),
        ) else {
            return Err(ApiError::bad_request(
                "Either url or both signal and signal_type are required",
            ));
        };
        let found = match options {
            Some(o) => by_bank(&screen_signal(&api, &caller, st, signal, o).await?),
            None => {
                // Still a bad hash answers 400, as in HMA.
                let algorithm = signal_type(st, |n| format!("No such SignalType '{n}'"))?;
                HashValue::parse(algorithm, signal)
                    .map_err(|e| ApiError::bad_request(format!("invalid signal: {e}")))?;
                BTreeMap::new()
            }
        };
        Ok(json_response(StatusCode::OK, &found))
    }
    .await;
    api.finish("GET /m/lookup", started, result)
}

/// An image lookup's answer: keyed by signal type, every match under `pdq` (HMA's photo signal
/// type). With `signal_type` set, that type's part alone (HMA elides the outer object).
fn picture_answer(
    found: BTreeMap<String, Vec<HmaMatch>>,
    types: Option<Vec<Algorithm>>,
    signal_type: Option<&String>,
) -> Response {
    let mut out: BTreeMap<&'static str, BTreeMap<String, Vec<HmaMatch>>> = BTreeMap::new();
    let keys = types.unwrap_or_else(|| vec![Algorithm::Pdq]);
    let mut found = Some(found);
    for a in keys {
        let part = if a == Algorithm::Pdq {
            found.take().unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        out.insert(a.name(), part);
    }
    if let Some(st) = signal_type {
        let part = Algorithm::from_signal_type(st)
            .and_then(|a| out.remove(a.name()))
            .unwrap_or_default();
        return json_response(StatusCode::OK, &part);
    }
    json_response(StatusCode::OK, &out)
}

async fn lookup_post(State(api): State<Api>, request: Request) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(request.headers(), Role::Screen)?;
        let p = params(request.uri())?;
        refuse_bypass(&p)?;
        let options = bank_options(&api, p.get("banks"))?;
        let upload = multipart_of(request).await?;
        let Some(bytes) = picture(&api, &HashMap::new(), upload).await? else {
            return Err(ApiError::bad_request(
                "Missing multipart/form-data file upload",
            ));
        };
        let found = match options {
            Some(o) => by_bank(&screen_picture(&api, &caller, bytes, o).await?),
            None => BTreeMap::new(),
        };
        Ok(picture_answer(found, None, None))
    }
    .await;
    api.finish("POST /m/lookup", started, result)
}

async fn raw_lookup(State(api): State<Api>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Screen)?;
        let p = params(&uri)?;
        let signal = p
            .get("signal")
            .ok_or_else(|| ApiError::bad_request("signal is required"))?;
        let st = p
            .get("signal_type")
            .ok_or_else(|| ApiError::bad_request("signal_type is required"))?;
        let with_distance = match p.get("include_distance") {
            Some(v) => str_to_bool(v)?,
            None => false,
        };
        let outcome = match bank_options(&api, p.get("banks"))? {
            Some(o) => screen_signal(&api, &caller, st, signal, o).await?,
            None => ScreenOutcome::default(),
        };
        let matches: Vec<Value> = outcome
            .matches
            .iter()
            .map(|m| {
                if with_distance {
                    json!(hma_match(m, outcome.distances_hidden))
                } else {
                    json!(m.entry_id)
                }
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "matches": matches }),
        ))
    }
    .await;
    api.finish("GET /m/raw_lookup", started, result)
}

fn hash_distance(a: &HashValue, b: &HashValue) -> Option<u32> {
    match (a, b) {
        (HashValue::Pdq(x), HashValue::Pdq(y)) => Some(x.distance(y)),
        (HashValue::Phash(x), HashValue::Phash(y)) | (HashValue::Dhash(x), HashValue::Dhash(y)) => {
            Some(x.distance(y))
        }
        (HashValue::Md5(x), HashValue::Md5(y)) => Some(x.distance(y)),
        (HashValue::Sha256(x), HashValue::Sha256(y)) => Some(x.distance(y)),
        _ => None,
    }
}

async fn compare(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Screen)?;
        let request: Value = upload::parse_json(&body)?;
        let Value::Object(pairs) = request else {
            return Err(ApiError::bad_request("Request input was not a dict"));
        };
        let defaults = crate::store::MaxDistances::default();
        let mut out = Map::new();
        for (name, hashes) in pairs {
            let Value::Array(list) = hashes else {
                return Err(ApiError::bad_request(format!(
                    "Comparison hashes for {name} was not a list"
                )));
            };
            if list.len() != 2 {
                return Err(ApiError::bad_request(
                    "Comparison hash list length must be exactly 2",
                ));
            }
            let algorithm = signal_type(&name, |n| format!("No such SignalType '{n}'"))?;
            let parse = |v: &Value| {
                v.as_str()
                    .ok_or_else(|| "not a string".to_string())
                    .and_then(|s| HashValue::parse(algorithm, s).map_err(|e| e.to_string()))
                    .map_err(|e| ApiError::bad_request(format!("Invalid {name} hash: {e}")))
            };
            let (left, right) = (parse(&list[0])?, parse(&list[1])?);
            let d = hash_distance(&left, &right).unwrap_or(u32::MAX);
            let value = if algorithm.is_perceptual() {
                let matched = d <= defaults.get(algorithm);
                json!([matched, { "distance": d }])
            } else {
                let equal = d == 0;
                json!([equal, {}])
            };
            out.insert(name, value);
        }
        Ok(json_response(StatusCode::OK, &out))
    })();
    api.finish("POST /m/compare", started, result)
}

fn now_seconds() -> i64 {
    Timestamp::now().0 / 1_000_000
}

async fn index_status(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Screen)?;
        let p = params(&uri)?;
        let only = p
            .get("signal_type")
            .map(|st| signal_type(st, |n| format!("No such signal type '{n}'")))
            .transpose()?;
        let counts = api.state.banks.indexes().counts();
        let ready = api.state.is_ready();
        let mut out = Map::new();
        for a in Algorithm::ALL
            .into_iter()
            .filter(|a| only.is_none_or(|o| o == *a))
        {
            let size = counts.get(&a).copied().unwrap_or(0);
            out.insert(
                a.name().into(),
                if ready {
                    json!({ "present": true, "built_to": now_seconds(), "size": size })
                } else {
                    json!({ "present": false, "built_to": -1, "size": 0 })
                },
            );
        }
        Ok(json_response(StatusCode::OK, &out))
    })();
    api.finish("GET /m/index/status", started, result)
}

// ---------------------------------------------------------------------------------------------
// Curation: banks

fn origin(caller: &crate::service::auth::Caller) -> Origin {
    Origin::now(caller.actor())
}

/// Applies a change off the async runtime (RocksDB writes wait for the synced WAL), through the
/// state's writer: the live banks on one node, the change stream on a cluster replica.
async fn apply(api: &Api, change: Change, origin: Origin) -> Result<Applied, ApiError> {
    let state = api.state.clone();
    api.blocking(move || {
        Ok(state
            .writer
            .write(change, &origin)
            .map_err(ServiceError::from)?)
    })
    .await
}

async fn banks_list(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let banks = api.state.store().list_banks()?;
        let out: Vec<HmaBank> = banks.iter().map(hma_bank).collect();
        Ok(json_response(StatusCode::OK, &out))
    })();
    api.finish("GET /c/banks", started, result)
}

fn get_bank(api: &Api, name: &str) -> Result<Bank, ApiError> {
    api.state
        .store()
        .get_bank(name)?
        .ok_or_else(|| ApiError::not_found(format!("bank '{name}' not found")))
}

async fn bank_get(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let bank = get_bank(&api, &name)?;
        Ok(json_response(StatusCode::OK, &hma_bank(&bank)))
    })();
    api.finish("GET /c/bank/{name}", started, result)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match upload::parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request(
            "this endpoint expects a json object payload",
        )),
    }
}

/// `enabled_ratio` (wins) or `enabled` of a create or update body.
fn enabled_of(body: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    if let Some(r) = body.get("enabled_ratio").filter(|v| !v.is_null()) {
        return ratio_to_enabled(json_float(r)?).map(Some);
    }
    body.get("enabled")
        .filter(|v| !v.is_null())
        .map(json_bool)
        .transpose()
}

async fn bank_create(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let body = json_object(&body)?;
        let name = match body.get("name") {
            None | Some(Value::Null) => return Err(ApiError::bad_request("name is required")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ApiError::bad_request("name must be a string")),
        };
        if !hma_bank_name_ok(&name) {
            return Err(ApiError::bad_request(
                "Bank names must be UPPER_WITH_UNDERSCORE",
            ));
        }
        let enabled = enabled_of(&body)?.unwrap_or(true);
        let change = Change::CreateBank {
            bank: NewBank {
                name,
                description: String::new(),
                kind: BankKind::Block,
                enabled: Some(enabled),
                max_distance: None,
            },
        };
        match apply(&api, change, origin(&caller)).await {
            Ok(Applied::Bank(bank)) => Ok(json_response(StatusCode::CREATED, &hma_bank(&bank))),
            Ok(_) => Err(ServiceError::Internal("create answered no bank".into()).into()),
            Err(ApiError::Service(ServiceError::Store(StoreError::BankExists(_)))) => Err(
                ApiError::status(StatusCode::FORBIDDEN, "Bank already exists"),
            ),
            Err(e) => Err(e),
        }
    }
    .await;
    api.finish("POST /c/banks", started, result)
}

async fn bank_update(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let bank = api
            .state
            .store()
            .get_bank(&name)?
            .ok_or_else(|| ApiError::not_found("Bank not found"))?;
        let body = json_object(&body)?;
        if let Some(new_name) = body.get("name").filter(|v| !v.is_null()) {
            let new_name = new_name
                .as_str()
                .ok_or_else(|| ApiError::bad_request("name must be a string"))?;
            if new_name != bank.name {
                if !hma_bank_name_ok(new_name) {
                    return Err(ApiError::bad_request(
                        "Bank names must be UPPER_WITH_UNDERSCORE",
                    ));
                }
                if api.state.store().get_bank(new_name)?.is_some() {
                    return Err(ApiError::status(
                        StatusCode::FORBIDDEN,
                        "Bank name already exists",
                    ));
                }
                return Err(ApiError::bad_request(
                    "vigie cannot rename a bank (a bank's name keys its audit log); create a new \
                     bank and add the content again",
                ));
            }
        }
        let bank = match enabled_of(&body)? {
            Some(enabled) if enabled != bank.enabled => {
                let change = Change::UpdateBank {
                    name: bank.name.clone(),
                    update: BankUpdate {
                        enabled: Some(enabled),
                        ..BankUpdate::default()
                    },
                };
                match apply(&api, change, origin(&caller)).await? {
                    Applied::Bank(b) => b,
                    _ => {
                        return Err(ServiceError::Internal("update answered no bank".into()).into());
                    }
                }
            }
            _ => bank,
        };
        Ok(json_response(StatusCode::OK, &hma_bank(&bank)))
    }
    .await;
    api.finish("PUT /c/bank/{name}", started, result)
}

async fn bank_delete(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        match apply(&api, Change::DeleteBank { name }, origin(&caller)).await {
            Ok(_) | Err(ApiError::Service(ServiceError::Store(StoreError::BankNotFound(_)))) => {
                Ok(json_response(StatusCode::OK, &json!({ "message": "Done" })))
            }
            Err(e) => Err(e),
        }
    }
    .await;
    api.finish("DELETE /c/bank/{name}", started, result)
}

// ---------------------------------------------------------------------------------------------
// Curation: content

const METADATA_KEYS: [&str; 4] = ["content_id", "content_uri", "json", "collab"];

/// HMA's `metadata` object, checked as HMA checks it (no other key).
fn strict_metadata(value: &Value) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(m) = value else {
        return Err(ApiError::bad_request("metadata should be a json object"));
    };
    let unexpected: Vec<&str> = m
        .keys()
        .map(String::as_str)
        .filter(|k| !METADATA_KEYS.contains(k))
        .collect();
    if !unexpected.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid metadata: unexpected keys {}",
            unexpected.join(", ")
        )));
    }
    Ok(m.clone())
}

/// Metadata and note of a content add, from a JSON body, form fields or query parameters.
fn content_metadata(
    p: &Params,
    upload: Option<&Upload>,
    raw_json: Option<&Map<String, Value>>,
) -> Result<(Option<Map<String, Value>>, String), ApiError> {
    let mut metadata: Option<Map<String, Value>> = None;
    let mut note = String::new();
    if let Some(body) = raw_json {
        if let Some(m) = body.get("metadata").filter(|v| !v.is_null()) {
            metadata = Some(strict_metadata(m)?);
        }
        if let Some(n) = body.get("note").and_then(Value::as_str) {
            note = n.to_string();
        }
    }
    let texts = upload.map(|u| &u.texts);
    let field = |name: &str| -> Option<String> {
        texts
            .and_then(|t| t.get(name))
            .or_else(|| p.get(name))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    if let Some(text) = field("metadata") {
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| ApiError::bad_request("metadata should be a json object"))?;
        let Value::Object(m) = &value else {
            return Err(ApiError::bad_request("metadata should be a json object"));
        };
        // HMA's whole metadata object, or (as Coop sends it) its free `json` part alone.
        let parsed = if m.keys().all(|k| METADATA_KEYS.contains(&k.as_str())) {
            m.clone()
        } else {
            let mut wrapped = Map::new();
            wrapped.insert("json".into(), value.clone());
            wrapped
        };
        metadata.get_or_insert_with(Map::new).extend(parsed);
    }
    for key in ["content_id", "content_uri"] {
        if let Some(v) = field(key) {
            metadata
                .get_or_insert_with(Map::new)
                .insert(key.into(), Value::String(v));
        }
    }
    if let Some(n) = field("note") {
        note = n;
    }
    Ok((metadata, note))
}

fn new_external_id() -> String {
    use rand::{RngCore, SeedableRng};
    let mut bytes = [0u8; 16];
    rand::rngs::StdRng::from_os_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("hma-{hex}")
}

fn signals_of(hashes: &EntryHashes) -> Map<String, Value> {
    hashes
        .iter()
        .map(|h| (h.algorithm().name().to_string(), Value::String(h.to_hex())))
        .collect()
}

/// Adds one entry to `bank` and answers HMA's `{"id", "signals"}`.
async fn add_entry(
    api: &Api,
    caller: &crate::service::auth::Caller,
    bank: &str,
    hashes: EntryHashes,
    metadata: Option<Map<String, Value>>,
    note: String,
    warnings: Vec<String>,
) -> Result<Response, ApiError> {
    let signals = signals_of(&hashes);
    let entry = NewEntry {
        external_id: new_external_id(),
        hashes,
        source: metadata
            .map(|m| Value::Object(m).to_string())
            .unwrap_or_default(),
        note,
        ..NewEntry::default()
    };
    let change = Change::UpsertEntries {
        bank: bank.to_string(),
        entries: vec![entry],
    };
    let id = match apply(api, change, origin(caller)).await? {
        Applied::Upserted(u) => u
            .first()
            .map(|u| u.id)
            .ok_or_else(|| ServiceError::Internal("upsert answered no entry".into()))?,
        _ => return Err(ServiceError::Internal("upsert answered no entry".into()).into()),
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("signals".into(), Value::Object(signals));
    if !warnings.is_empty() {
        out.insert("warnings".into(), json!(warnings));
    }
    Ok(json_response(StatusCode::OK, &out))
}

async fn content_add(
    State(api): State<Api>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(request.headers(), Role::Curate)?;
        get_bank(&api, &name)?;
        let p = params(request.uri())?;
        let (upload, raw) = match upload::read_body(request).await? {
            Body::Multipart(u) => (Some(u), None),
            Body::Raw(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
                (None, Some(json_object(&bytes)?))
            }
            Body::Raw(_) => (None, None),
        };
        let (metadata, note) = content_metadata(&p, upload.as_ref(), raw.as_ref())?;
        let Some(bytes) = picture(&api, &p, upload).await? else {
            return Err(ApiError::bad_request(
                "Neither `url` nor multipart file upload was received",
            ));
        };
        check_size(&api, &bytes)?;
        let state = api.state.clone();
        // A curator's add waits its turn rather than failing under screening load.
        let banked = run_bounded(&api.state, None, Admission::Patient, move || {
            Ok(state.banks.hash_for_bank(&bytes)?)
        })
        .await?;
        add_entry(
            &api,
            &caller,
            &name,
            banked.hashes,
            metadata,
            note,
            banked.warnings,
        )
        .await
    }
    .await;
    api.finish("POST /c/bank/{name}/content", started, result)
}

async fn signal_add(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        get_bank(&api, &name)?;
        let signals = json_object(&body)?;
        if signals.is_empty() {
            return Err(ApiError::bad_request("No signals given"));
        }
        let mut hashes = EntryHashes::default();
        for (st, value) in &signals {
            let algorithm = signal_type(st, |n| format!("No such signal type {n}"))?;
            let text = value.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("Invalid {st} signal: not a string"))
            })?;
            let parsed = HashValue::parse(algorithm, text)
                .map_err(|e| ApiError::bad_request(format!("Invalid {st} signal: {e}")))?;
            hashes.set(parsed);
        }
        add_entry(
            &api,
            &caller,
            &name,
            hashes,
            None,
            String::new(),
            Vec::new(),
        )
        .await
    }
    .await;
    api.finish("POST /c/bank/{name}/signal", started, result)
}

/// The content `id` of `bank`; 404s as HMA words them.
fn get_content(api: &Api, bank: &str, id: &str) -> Result<(Bank, Entry), ApiError> {
    let bank = get_bank(api, bank)?;
    let missing = || ApiError::not_found(format!("content '{id}' not found"));
    let id: EntryId = id.parse().map_err(|_| missing())?;
    let entry = api
        .state
        .store()
        .get_entry(id)?
        .filter(|e| e.bank == bank.name)
        .ok_or_else(missing)?;
    Ok((bank, entry))
}

/// HMA's `disable_until_ts`: 1 enabled, 0 disabled indefinitely, else the Unix time.
fn disable_until_ts(e: &Entry) -> i64 {
    match e.disabled_until {
        None => 1,
        Some(t) if t >= Timestamp::MAX => 0,
        Some(t) => (t.0 / 1_000_000).max(2),
    }
}

fn content_json(
    bank: &Bank,
    e: &Entry,
    signals: Option<Map<String, Value>>,
    include_metadata: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(e.id));
    out.insert("disable_until_ts".into(), json!(disable_until_ts(e)));
    out.insert("collab_metadata".into(), json!({}));
    out.insert("original_media_uri".into(), Value::Null);
    out.insert("bank".into(), json!(hma_bank(bank)));
    if let Some(s) = signals {
        out.insert("signals".into(), Value::Object(s));
    }
    if include_metadata {
        let metadata = serde_json::from_str::<Value>(&e.source)
            .ok()
            .filter(Value::is_object)
            .unwrap_or(Value::Null);
        out.insert("metadata".into(), metadata);
    }
    out.insert(
        "note".into(),
        if e.note.is_empty() {
            Value::Null
        } else {
            Value::String(e.note.clone())
        },
    );
    out
}

async fn content_get(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let p = params(&uri)?;
        let (bank, entry) = get_content(&api, &name, &id)?;
        let only = p
            .get("signal_type")
            .map(|st| signal_type(st, |n| format!("No such signal type '{n}'")))
            .transpose()?;
        let include_signals = p
            .get("include_signals")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let signals = if let Some(a) = only {
            let mut m = Map::new();
            if let Some(h) = entry.hashes.get(a) {
                m.insert(a.name().into(), Value::String(h.to_hex()));
            }
            Some(m)
        } else if include_signals {
            Some(signals_of(&entry.hashes))
        } else {
            None
        };
        let include_metadata = p
            .get("include_metadata")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(json_response(
            StatusCode::OK,
            &content_json(&bank, &entry, signals, include_metadata),
        ))
    })();
    api.finish("GET /c/bank/{name}/content/{id}", started, result)
}

/// Five years, HMA's limit on `disable_until_ts`.
const FIVE_YEARS_SECONDS: i64 = 5 * 365 * 24 * 3600;

async fn content_update(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let (bank, entry) = get_content(&api, &name, &id)?;
        let body = json_object(&body)?;
        let Some(value) = body.get("disable_until_ts").filter(|v| !v.is_null()) else {
            return Ok(json_response(
                StatusCode::OK,
                &content_json(&bank, &entry, None, false),
            ));
        };
        let ts = json_int(value)?;
        if ts < 0 {
            return Err(ApiError::bad_request(
                "disable_until_ts must be a non-negative integer",
            ));
        }
        if ts > now_seconds() + FIVE_YEARS_SECONDS {
            return Err(ApiError::bad_request(
                "disable_until_ts must be less than 5 years in the future",
            ));
        }
        let until = match ts {
            0 => Some(Timestamp::MAX),
            1 => None,
            t => Some(Timestamp::from_unix_seconds(t)),
        };
        let change = Change::SetEntriesDisabled {
            bank: bank.name.clone(),
            ids: vec![entry.id],
            until,
        };
        let entry = match apply(&api, change, origin(&caller)).await? {
            Applied::Disabled(list) => list.into_iter().next().unwrap_or(entry),
            _ => entry,
        };
        let mut updated = entry;
        updated.disabled_until = until;
        Ok(json_response(
            StatusCode::OK,
            &content_json(&bank, &updated, None, false),
        ))
    }
    .await;
    api.finish("PUT /c/bank/{name}/content/{id}", started, result)
}

async fn content_delete(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let bank = get_bank(&api, &name)?;
        let Ok(id) = id.parse::<EntryId>() else {
            return Ok(json_response(StatusCode::OK, &json!({ "deleted": 0 })));
        };
        let change = Change::RemoveEntries {
            bank: bank.name,
            ids: vec![id],
            external_ids: Vec::new(),
        };
        let deleted = match apply(&api, change, origin(&caller)).await {
            Ok(Applied::Removed(list)) => list.len(),
            Ok(_) => 0,
            Err(ApiError::Service(ServiceError::Store(StoreError::EntryNotFound(_)))) => 0,
            Err(e) => return Err(e),
        };
        Ok(json_response(
            StatusCode::OK,
            &json!({ "deleted": deleted }),
        ))
    }
    .await;
    api.finish("DELETE /c/bank/{name}/content/{id}", started, result)
}

// ---------------------------------------------------------------------------------------------
// Curation: signal and content types, exchanges

async fn signal_types(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let out: Vec<Value> = Algorithm::ALL
            .iter()
            .map(|a| json!({ "name": a.name(), "enabled_ratio": 1.0 }))
            .collect();
        Ok(json_response(StatusCode::OK, &out))
    })();
    api.finish("GET /c/signal_type", started, result)
}

async fn signal_type_index(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let p = params(&uri)?;
        let only = p
            .get("signal_type")
            .map(|st| signal_type(st, |n| format!("No such signal type '{n}'")))
            .transpose()?;
        let counts = api.state.banks.indexes().counts();
        let now = now_seconds();
        let mut out = Map::new();
        for a in Algorithm::ALL
            .into_iter()
            .filter(|a| only.is_none_or(|o| o == *a))
        {
            let size = counts.get(&a).copied().unwrap_or(0);
            out.insert(
                a.name().into(),
                json!({
                    "db_size": size,
                    "index_size": size,
                    "index_out_of_date": false,
                    "newest_db_item": now,
                    "index_built_to": now,
                }),
            );
        }
        Ok(json_response(StatusCode::OK, &out))
    })();
    api.finish("GET /c/signal_type/index", started, result)
}

async fn content_types(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        Ok(json_response(
            StatusCode::OK,
            &json!([{ "name": PHOTO, "enabled": true }]),
        ))
    })();
    api.finish("GET /c/content_type", started, result)
}

async fn exchanges_list(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        Ok(json_response(StatusCode::OK, &json!([])))
    })();
    api.finish("GET /c/exchanges", started, result)
}

async fn exchange_apis(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        Ok(json_response(StatusCode::OK, &json!([])))
    })();
    api.finish("GET /c/exchanges/apis", started, result)
}

async fn exchange_create(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let body = json_object(&body)?;
        if body.get("bank").is_none_or(Value::is_null) {
            return Err(ApiError::bad_request("bank is required"));
        }
        let kind = body.get("api").and_then(Value::as_str).unwrap_or_default();
        Err(ApiError::bad_request(format!(
            "No such exchange type '{kind}': vigie fetches from no exchange"
        )))
    })();
    api.finish("POST /c/exchanges", started, result)
}

async fn exchange_api(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        Err(ApiError::bad_request(format!(
            "no such Exchange API '{name}'"
        )))
    })();
    api.finish("/c/exchanges/api/{api}", started, result)
}

async fn exchange_api_schema(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        Err(ApiError::not_found(format!(
            "no such Exchange API '{name}'"
        )))
    })();
    api.finish("GET /c/exchanges/api/{api}/schema", started, result)
}

async fn exchange_missing(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        Err(ApiError::not_found(format!("Exchange '{name}' not found")))
    })();
    api.finish("/c/exchange/{name}", started, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hma_name_rule() {
        for ok in ["A", "_A", "MY_BANK_01", "COOP_ORG1_BANK"] {
            assert!(hma_bank_name_ok(ok), "{ok}");
        }
        for bad in ["", "01_BANK", "my_bank", "BANK-1", "BANK 1", "ÄBANK"] {
            assert!(!hma_bank_name_ok(bad), "{bad}");
        }
    }

    #[test]
    fn ratios_and_booleans() {
        assert!(ratio_to_enabled(1.0).unwrap());
        assert!(!ratio_to_enabled(0.0).unwrap());
        assert!(ratio_to_enabled(0.5).is_err());
        assert!(ratio_to_enabled(1.5).is_err());
        assert_eq!(json_float(&json!("1")).unwrap(), 1.0);
        assert_eq!(json_float(&json!(0)).unwrap(), 0.0);
        assert!(json_float(&json!("one")).is_err());
        assert!(json_bool(&json!("true")).unwrap());
        assert!(!json_bool(&json!("0")).unwrap());
        assert!(json_bool(&json!("yes")).is_err());
    }
}

//! vigie's own calls as JSON (`/v1`): the gRPC `Screening` and `Banks` calls with the protobuf
//! messages' fields under the proto3 JSON mapping (lowerCamelCase names; snake_case accepted;
//! `bytes` as base64; 64-bit integers printed as numbers and accepted as numbers or strings).
//! Routes and shapes: `docs/HTTP.md` and `/openapi.json`.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::ApiError;
use super::upload::{self, Body};
use super::{Api, json};
use crate::hashing::{AlgorithmSet, Dihedral, ImageHashes};
use crate::matcher::{MatchInfo, ScreenOptions};
use crate::service::error::ServiceError;
use crate::service::screening::{Admission, run_bounded};
use crate::store::api_keys::Role;
use crate::store::formats::{self, ExportOptions, Format, ImportOptions};
use crate::store::{
    Algorithm, Applied, AuditFilter, Bank, BankKind, BankUpdate, Change, Entry, EntryHashes,
    EntryId, MaxDistances, NewBank, NewEntry, Origin, Timestamp,
};

/// Entries in one add call (as gRPC `AddEntries`).
const MAX_ENTRIES_PER_CALL: usize = 10_000;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/screen", post(screen))
        .route("/v1/hash", post(hash))
        .route("/v1/banks", get(list_banks).post(create_bank))
        .route(
            "/v1/banks/{bank}",
            get(get_bank).patch(update_bank).delete(delete_bank),
        )
        .route(
            "/v1/banks/{bank}/entries",
            get(list_entries).post(add_entries),
        )
        .route(
            "/v1/banks/{bank}/entries/{external_id}",
            get(get_entry_external),
        )
        .route("/v1/banks/{bank}/remove-entries", post(remove_entries))
        .route("/v1/banks/{bank}/import", post(import_entries))
        .route("/v1/banks/{bank}/export", get(export_entries))
        .route("/v1/entries/{id}", get(get_entry))
        .route("/v1/stats", get(stats))
        .route("/v1/audit", get(audit))
}

// ---------------------------------------------------------------------------------------------
// Messages (proto3 JSON names)

/// `vigie.v1.HashSet`: hex text per algorithm, any subset; `more` holds an entry's further hashes
/// as `<algorithm>:<hex>` (an ad with several photos), as the gRPC message does.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HashSet {
    pdq: String,
    phash: String,
    dhash: String,
    md5: String,
    sha256: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    more: Vec<String>,
}

impl HashSet {
    /// The hashes, read by the gRPC edge's rules (one place for both): a bad one names its field.
    fn parse(&self, field: &str) -> Result<EntryHashes, ApiError> {
        let set = crate::service::proto::HashSet {
            pdq: self.pdq.clone(),
            phash: self.phash.clone(),
            dhash: self.dhash.clone(),
            md5: self.md5.clone(),
            sha256: self.sha256.clone(),
            more: self.more.clone(),
        };
        Ok(crate::service::convert::parse_hash_set(&set, field)?)
    }

    fn of(h: &EntryHashes) -> HashSet {
        let set = crate::service::convert::to_hash_set(h);
        HashSet {
            pdq: set.pdq,
            phash: set.phash,
            dhash: set.dhash,
            md5: set.md5,
            sha256: set.sha256,
            more: set.more,
        }
    }
}

fn de_u64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    let raw = Vec::<N>::deserialize(d)?;
    raw.into_iter()
        .map(|n| match n {
            N::Num(v) => Ok(v),
            N::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
        })
        .collect()
}

/// proto3 JSON `bytes`: base64, standard or URL-safe alphabet, padded or not.
fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| {
        let t = t.trim();
        let alphabet = if t.contains(['-', '_']) {
            &base64::alphabet::URL_SAFE
        } else {
            &base64::alphabet::STANDARD
        };
        GeneralPurpose::new(alphabet, LENIENT)
            .decode(t)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    })
    .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ScreenRequest {
    #[serde(alias = "request_id")]
    request_id: String,
    #[serde(deserialize_with = "de_bytes")]
    image: Option<Vec<u8>>,
    hashes: Option<HashSet>,
    banks: Vec<String>,
    #[serde(alias = "max_distance")]
    max_distance: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputedHash {
    algorithm: &'static str,
    hex: String,
    quality: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    bank: String,
    entry_id: EntryId,
    external_id: String,
    label: String,
    algorithm: &'static str,
    /// Left out when the key's detail hides distances (`detail` is then not `exact`).
    #[serde(skip_serializing_if = "Option::is_none")]
    distance: Option<u32>,
    confidence: f64,
    /// strong, medium or weak.
    band: &'static str,
    transform: &'static str,
    bank_kind: String,
    suppressed: bool,
    keypoints: u32,
    /// For an animation matched by one of its frames rather than its default image: the frame's
    /// place, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    frame: Option<u32>,
}

fn to_match(m: &MatchInfo, distance_hidden: bool) -> Match {
    Match {
        bank: m.bank.clone(),
        entry_id: m.entry_id,
        external_id: m.external_id.clone(),
        label: m.label.clone(),
        algorithm: if m.keypoints() > 0 {
            "keypoints"
        } else {
            m.algorithm.name()
        },
        distance: (!distance_hidden).then_some(m.distance),
        confidence: m.confidence,
        band: crate::matcher::guard::Band::of(m.confidence).name(),
        transform: match m.transform() {
            Dihedral::Original => "",
            t => t.name(),
        },
        bank_kind: m.bank_kind.to_string(),
        suppressed: m.suppressed,
        keypoints: m.keypoints(),
        frame: m.frame(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScreenResponse {
    request_id: String,
    hashes: Vec<ComputedHash>,
    matches: Vec<Match>,
    matched: bool,
    notes: Vec<String>,
    /// How much the matches reveal (exact, band or confidence), by the key's policy.
    detail: &'static str,
}

fn computed(h: &ImageHashes) -> Vec<ComputedHash> {
    let mut out = Vec::new();
    if let Some(p) = h.pdq {
        out.push(ComputedHash {
            algorithm: "pdq",
            hex: p.hash.to_hex(),
            quality: i32::from(p.quality),
        });
    }
    // pHash and dHash carry the quality of the picture they read; exact hashes have none (-1).
    let quality64 = h.quality64.map_or(-1, i32::from);
    for (algorithm, hex, quality) in [
        ("phash", h.phash.map(|x| x.to_hex()), quality64),
        ("dhash", h.dhash.map(|x| x.to_hex()), quality64),
        ("md5", h.md5.map(|x| x.to_hex()), -1),
        ("sha256", h.sha256.map(|x| x.to_hex()), -1),
    ] {
        if let Some(hex) = hex {
            out.push(ComputedHash {
                algorithm,
                hex,
                quality,
            });
        }
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BankJson {
    name: String,
    description: String,
    enabled: bool,
    kind: String,
    max_distance: MaxDistances,
    created_at: String,
    updated_at: String,
    entry_count: u64,
}

fn bank_json(b: &Bank, entry_count: u64) -> BankJson {
    BankJson {
        name: b.name.clone(),
        description: b.description.clone(),
        enabled: b.enabled,
        kind: b.kind.to_string(),
        max_distance: b.max_distance,
        created_at: b.created_at.to_string(),
        updated_at: b.updated_at.to_string(),
        entry_count,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    id: EntryId,
    bank: String,
    external_id: String,
    hashes: HashSet,
    label: String,
    source: String,
    note: String,
    added_by: String,
    added_at: String,
    disabled_until: String,
}

fn entry_json(e: &Entry) -> EntryJson {
    EntryJson {
        id: e.id,
        bank: e.bank.clone(),
        external_id: e.external_id.clone(),
        hashes: HashSet::of(&e.hashes),
        label: e.label.clone(),
        source: e.source.clone(),
        note: e.note.clone(),
        added_by: e.added_by.clone(),
        added_at: e.added_at.to_string(),
        disabled_until: e.disabled_until.map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// `vigie.v1.MaxDistances` as sent: absent fields keep the default.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MaxDistancesIn {
    pdq: Option<u32>,
    phash: Option<u32>,
    dhash: Option<u32>,
    md5: Option<u32>,
    sha256: Option<u32>,
}

impl MaxDistancesIn {
    fn over(&self, base: MaxDistances) -> MaxDistances {
        MaxDistances {
            pdq: self.pdq.unwrap_or(base.pdq),
            phash: self.phash.unwrap_or(base.phash),
            dhash: self.dhash.unwrap_or(base.dhash),
            md5: self.md5.unwrap_or(base.md5),
            sha256: self.sha256.unwrap_or(base.sha256),
        }
    }
}

fn parse_kind(text: &str) -> Result<BankKind, ApiError> {
    if text.is_empty() {
        return Ok(BankKind::Block);
    }
    text.parse()
        .map_err(|_| ServiceError::invalid("kind", "invalid_kind", "must be block or allow").into())
}

// ---------------------------------------------------------------------------------------------
// Screening

fn screen_options(
    banks: Vec<String>,
    max_distance: Option<u32>,
) -> Result<ScreenOptions, ApiError> {
    for name in &banks {
        crate::store::validate_bank_name(name)
            .map_err(|e| ServiceError::invalid("banks", "invalid_bank", e.to_string()))?;
    }
    Ok(ScreenOptions {
        banks,
        max_distance,
        ..ScreenOptions::default()
    })
}

/// A multipart screen or hash request: the file and its text fields as a [`ScreenRequest`].
fn from_form(u: upload::Upload) -> Result<ScreenRequest, ApiError> {
    let t = &u.texts;
    let text = |k: &str, alias: &str| t.get(k).or_else(|| t.get(alias)).cloned();
    Ok(ScreenRequest {
        request_id: text("requestId", "request_id").unwrap_or_default(),
        image: u.file.map(|(_, b)| b.to_vec()),
        hashes: None,
        banks: text("banks", "banks")
            .map(|b| {
                b.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        max_distance: text("maxDistance", "max_distance")
            .map(|m| {
                m.trim().parse().map_err(|_| {
                    ApiError::from(ServiceError::invalid(
                        "maxDistance",
                        "invalid_argument",
                        "not a number",
                    ))
                })
            })
            .transpose()?,
    })
}

async fn screen(State(api): State<Api>, request: Request) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(request.headers(), Role::Screen)?;
        let r: ScreenRequest = match upload::read_body(request).await? {
            Body::Multipart(u) => from_form(u)?,
            Body::Raw(b) => upload::parse_json(&b)?,
        };
        if !api.state.is_ready() {
            return Err(ServiceError::Unavailable.into());
        }
        let options = screen_options(r.banks, r.max_distance)?;
        let access = api.state.access(&caller);
        let detail = access.detail.name();
        api.state.admit(&access)?;
        let state = api.state.clone();
        let (hashes, outcome) = match (r.image, r.hashes) {
            (Some(bytes), None) => {
                if bytes.len() > api.state.limits.max_image_bytes {
                    return Err(ServiceError::TooLarge(format!(
                        "image of {} bytes exceeds the limit of {}",
                        bytes.len(),
                        api.state.limits.max_image_bytes
                    ))
                    .into());
                }
                let result = run_bounded(&api.state, None, Admission::Queue, move || {
                    Ok(state
                        .guard
                        .screen_image(&state.banks, &access, &bytes, &options)?)
                })
                .await;
                if let Err(ServiceError::BadImage(e)) = &result {
                    api.state.metrics.record_decode_error(e.kind.as_str());
                }
                let s = result?;
                (computed(&s.hashes), s.outcome)
            }
            (None, Some(set)) => {
                let parsed = set.parse("hashes")?;
                if !parsed.more.is_empty() {
                    return Err(ServiceError::invalid(
                        "hashes.more",
                        "invalid_hash",
                        "a screen takes one hash of each algorithm: send the others in their own requests",
                    )
                    .into());
                }
                if parsed.is_empty() {
                    return Err(
                        ServiceError::invalid("hashes", "missing_input", "no hash given").into(),
                    );
                }
                let echoed = parsed
                    .iter()
                    .map(|v| ComputedHash {
                        algorithm: v.algorithm().name(),
                        hex: v.to_hex(),
                        quality: -1,
                    })
                    .collect();
                let outcome = run_bounded(&api.state, None, Admission::Queue, move || {
                    Ok(state
                        .guard
                        .screen_hashes(&state.banks, &access, &parsed, &options)?)
                })
                .await?;
                (echoed, outcome)
            }
            _ => {
                return Err(ServiceError::invalid(
                    "input",
                    "missing_input",
                    "set either image or hashes",
                )
                .into());
            }
        };
        for m in &outcome.matches {
            api.state.metrics.record_match(&m.bank);
        }
        Ok(json(
            StatusCode::OK,
            &ScreenResponse {
                request_id: r.request_id,
                hashes,
                matched: outcome.matched,
                matches: outcome
                    .matches
                    .iter()
                    .map(|m| to_match(m, outcome.distances_hidden))
                    .collect(),
                notes: outcome.notes,
                detail,
            },
        ))
    }
    .await;
    api.finish("POST /v1/screen", started, result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HashRequest {
    #[serde(deserialize_with = "de_bytes")]
    image: Option<Vec<u8>>,
    algorithms: Vec<String>,
    dihedral: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransformedHash {
    transform: &'static str,
    hex: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HashResponse {
    hashes: Vec<ComputedHash>,
    width: u32,
    height: u32,
    pdq_dihedral: Vec<TransformedHash>,
    pdq_meta: Option<ComputedHash>,
}

async fn hash(State(api): State<Api>, request: Request) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(request.headers(), Role::Screen)?;
        let r: HashRequest = match upload::read_body(request).await? {
            Body::Multipart(u) => HashRequest {
                algorithms: u
                    .texts
                    .get("algorithms")
                    .map(|a| a.split(',').map(|s| s.trim().to_string()).collect())
                    .unwrap_or_default(),
                dihedral: u
                    .texts
                    .get("dihedral")
                    .is_some_and(|d| d == "true" || d == "1"),
                image: u.file.map(|(_, b)| b.to_vec()),
            },
            Body::Raw(b) => upload::parse_json(&b)?,
        };
        let image = r
            .image
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ServiceError::invalid("image", "empty", "no image bytes"))?;
        if image.len() > api.state.limits.max_image_bytes {
            return Err(ServiceError::TooLarge(format!(
                "image of {} bytes exceeds the limit of {}",
                image.len(),
                api.state.limits.max_image_bytes
            ))
            .into());
        }
        let algorithms = if r.algorithms.iter().all(|a| a.is_empty()) {
            AlgorithmSet::all()
        } else {
            AlgorithmSet::parse(&r.algorithms.join(","))
                .map_err(|e| ServiceError::invalid("algorithms", "invalid_algorithm", e))?
        };
        let hasher = api.state.banks.setup().plain(algorithms, r.dihedral);
        let result = run_bounded(&api.state, None, Admission::Queue, move || {
            Ok(hasher.hash_bytes(&image)?)
        })
        .await;
        if let Err(ServiceError::BadImage(e)) = &result {
            api.state.metrics.record_decode_error(e.kind.as_str());
        }
        let h = result?;
        Ok(json(
            StatusCode::OK,
            &HashResponse {
                hashes: computed(&h),
                width: h.width,
                height: h.height,
                pdq_dihedral: h
                    .pdq_dihedral
                    .map(|all| {
                        Dihedral::ALL
                            .iter()
                            .zip(all)
                            .skip(1)
                            .map(|(t, p)| TransformedHash {
                                transform: t.name(),
                                hex: p.hash.to_hex(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                pdq_meta: h.pdq_meta.map(|p| ComputedHash {
                    algorithm: "pdq",
                    hex: p.hash.to_hex(),
                    quality: i32::from(p.quality),
                }),
            },
        ))
    }
    .await;
    api.finish("POST /v1/hash", started, result)
}

// ---------------------------------------------------------------------------------------------
// Banks

/// Applies a change off the async runtime through the state's writer: the live banks on one
/// node, the change stream on a cluster replica.
async fn apply(api: &Api, change: Change, actor: String) -> Result<Applied, ApiError> {
    let state = api.state.clone();
    api.blocking(move || {
        Ok(state
            .writer
            .write(change, &Origin::now(actor))
            .map_err(ServiceError::from)?)
    })
    .await
}

fn unexpected() -> ApiError {
    ServiceError::Internal("the store answered an unexpected change result".into()).into()
}

async fn list_banks(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(&headers, Role::Curate)?;
        let state = api.state.clone();
        api.blocking(move || {
            let mut banks = Vec::new();
            for b in state.store().list_banks()? {
                let n = state.store().count_entries(&b.name)?;
                banks.push(bank_json(&b, n));
            }
            Ok(json(StatusCode::OK, &serde_json::json!({ "banks": banks })))
        })
        .await
    }
    .await;
    api.finish("GET /v1/banks", started, result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateBankRequest {
    name: String,
    description: String,
    kind: String,
    enabled: Option<bool>,
    #[serde(alias = "max_distance")]
    max_distance: Option<MaxDistancesIn>,
}

async fn create_bank(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let r: CreateBankRequest = upload::parse_json(&body)?;
        let change = Change::CreateBank {
            bank: NewBank {
                name: r.name,
                description: r.description,
                kind: parse_kind(&r.kind)?,
                enabled: r.enabled,
                max_distance: r.max_distance.map(|m| m.over(MaxDistances::default())),
            },
        };
        match apply(&api, change, caller.actor()).await? {
            Applied::Bank(b) => Ok(json(StatusCode::OK, &bank_json(&b, 0))),
            _ => Err(unexpected()),
        }
    }
    .await;
    api.finish("POST /v1/banks", started, result)
}

fn find_bank(api: &Api, name: &str) -> Result<Bank, ApiError> {
    api.state
        .store()
        .get_bank(name)?
        .ok_or_else(|| ServiceError::NotFound(format!("no bank named {name:?}")).into())
}

async fn get_bank(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let b = find_bank(&api, &name)?;
        let n = api.state.store().count_entries(&name)?;
        Ok(json(StatusCode::OK, &bank_json(&b, n)))
    })();
    api.finish("GET /v1/banks/{bank}", started, result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UpdateBankRequest {
    description: Option<String>,
    enabled: Option<bool>,
    kind: Option<String>,
    #[serde(alias = "max_distance")]
    max_distance: Option<MaxDistancesIn>,
}

async fn update_bank(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let r: UpdateBankRequest = upload::parse_json(&body)?;
        let current = find_bank(&api, &name)?;
        let change = Change::UpdateBank {
            name: name.clone(),
            update: BankUpdate {
                description: r.description,
                enabled: r.enabled,
                kind: r.kind.as_deref().map(parse_kind).transpose()?,
                max_distance: r.max_distance.map(|m| m.over(current.max_distance)),
            },
        };
        match apply(&api, change, caller.actor()).await? {
            Applied::Bank(b) => {
                let n = api.state.store().count_entries(&name)?;
                Ok(json(StatusCode::OK, &bank_json(&b, n)))
            }
            _ => Err(unexpected()),
        }
    }
    .await;
    api.finish("PATCH /v1/banks/{bank}", started, result)
}

async fn delete_bank(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        match apply(&api, Change::DeleteBank { name }, caller.actor()).await? {
            Applied::BankDeleted(removed) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "entriesRemoved": removed.len() }),
            )),
            _ => Err(unexpected()),
        }
    }
    .await;
    api.finish("DELETE /v1/banks/{bank}", started, result)
}

// ---------------------------------------------------------------------------------------------
// Entries

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NewEntryIn {
    #[serde(alias = "external_id")]
    external_id: String,
    #[serde(deserialize_with = "de_bytes")]
    image: Option<Vec<u8>>,
    hashes: Option<HashSet>,
    label: String,
    source: String,
    note: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AddEntriesRequest {
    entries: Vec<NewEntryIn>,
}

async fn add_entries(
    State(api): State<Api>,
    Path(bank): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(request.headers(), Role::Curate)?;
        let r: AddEntriesRequest = match upload::read_body(request).await? {
            Body::Multipart(u) => {
                let t = &u.texts;
                let text = |k: &str, alias: &str| {
                    t.get(k)
                        .or_else(|| t.get(alias))
                        .cloned()
                        .unwrap_or_default()
                };
                AddEntriesRequest {
                    entries: vec![NewEntryIn {
                        external_id: text("externalId", "external_id"),
                        label: text("label", "label"),
                        source: text("source", "source"),
                        note: text("note", "note"),
                        image: u.file.map(|(_, b)| b.to_vec()),
                        hashes: None,
                    }],
                }
            }
            Body::Raw(b) => upload::parse_json(&b)?,
        };
        if r.entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(ServiceError::invalid(
                "entries",
                "too_many",
                format!("at most {MAX_ENTRIES_PER_CALL} entries per call (use import)"),
            )
            .into());
        }
        crate::store::validate_bank_name(&bank)
            .map_err(|e| ServiceError::invalid("bank", "invalid_bank", e.to_string()))?;
        let mut entries = Vec::with_capacity(r.entries.len());
        let mut warnings = Vec::new();
        for (i, e) in r.entries.into_iter().enumerate() {
            let field = format!("entries[{i}]");
            let hashes = match (e.image, e.hashes) {
                (Some(bytes), None) => {
                    if bytes.len() > api.state.limits.max_image_bytes {
                        return Err(ServiceError::TooLarge(format!(
                            "{field}.image exceeds the size limit"
                        ))
                        .into());
                    }
                    let state = api.state.clone();
                    let banked = run_bounded(&api.state, None, Admission::Patient, move || {
                        Ok(state.banks.hash_for_bank(&bytes)?)
                    })
                    .await
                    .map_err(|err| match err {
                        ServiceError::BadImage(d) => ServiceError::invalid(
                            format!("{field}.image"),
                            d.kind.as_str(),
                            d.message,
                        ),
                        other => other,
                    })?;
                    warnings.extend(
                        banked
                            .warnings
                            .into_iter()
                            .map(|w| format!("{field} ({}): {w}", e.external_id)),
                    );
                    banked.hashes
                }
                (None, Some(set)) => set.parse(&format!("{field}.hashes"))?,
                _ => {
                    return Err(ServiceError::invalid(
                        format!("{field}.content"),
                        "missing_input",
                        "set image or hashes",
                    )
                    .into());
                }
            };
            if hashes.is_empty() {
                return Err(ServiceError::invalid(
                    format!("{field}.hashes"),
                    "missing_input",
                    "no hash given",
                )
                .into());
            }
            entries.push(NewEntry {
                external_id: e.external_id,
                hashes,
                label: e.label,
                source: e.source,
                note: e.note,
                ..NewEntry::default()
            });
        }
        match apply(
            &api,
            Change::UpsertEntries { bank, entries },
            caller.actor(),
        )
        .await?
        {
            Applied::Upserted(up) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "entryIds": up.iter().map(|u| u.id).collect::<Vec<_>>(),
                    "updated": up.iter().map(|u| !u.added).collect::<Vec<_>>(),
                    "warnings": warnings,
                }),
            )),
            _ => Err(unexpected()),
        }
    }
    .await;
    api.finish("POST /v1/banks/{bank}/entries", started, result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RemoveEntriesRequest {
    #[serde(alias = "entry_ids", deserialize_with = "de_u64_list")]
    entry_ids: Vec<u64>,
    #[serde(alias = "external_ids")]
    external_ids: Vec<String>,
}

async fn remove_entries(
    State(api): State<Api>,
    Path(bank): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(&headers, Role::Curate)?;
        let r: RemoveEntriesRequest = upload::parse_json(&body)?;
        let change = Change::RemoveEntries {
            bank,
            ids: r.entry_ids,
            external_ids: r.external_ids,
        };
        match apply(&api, change, caller.actor()).await? {
            Applied::Removed(list) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "removed": list.len() }),
            )),
            _ => Err(unexpected()),
        }
    }
    .await;
    api.finish("POST /v1/banks/{bank}/remove-entries", started, result)
}

async fn get_entry(State(api): State<Api>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let id: EntryId = id
            .parse()
            .map_err(|_| ServiceError::invalid("id", "invalid_argument", "not an entry id"))?;
        let e = api
            .state
            .store()
            .get_entry(id)?
            .ok_or_else(|| ServiceError::NotFound("no such entry".into()))?;
        Ok(json(StatusCode::OK, &entry_json(&e)))
    })();
    api.finish("GET /v1/entries/{id}", started, result)
}

async fn get_entry_external(
    State(api): State<Api>,
    Path((bank, external_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = (|| {
        api.caller(&headers, Role::Curate)?;
        let e = api
            .state
            .store()
            .find_entry(&bank, &external_id)?
            .ok_or_else(|| ServiceError::NotFound("no such entry".into()))?;
        Ok(json(StatusCode::OK, &entry_json(&e)))
    })();
    api.finish(
        "GET /v1/banks/{bank}/entries/{external_id}",
        started,
        result,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ListQuery {
    #[serde(alias = "page_size")]
    page_size: Option<String>,
    #[serde(alias = "page_token")]
    page_token: String,
    label: String,
}

async fn list_entries(
    State(api): State<Api>,
    Path(bank): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(&headers, Role::Curate)?;
        let q = Query::<ListQuery>::try_from_uri(&uri)
            .map_err(|e| ApiError::bad_request(e.body_text()))?
            .0;
        let page_size = match q.page_size.as_deref().map(str::parse::<u32>) {
            None | Some(Ok(0)) => 100,
            Some(Ok(n)) => n.min(1000) as usize,
            Some(Err(_)) => {
                return Err(
                    ServiceError::invalid("pageSize", "invalid_argument", "not a number").into(),
                );
            }
        };
        let state = api.state.clone();
        api.blocking(move || {
            let label = (!q.label.is_empty()).then_some(q.label.as_str());
            let after = (!q.page_token.is_empty()).then_some(q.page_token.as_str());
            let mut entries = state
                .store()
                .list_entries(&bank, label, after, page_size + 1)?;
            let next = if entries.len() > page_size {
                entries.truncate(page_size);
                entries
                    .last()
                    .map(|e| e.external_id.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
                    "nextPageToken": next,
                }),
            ))
        })
        .await
    }
    .await;
    api.finish("GET /v1/banks/{bank}/entries", started, result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FormatQuery {
    format: String,
    algorithm: String,
    label: String,
    strict: Option<String>,
}

fn format_query(
    uri: &axum::http::Uri,
) -> Result<(Format, Option<Algorithm>, FormatQuery), ApiError> {
    let q = Query::<FormatQuery>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request(e.body_text()))?
        .0;
    let format: Format = q.format.parse().map_err(|e: formats::FormatError| {
        ApiError::from(ServiceError::invalid(
            "format",
            "invalid_format",
            e.to_string(),
        ))
    })?;
    let algorithm = if q.algorithm.is_empty() {
        None
    } else {
        Some(Algorithm::from_signal_type(&q.algorithm).ok_or_else(|| {
            ServiceError::invalid(
                "algorithm",
                "invalid_algorithm",
                format!("unknown algorithm {:?}", q.algorithm),
            )
        })?)
    };
    Ok((format, algorithm, q))
}

fn format_error(e: formats::FormatError) -> ApiError {
    match e {
        formats::FormatError::Store(s) => s.into(),
        other => ServiceError::invalid("data", "invalid_import", other.to_string()).into(),
    }
}

async fn import_entries(
    State(api): State<Api>,
    Path(bank): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        let caller = api.caller(request.headers(), Role::Curate)?;
        let (format, algorithm, q) = format_query(request.uri())?;
        let mut options = ImportOptions::new(format);
        options.algorithm = algorithm;
        options.strict = q.strict.as_deref().is_some_and(|s| s == "true" || s == "1");
        let body = match upload::read_body(request).await? {
            Body::Raw(b) => b,
            Body::Multipart(u) => u.file.map(|(_, b)| b).unwrap_or_default(),
        };
        let state = api.state.clone();
        let summary = api
            .blocking(move || {
                // Through the state's writer, as every change: on a cluster replica each batch
                // goes through the change stream.
                crate::cluster::import(
                    state.writer.as_ref(),
                    state.store(),
                    &bank,
                    BufReader::new(&body[..]),
                    &options,
                    &Origin::now(caller.actor()),
                )
                .map_err(|e| match e {
                    crate::cluster::ImportError::Format(e) => format_error(e),
                    crate::cluster::ImportError::Write(e) => ServiceError::from(e).into(),
                })
            })
            .await?;
        let skipped_by_type: BTreeMap<String, u64> = summary.skipped_by_type.into_iter().collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "added": summary.added,
                "updated": summary.updated,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "errors": summary.errors.iter().map(|e| format!("line {}: {}", e.line, e.reason)).collect::<Vec<_>>(),
                "skippedByType": skipped_by_type,
            }),
        ))
    }
    .await;
    api.finish("POST /v1/banks/{bank}/import", started, result)
}

async fn export_entries(
    State(api): State<Api>,
    Path(bank): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(&headers, Role::Curate)?;
        let (format, algorithm, q) = format_query(&uri)?;
        let options = ExportOptions {
            format,
            label: (!q.label.is_empty()).then_some(q.label),
            algorithm,
        };
        find_bank(&api, &bank)?;
        let state = api.state.clone();
        let bytes = api
            .blocking(move || {
                let mut out = Vec::new();
                formats::export(state.store(), &bank, &options, &mut out).map_err(format_error)?;
                Ok(out)
            })
            .await?;
        let mut response = Bytes::from(bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(response)
    }
    .await;
    api.finish("GET /v1/banks/{bank}/export", started, result)
}

// ---------------------------------------------------------------------------------------------
// Stats and audit

async fn stats(State(api): State<Api>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(&headers, Role::Curate)?;
        let state = api.state.clone();
        api.blocking(move || {
            let banks = state.store().list_banks()?;
            let mut entries = 0;
            for b in &banks {
                entries += state.store().count_entries(&b.name)?;
            }
            let indexed: BTreeMap<&'static str, u64> = state
                .banks
                .indexes()
                .counts()
                .into_iter()
                .map(|(a, n)| (a.name(), n))
                .collect();
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "banks": banks.len(),
                    "entries": entries,
                    "indexed": indexed,
                    "uptimeSeconds": state.started.elapsed().as_secs_f64(),
                }),
            ))
        })
        .await
    }
    .await;
    api.finish("GET /v1/stats", started, result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuditQuery {
    bank: String,
    since: String,
    until: String,
    limit: Option<String>,
}

async fn audit(State(api): State<Api>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = async {
        api.caller(&headers, Role::Curate)?;
        let q = Query::<AuditQuery>::try_from_uri(&uri)
            .map_err(|e| ApiError::bad_request(e.body_text()))?
            .0;
        let time = |t: &str, field: &str| -> Result<Option<Timestamp>, ApiError> {
            if t.is_empty() {
                return Ok(None);
            }
            Timestamp::parse(t)
                .map(Some)
                .map_err(|e| ServiceError::invalid(field, "invalid_time", e.to_string()).into())
        };
        let limit = match q.limit.as_deref().map(str::parse::<usize>) {
            None | Some(Ok(0)) => 1000,
            Some(Ok(n)) => n.min(10_000),
            Some(Err(_)) => {
                return Err(ServiceError::invalid("limit", "invalid_argument", "not a number").into());
            }
        };
        let filter = AuditFilter {
            bank: (!q.bank.is_empty()).then(|| q.bank.clone()),
            since: time(&q.since, "since")?,
            until: time(&q.until, "until")?,
            limit: Some(limit),
        };
        let state = api.state.clone();
        api.blocking(move || {
            let events = state.store().audit_events(&filter)?;
            let out: Vec<serde_json::Value> = events
                .into_iter()
                .map(|e| {
                    serde_json::json!({
                        "time": e.time.to_string(),
                        "actor": e.actor,
                        "action": serde_json::to_value(e.action).unwrap_or_default(),
                        "bank": e.bank,
                        "entryIds": e.entry_ids,
                        "detailJson": if e.detail.is_null() { String::new() } else { e.detail.to_string() },
                    })
                })
                .collect();
            Ok(json(StatusCode::OK, &serde_json::json!({ "events": out })))
        })
        .await
    }
    .await;
    api.finish("GET /v1/audit", started, result)
}

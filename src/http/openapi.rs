//! `GET /openapi.json`: an OpenAPI 3.0 document describing every HTTP route, HMA's and vigie's
//! own, built from one table so that a route added here is described here.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Api, json as json_response};

/// One route: method, path (OpenAPI template), tag, summary, parameters (name, where, text),
/// request body content type, success status.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    params: &'static [(&'static str, &'static str, &'static str)],
    body: Option<&'static str>,
    ok: &'static str,
}

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("multipart/form-data");

const BANK: (&str, &str, &str) = ("name", "path", "bank name");
const CONTENT: (&str, &str, &str) = ("id", "path", "content id (vigie entry id)");
const URL: (&str, &str, &str) = (
    "url",
    "query",
    "picture to fetch (only hosts the operator allows)",
);
const BANKS: (&str, &str, &str) = ("banks", "query", "comma-separated bank names");
const TYPES: (&str, &str, &str) = ("types", "query", "comma-separated signal types");
const V1_BANK: (&str, &str, &str) = ("bank", "path", "bank name");

const OPS: &[Op] = &[
    Op {
        method: "get",
        path: "/status",
        tag: "Probes",
        summary: "\"I-AM-ALIVE\" once the index is loaded, else 503 \"INDEX-NOT-LOADED\" (a cluster replica behind its stream: 503 \"INDEX-STALE\")",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/status/live",
        tag: "Probes",
        summary: "Liveness: \"I-AM-ALIVE\"",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/livez",
        tag: "Probes",
        summary: "Liveness: \"OK\"",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/readyz",
        tag: "Probes",
        summary: "Readiness, as /status",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/openapi.json",
        tag: "Probes",
        summary: "This document",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/h/hash",
        tag: "HMA hashing",
        summary: "Hash a picture fetched by URL: {\"pdq\": hex, ...}",
        params: &[URL, ("content_type", "query", "photo"), TYPES],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/h/hash",
        tag: "HMA hashing",
        summary: "Hash an uploaded picture (multipart field `photo`)",
        params: &[TYPES],
        body: FORM,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/m/lookup",
        tag: "HMA matching",
        summary: "Look up a hash ({BANK: [{bank_content_id, distance (string), confidence, algorithm, transform}]}) or a picture by URL (keyed by signal type)",
        params: &[
            ("signal_type", "query", "pdq, md5, phash, dhash, sha256"),
            ("signal", "query", "the hash in hex"),
            URL,
            BANKS,
            ("seed", "query", "accepted; vigie draws no coin"),
            ("bypass_coinflip", "query", "true is refused (400)"),
        ],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/m/lookup",
        tag: "HMA matching",
        summary: "Look up an uploaded picture (multipart field `photo`): {\"pdq\": {BANK: [...]}}",
        params: &[
            BANKS,
            ("seed", "query", "accepted"),
            ("bypass_coinflip", "query", "true is refused (400)"),
        ],
        body: FORM,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/m/raw_lookup",
        tag: "HMA matching",
        summary: "Matching content ids: {\"matches\": [id]} or with distances",
        params: &[
            ("signal_type", "query", "signal type"),
            ("signal", "query", "hash"),
            BANKS,
            ("include_distance", "query", "true/false"),
        ],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/m/compare",
        tag: "HMA matching",
        summary: "Compare pairs of hashes: {\"pdq\": [match, {\"distance\": n}]}",
        params: &[],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/m/index/status",
        tag: "HMA matching",
        summary: "Per signal type {present, built_to, size}",
        params: &[("signal_type", "query", "one signal type")],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/banks",
        tag: "HMA curation",
        summary: "Banks: [{name, matching_enabled_ratio}]",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/c/banks",
        tag: "HMA curation",
        summary: "Create a bank {name ([A-Z_][A-Z0-9_]*), enabled_ratio (0 or 1, number or string), enabled}; 403 if it exists",
        params: &[],
        body: JSON,
        ok: "201",
    },
    Op {
        method: "get",
        path: "/c/bank/{name}",
        tag: "HMA curation",
        summary: "A bank",
        params: &[BANK],
        body: None,
        ok: "200",
    },
    Op {
        method: "put",
        path: "/c/bank/{name}",
        tag: "HMA curation",
        summary: "Enable or disable a bank {enabled_ratio, enabled}; a rename is refused",
        params: &[BANK],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "delete",
        path: "/c/bank/{name}",
        tag: "HMA curation",
        summary: "Delete a bank and its content: {\"message\": \"Done\"}",
        params: &[BANK],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/c/bank/{name}/content",
        tag: "HMA curation",
        summary: "Add a picture (multipart `photo`, fields metadata/content_id/content_uri/note, or ?url=): {id, signals}",
        params: &[
            BANK,
            URL,
            ("content_id", "query", "metadata"),
            ("content_uri", "query", "metadata"),
            ("metadata", "query", "JSON object"),
            ("note", "query", "note"),
        ],
        body: FORM,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/c/bank/{name}/signal",
        tag: "HMA curation",
        summary: "Add hashes {\"pdq\": hex, ...}: {id, signals}",
        params: &[BANK],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/bank/{name}/content/{id}",
        tag: "HMA curation",
        summary: "A content: {id, disable_until_ts, collab_metadata, original_media_uri, bank, signals?, metadata?, note}",
        params: &[
            BANK,
            CONTENT,
            ("include_signals", "query", "true"),
            ("signal_type", "query", "only this type's signals"),
            ("include_metadata", "query", "true"),
        ],
        body: None,
        ok: "200",
    },
    Op {
        method: "put",
        path: "/c/bank/{name}/content/{id}",
        tag: "HMA curation",
        summary: "Set {disable_until_ts}: 0 disabled, 1 enabled, else Unix seconds (at most five years ahead)",
        params: &[BANK, CONTENT],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "delete",
        path: "/c/bank/{name}/content/{id}",
        tag: "HMA curation",
        summary: "Remove a content: {\"deleted\": n}",
        params: &[BANK, CONTENT],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/signal_type",
        tag: "HMA curation",
        summary: "Signal types [{name, enabled_ratio}]",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/signal_type/index",
        tag: "HMA curation",
        summary: "Index status per signal type",
        params: &[("signal_type", "query", "one signal type")],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/content_type",
        tag: "HMA curation",
        summary: "Content types [{\"name\": \"photo\", \"enabled\": true}]",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/exchanges",
        tag: "HMA exchanges",
        summary: "No exchange is configured: []",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/c/exchanges",
        tag: "HMA exchanges",
        summary: "Refused (400): vigie fetches from no exchange",
        params: &[],
        body: JSON,
        ok: "400",
    },
    Op {
        method: "get",
        path: "/c/exchanges/apis",
        tag: "HMA exchanges",
        summary: "No exchange API: []",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/c/exchanges/api/{api}",
        tag: "HMA exchanges",
        summary: "400: no such Exchange API",
        params: &[("api", "path", "API name")],
        body: None,
        ok: "400",
    },
    Op {
        method: "post",
        path: "/c/exchanges/api/{api}",
        tag: "HMA exchanges",
        summary: "400: no such Exchange API",
        params: &[("api", "path", "API name")],
        body: JSON,
        ok: "400",
    },
    Op {
        method: "get",
        path: "/c/exchanges/api/{api}/schema",
        tag: "HMA exchanges",
        summary: "404: no such Exchange API",
        params: &[("api", "path", "API name")],
        body: None,
        ok: "404",
    },
    Op {
        method: "get",
        path: "/c/exchange/{name}",
        tag: "HMA exchanges",
        summary: "404: no such exchange",
        params: &[BANK],
        body: None,
        ok: "404",
    },
    Op {
        method: "put",
        path: "/c/exchange/{name}",
        tag: "HMA exchanges",
        summary: "404: no such exchange",
        params: &[BANK],
        body: JSON,
        ok: "404",
    },
    Op {
        method: "delete",
        path: "/c/exchange/{name}",
        tag: "HMA exchanges",
        summary: "404: no such exchange",
        params: &[BANK],
        body: None,
        ok: "404",
    },
    Op {
        method: "get",
        path: "/c/exchange/{name}/status",
        tag: "HMA exchanges",
        summary: "404: no such exchange",
        params: &[BANK],
        body: None,
        ok: "404",
    },
    Op {
        method: "post",
        path: "/c/exchange/{name}/credentials",
        tag: "HMA exchanges",
        summary: "404: no such exchange",
        params: &[BANK],
        body: JSON,
        ok: "404",
    },
    Op {
        method: "post",
        path: "/v1/screen",
        tag: "vigie",
        summary: "Screen: multipart image (fields requestId, banks, maxDistance) or JSON ScreenRequest {requestId, image (base64) | hashes, banks, maxDistance}",
        params: &[],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/v1/hash",
        tag: "vigie",
        summary: "Hash: multipart image (fields algorithms, dihedral) or JSON HashRequest",
        params: &[],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/banks",
        tag: "vigie",
        summary: "ListBanks: {banks: [Bank]}",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/v1/banks",
        tag: "vigie",
        summary: "CreateBank {name, description, kind, enabled, maxDistance}",
        params: &[],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/banks/{bank}",
        tag: "vigie",
        summary: "GetBank",
        params: &[V1_BANK],
        body: None,
        ok: "200",
    },
    Op {
        method: "patch",
        path: "/v1/banks/{bank}",
        tag: "vigie",
        summary: "UpdateBank {description, enabled, kind, maxDistance}",
        params: &[V1_BANK],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "delete",
        path: "/v1/banks/{bank}",
        tag: "vigie",
        summary: "DeleteBank: {entriesRemoved}",
        params: &[V1_BANK],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/banks/{bank}/entries",
        tag: "vigie",
        summary: "ListEntries: {entries, nextPageToken}",
        params: &[
            V1_BANK,
            ("pageSize", "query", "at most 1000; 100 by default"),
            ("pageToken", "query", "from the previous page"),
            ("label", "query", "only this label"),
        ],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/v1/banks/{bank}/entries",
        tag: "vigie",
        summary: "AddEntries {entries: [{externalId, image (base64) | hashes, label, source, note}]} or one multipart image: {entryIds, updated, warnings}",
        params: &[V1_BANK],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/banks/{bank}/entries/{external_id}",
        tag: "vigie",
        summary: "GetEntry by external id",
        params: &[V1_BANK, ("external_id", "path", "external id")],
        body: None,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/v1/banks/{bank}/remove-entries",
        tag: "vigie",
        summary: "RemoveEntries {entryIds, externalIds}: {removed}",
        params: &[V1_BANK],
        body: JSON,
        ok: "200",
    },
    Op {
        method: "post",
        path: "/v1/banks/{bank}/import",
        tag: "vigie",
        summary: "ImportEntries: the file as the body",
        params: &[
            V1_BANK,
            ("format", "query", "jsonl, csv, signal-lines or hex"),
            ("algorithm", "query", "for hex"),
            ("strict", "query", "true: stop at the first bad line"),
        ],
        body: Some("application/octet-stream"),
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/banks/{bank}/export",
        tag: "vigie",
        summary: "ExportEntries: the file",
        params: &[
            V1_BANK,
            ("format", "query", "jsonl, csv, signal-lines or hex"),
            ("algorithm", "query", "for hex"),
            ("label", "query", "only this label"),
        ],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/entries/{id}",
        tag: "vigie",
        summary: "GetEntry by id",
        params: &[("id", "path", "entry id")],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/stats",
        tag: "vigie",
        summary: "GetStats: {banks, entries, indexed, uptimeSeconds}",
        params: &[],
        body: None,
        ok: "200",
    },
    Op {
        method: "get",
        path: "/v1/audit",
        tag: "vigie",
        summary: "ListAuditEvents: {events}",
        params: &[
            ("bank", "query", "one bank"),
            ("since", "query", "RFC 3339 or Unix seconds"),
            ("until", "query", "RFC 3339 or Unix seconds"),
            ("limit", "query", "at most 10000"),
        ],
        body: None,
        ok: "200",
    },
];

pub(super) fn routes() -> Router<Api> {
    Router::new().route("/openapi.json", get(openapi))
}

async fn openapi() -> Response {
    json_response(StatusCode::OK, &document())
}

/// The OpenAPI document.
fn document() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|(name, place, text)| {
                json!({
                    "name": name,
                    "in": place,
                    "required": *place == "path",
                    "description": text,
                    "schema": { "type": "string" },
                })
            })
            .collect();
        let mut responses = Map::new();
        responses.insert(
            op.ok.into(),
            json!({ "description": "success (or HMA's answer)", "content": { "application/json": {} } }),
        );
        responses.insert(
            "default".into(),
            json!({
                "description": "error",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
            }),
        );
        let mut operation = Map::new();
        operation.insert("tags".into(), json!([op.tag]));
        operation.insert("summary".into(), json!(op.summary));
        operation.insert("parameters".into(), Value::Array(params));
        operation.insert("responses".into(), Value::Object(responses));
        if let Some(ct) = op.body {
            let kind = if ct == "multipart/form-data" {
                "object"
            } else {
                "string"
            };
            let mut content = Map::new();
            content.insert(ct.into(), json!({ "schema": { "type": kind } }));
            operation.insert("requestBody".into(), json!({ "content": content }));
        }
        let operation = Value::Object(operation);
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(o) = entry.as_object_mut() {
            o.insert(op.method.into(), operation);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "vigie HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "HMA (hasher-matcher-actioner 2.x) routes and vigie's own calls as JSON. Keys: `Authorization: Bearer <key>` or `X-API-KEY: <key>`. See docs/HMA-COMPAT.md and docs/HTTP.md.",
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "message": { "type": "string" },
                        "kind": { "type": "string" },
                    },
                    "required": ["message"],
                },
            },
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-KEY" },
            },
        },
        "security": [{ "bearer": [] }, { "apiKey": [] }],
        "paths": paths,
    })
}

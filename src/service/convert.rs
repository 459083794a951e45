//! Conversions between protobuf messages and core types, in one place. Every field that comes
//! from a client is validated here and a failure names the field.

use super::error::ServiceError;
use super::proto;
use crate::hashing::{Dihedral, ImageHashes};
use crate::matcher::MatchInfo;
use crate::store::{Algorithm, Bank, BankKind, Entry, EntryHashes, HashValue, MaxDistances};

/// The hashes of an upload, as reported back (the displayed picture's).
pub fn computed_hashes(h: &ImageHashes) -> Vec<proto::ComputedHash> {
    let mut out = Vec::new();
    let mut push = |algorithm: &str, hex: String, quality: i32| {
        out.push(proto::ComputedHash {
            algorithm: algorithm.into(),
            hex,
            quality,
        })
    };
    if let Some(p) = h.pdq {
        push("pdq", p.hash.to_hex(), i32::from(p.quality));
    }
    let quality64 = h.quality64.map_or(-1, i32::from);
    if let Some(x) = h.phash {
        push("phash", x.to_hex(), quality64);
    }
    if let Some(x) = h.dhash {
        push("dhash", x.to_hex(), quality64);
    }
    if let Some(x) = h.md5 {
        push("md5", x.to_hex(), -1);
    }
    if let Some(x) = h.sha256 {
        push("sha256", x.to_hex(), -1);
    }
    out
}

/// Parse a client's `HashSet`; empty strings are absent hashes. `field` prefixes error names.
pub fn parse_hash_set(set: &proto::HashSet, field: &str) -> Result<EntryHashes, ServiceError> {
    let mut hashes = EntryHashes::default();
    for (algorithm, text) in [
        (Algorithm::Pdq, &set.pdq),
        (Algorithm::Phash, &set.phash),
        (Algorithm::Dhash, &set.dhash),
        (Algorithm::Md5, &set.md5),
        (Algorithm::Sha256, &set.sha256),
    ] {
        if text.is_empty() {
            continue;
        }
        let value = HashValue::parse(algorithm, text).map_err(|e| {
            ServiceError::invalid(
                format!("{field}.{algorithm}"),
                "invalid_hash",
                e.to_string(),
            )
        })?;
        hashes.set(value);
    }
    for (i, text) in set.more.iter().enumerate() {
        let name = format!("{field}.more[{i}]");
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(ServiceError::invalid(
                name,
                "invalid_hash",
                "expected <algorithm>:<hex>",
            ));
        };
        let algorithm = Algorithm::from_signal_type(algorithm).ok_or_else(|| {
            ServiceError::invalid(
                &name,
                "invalid_hash",
                format!("unknown algorithm {algorithm:?}"),
            )
        })?;
        if hashes.get(algorithm).is_none() {
            return Err(ServiceError::invalid(
                name,
                "invalid_hash",
                format!("a further {algorithm} hash needs a first one in {field}.{algorithm}"),
            ));
        }
        let value = HashValue::parse(algorithm, hex)
            .map_err(|e| ServiceError::invalid(&name, "invalid_hash", e.to_string()))?;
        hashes
            .add(value)
            .map_err(|e| ServiceError::invalid(&name, "too_many", e.to_string()))?;
    }
    Ok(hashes)
}

/// An entry's hashes as the protobuf `HashSet` (hex per algorithm, empty when absent).
pub fn to_hash_set(h: &EntryHashes) -> proto::HashSet {
    let hex = |v: Option<HashValue>| v.map(|v| v.to_hex()).unwrap_or_default();
    proto::HashSet {
        pdq: hex(h.get(Algorithm::Pdq)),
        phash: hex(h.get(Algorithm::Phash)),
        dhash: hex(h.get(Algorithm::Dhash)),
        md5: hex(h.get(Algorithm::Md5)),
        sha256: hex(h.get(Algorithm::Sha256)),
        more: h
            .more
            .iter()
            .map(|v| format!("{}:{}", v.algorithm(), v.to_hex()))
            .collect(),
    }
}

/// A match as the protobuf `Match`: algorithm `keypoints` for a keypoint match, the transform's
/// name (empty for none); never the entry's hashes.
pub fn to_proto_match(m: &MatchInfo) -> proto::Match {
    proto::Match {
        bank: m.bank.clone(),
        entry_id: m.entry_id,
        external_id: m.external_id.clone(),
        label: m.label.clone(),
        algorithm: if m.keypoints() > 0 {
            "keypoints".into()
        } else {
            m.algorithm.name().into()
        },
        distance: m.distance,
        confidence: m.confidence,
        transform: if m.transform() == Dihedral::Original {
            String::new()
        } else {
            m.transform().name().into()
        },
        bank_kind: m.bank_kind.to_string(),
        suppressed: m.suppressed,
        keypoints: m.keypoints(),
        frame: m.frame(),
        band: crate::matcher::guard::Band::of(m.confidence).name().into(),
    }
}

/// A bank as the protobuf `Bank`, with its entry count.
pub fn to_proto_bank(b: &Bank, entry_count: u64) -> proto::Bank {
    proto::Bank {
        name: b.name.clone(),
        description: b.description.clone(),
        enabled: b.enabled,
        kind: b.kind.to_string(),
        max_distance: Some(proto::MaxDistances {
            pdq: b.max_distance.pdq,
            phash: b.max_distance.phash,
            dhash: b.max_distance.dhash,
            md5: b.max_distance.md5,
            sha256: b.max_distance.sha256,
        }),
        created_at: b.created_at.to_string(),
        updated_at: b.updated_at.to_string(),
        entry_count,
    }
}

/// Per-algorithm maximum distances from the protobuf message (bits).
pub fn from_proto_distances(d: &proto::MaxDistances) -> MaxDistances {
    MaxDistances {
        pdq: d.pdq,
        phash: d.phash,
        dhash: d.dhash,
        md5: d.md5,
        sha256: d.sha256,
    }
}

/// A bank kind from its name (`block`, `allow`; empty means `block`). Errors: an invalid argument
/// naming `field`.
pub fn parse_kind(text: &str, field: &str) -> Result<BankKind, ServiceError> {
    if text.is_empty() {
        return Ok(BankKind::Block);
    }
    text.parse()
        .map_err(|_| ServiceError::invalid(field, "invalid_kind", "must be block or allow"))
}

/// An entry as the protobuf `Entry` (curator calls only: it carries the entry's hashes).
pub fn to_proto_entry(e: &Entry) -> proto::Entry {
    proto::Entry {
        id: e.id,
        bank: e.bank.clone(),
        external_id: e.external_id.clone(),
        hashes: Some(to_hash_set(&e.hashes)),
        label: e.label.clone(),
        source: e.source.clone(),
        note: e.note.clone(),
        added_by: e.added_by.clone(),
        added_at: e.added_at.to_string(),
        disabled_until: e.disabled_until.map(|t| t.to_string()).unwrap_or_default(),
    }
}

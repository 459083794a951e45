//! What a bank and an entry are, independent of how they are stored.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::bits::{Bits, Hash64, Hash256, HexError};

use super::StoreError;

/// Vigie's own identifier of an entry: assigned once, never reused (the counter survives deletes).
pub type EntryId = u64;
/// Internal identifier of a bank; the key prefix of its rows. Users see the name.
pub type BankId = u32;

/// A 128-bit MD5 digest.
pub type Md5 = Bits<2>;
/// A 256-bit SHA-256 digest.
pub type Sha256 = Bits<4>;

/// The hash algorithms (one definition, in `hashing`); their discriminants are the on-disk bit
/// positions of an entry's hash mask.
pub use crate::hashing::Algorithm;

impl FromStr for Algorithm {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_signal_type(s).ok_or_else(|| StoreError::UnknownAlgorithm(s.to_string()))
    }
}

/// One hash of one algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashValue {
    /// A 256-bit PDQ hash.
    Pdq(Hash256),
    /// A 64-bit pHash (DCT) hash.
    Phash(Hash64),
    /// A 64-bit dHash (difference) hash.
    Dhash(Hash64),
    /// A 128-bit MD5 digest of the file bytes.
    Md5(Md5),
    /// A 256-bit SHA-256 digest of the file bytes.
    Sha256(Sha256),
}

impl HashValue {
    /// The algorithm this hash belongs to.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            HashValue::Pdq(_) => Algorithm::Pdq,
            HashValue::Phash(_) => Algorithm::Phash,
            HashValue::Dhash(_) => Algorithm::Dhash,
            HashValue::Md5(_) => Algorithm::Md5,
            HashValue::Sha256(_) => Algorithm::Sha256,
        }
    }

    /// Lowercase hex, most significant word first: 64 characters for PDQ and SHA-256, 16 for
    /// pHash and dHash, 32 for MD5.
    pub fn to_hex(&self) -> String {
        match self {
            HashValue::Pdq(h) => h.to_hex(),
            HashValue::Phash(h) | HashValue::Dhash(h) => h.to_hex(),
            HashValue::Md5(h) => h.to_hex(),
            HashValue::Sha256(h) => h.to_hex(),
        }
    }

    /// Parse the hex text of a hash of `algorithm`.
    pub fn parse(algorithm: Algorithm, hex: &str) -> Result<HashValue, HexError> {
        let hex = hex.trim();
        Ok(match algorithm {
            Algorithm::Pdq => HashValue::Pdq(Hash256::from_hex(hex)?),
            Algorithm::Phash => HashValue::Phash(Hash64::from_hex(hex)?),
            Algorithm::Dhash => HashValue::Dhash(Hash64::from_hex(hex)?),
            Algorithm::Md5 => HashValue::Md5(Md5::from_hex(hex)?),
            Algorithm::Sha256 => HashValue::Sha256(Sha256::from_hex(hex)?),
        })
    }
}

/// Crop windows an entry can hold (see [`EntryHashes::pdq_windows`]): the six centred crops and
/// the banked picture's trimmed and framed boxes.
pub const MAX_WINDOWS: usize = 8;

pub use crate::hashing::keypoints::{BANK_SCALES, Keypoint, MAX_BANK_KEYPOINTS};

/// The corner points (with patch descriptors) of a picture banked as an image, at each of its
/// scales, at most [`MAX_BANK_KEYPOINTS`]: see `hashing::keypoints`. On the heap, empty (no
/// allocation) for entries imported as hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryKeypoints {
    points: Box<[Keypoint]>,
}

impl EntryKeypoints {
    /// The first [`MAX_BANK_KEYPOINTS`] of `points`.
    pub fn new(points: impl IntoIterator<Item = Keypoint>) -> Self {
        Self {
            points: points.into_iter().take(MAX_BANK_KEYPOINTS).collect(),
        }
    }

    /// The keypoints, at most [`MAX_BANK_KEYPOINTS`] (empty for entries imported as hashes).
    pub fn as_slice(&self) -> &[Keypoint] {
        &self.points
    }

    /// Whether the entry has no keypoints.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Most hashes one entry holds, all algorithms together (see [`EntryHashes::more`]): an ad with
/// many photos fits, and a record stays small (at most 256 PDQs, 8 KiB).
pub const MAX_ENTRY_HASHES: usize = 256;

/// The hashes of one entry: the first hash of each algorithm in its own field, and further hashes
/// of an algorithm already present (an ad with several photos) in [`EntryHashes::more`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryHashes {
    /// PDQ hash (256 bits).
    pub pdq: Option<Hash256>,
    /// pHash (64 bits).
    pub phash: Option<Hash64>,
    /// dHash (64 bits).
    pub dhash: Option<Hash64>,
    /// MD5 digest (128 bits).
    pub md5: Option<Md5>,
    /// SHA-256 digest (256 bits).
    pub sha256: Option<Sha256>,
    /// Further hashes, each of an algorithm whose field above is set, none equal to another hash
    /// of the entry, at most [`MAX_ENTRY_HASHES`] in all (see [`EntryHashes::add`]). Each is
    /// indexed, matched, stored and exported like the first: one external id (an ad) can carry
    /// every photo it showed, and a match names the ad. Empty (no allocation) for most entries.
    pub more: Vec<HashValue>,
    /// PDQ of centred crops of the banked picture (`hashing::regions::BANK_WINDOWS`), and of its
    /// boxes with margins trimmed (uniform margins; drawn frame lines) when it has some, so that a cropped re-upload, or one whose
    /// photo was found in a page of the same colour as its margins, still meets its entry. Made by vigie from pixels when an entry is added
    /// as an image; not part of [`EntryHashes::iter`], of exports or of API answers (they are
    /// vigie's own derived data, not a hash another platform shares).
    pub pdq_windows: [Option<Hash256>; MAX_WINDOWS],
    /// Corner points of the banked picture, for crops no window covers (`hashing::keypoints`).
    /// Like the windows: made by vigie from pixels, never exported or returned.
    pub keypoints: EntryKeypoints,
}

impl EntryHashes {
    /// The crop-window hashes present.
    pub fn windows(&self) -> impl Iterator<Item = Hash256> + '_ {
        self.pdq_windows.iter().flatten().copied()
    }

    /// Replace the crop windows (the first [`MAX_WINDOWS`] of `windows`).
    pub fn set_windows(&mut self, windows: impl IntoIterator<Item = Hash256>) {
        self.pdq_windows = [None; MAX_WINDOWS];
        for (slot, w) in self.pdq_windows.iter_mut().zip(windows) {
            *slot = Some(w);
        }
    }

    /// Whether no algorithm's hash is present (crop windows and keypoints are not counted).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Hashes held, all algorithms together (the crop windows and keypoints apart).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether `value` is one of the entry's hashes.
    pub fn contains(&self, value: &HashValue) -> bool {
        self.iter().any(|h| h == *value)
    }

    /// Add a hash: into its algorithm's field when that is empty, else to [`EntryHashes::more`];
    /// nothing when the entry already holds it. Refused (`Invalid`) past [`MAX_ENTRY_HASHES`].
    pub fn add(&mut self, value: HashValue) -> Result<(), StoreError> {
        if self.contains(&value) {
            return Ok(());
        }
        if self.len() >= MAX_ENTRY_HASHES {
            return Err(StoreError::Invalid(format!(
                "an entry holds at most {MAX_ENTRY_HASHES} hashes"
            )));
        }
        if self.get(value.algorithm()).is_none() {
            self.set(value);
        } else {
            self.more.push(value);
        }
        Ok(())
    }

    /// Set (or replace) the first hash of `value`'s algorithm ([`EntryHashes::more`] is left
    /// as it is).
    pub fn set(&mut self, value: HashValue) {
        match value {
            HashValue::Pdq(h) => self.pdq = Some(h),
            HashValue::Phash(h) => self.phash = Some(h),
            HashValue::Dhash(h) => self.dhash = Some(h),
            HashValue::Md5(h) => self.md5 = Some(h),
            HashValue::Sha256(h) => self.sha256 = Some(h),
        }
    }

    /// The hash of `algorithm`, or `None` when the entry has none.
    pub fn get(&self, algorithm: Algorithm) -> Option<HashValue> {
        match algorithm {
            Algorithm::Pdq => self.pdq.map(HashValue::Pdq),
            Algorithm::Phash => self.phash.map(HashValue::Phash),
            Algorithm::Dhash => self.dhash.map(HashValue::Dhash),
            Algorithm::Md5 => self.md5.map(HashValue::Md5),
            Algorithm::Sha256 => self.sha256.map(HashValue::Sha256),
        }
    }

    /// Every hash: the first of each algorithm in algorithm order, then [`EntryHashes::more`]
    /// in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = HashValue> + '_ {
        Algorithm::ALL
            .into_iter()
            .filter_map(|a| self.get(a))
            .chain(self.more.iter().copied())
    }
}

/// The text of a hash beyond the first of its algorithm, in the `"more"` list of an entry's
/// JSON hashes: `<algorithm>:<hex>`, as a default external id is written.
fn more_text(h: &HashValue) -> String {
    format!("{}:{}", h.algorithm(), h.to_hex())
}

/// Hashes travel as `{"pdq": "hex", "md5": "hex", ...}` (absent algorithms omitted); an entry
/// with several hashes of one algorithm adds `"more": ["pdq:hex", ...]` (absent when empty, so
/// every other entry reads as before).
impl Serialize for EntryHashes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for a in Algorithm::ALL {
            if let Some(h) = self.get(a) {
                map.serialize_entry(a.name(), &h.to_hex())?;
            }
        }
        if !self.more.is_empty() {
            let more: Vec<String> = self.more.iter().map(more_text).collect();
            map.serialize_entry("more", &more)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EntryHashes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Field {
            One(String),
            Many(Vec<String>),
        }
        let raw = std::collections::BTreeMap::<String, Field>::deserialize(deserializer)?;
        let mut hashes = EntryHashes::default();
        let mut more = Vec::new();
        for (name, field) in raw {
            match (name.as_str(), field) {
                ("more", Field::Many(list)) => more = list,
                (_, Field::One(hex)) => {
                    let algorithm = Algorithm::from_signal_type(&name).ok_or_else(|| {
                        D::Error::custom(format!("unknown algorithm {}", super::quote(&name)))
                    })?;
                    let value = HashValue::parse(algorithm, &hex)
                        .map_err(|e| D::Error::custom(format!("{name}: {e}")))?;
                    hashes.set(value);
                }
                (_, Field::Many(_)) => {
                    return Err(D::Error::custom(format!(
                        "{name}: expected one hex string (further hashes go in \"more\")"
                    )));
                }
            }
        }
        // After the first hashes, whatever their order in the text.
        for text in more {
            let (name, hex) = text.split_once(':').ok_or_else(|| {
                D::Error::custom(format!("more: {text:?} is not <algorithm>:<hex>"))
            })?;
            let algorithm = Algorithm::from_signal_type(name)
                .ok_or_else(|| D::Error::custom(format!("more: unknown algorithm {name:?}")))?;
            let value = HashValue::parse(algorithm, hex)
                .map_err(|e| D::Error::custom(format!("more: {name}: {e}")))?;
            hashes.add(value).map_err(D::Error::custom)?;
        }
        Ok(hashes)
    }
}

/// A point in time, microseconds since the Unix epoch (UTC). Printed and parsed as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Latest time RFC 3339 can print (9999-12-31T23:59:59Z): "disabled indefinitely".
    pub const MAX: Timestamp = Timestamp(253_402_300_799_000_000);

    /// The current system time; the epoch itself if the clock is set before 1970.
    pub fn now() -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Timestamp(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The time `seconds` after the Unix epoch (saturating at `i64` microseconds).
    pub fn from_unix_seconds(seconds: i64) -> Timestamp {
        Timestamp(seconds.saturating_mul(1_000_000))
    }

    /// RFC 3339 in UTC (`2024-05-01T12:00:00Z`, fractional seconds accepted) or an integer number
    /// of Unix seconds.
    pub fn parse(text: &str) -> Result<Timestamp, StoreError> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<i64>() {
            if (0..=Timestamp::MAX.0 / 1_000_000).contains(&seconds) {
                return Ok(Timestamp::from_unix_seconds(seconds));
            }
            return Err(StoreError::Invalid(format!(
                "time {} is out of range",
                super::quote(text)
            )));
        }
        let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
            StoreError::Invalid(format!(
                "time {} is not RFC 3339 nor Unix seconds: {e}",
                super::quote(text)
            ))
        })?;
        let micros = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| {
                StoreError::Invalid(format!("time {} is before 1970", super::quote(text)))
            })?
            .as_micros();
        Ok(Timestamp(
            i64::try_from(micros)
                .unwrap_or(i64::MAX)
                .min(Timestamp::MAX.0),
        ))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.clamp(0, Timestamp::MAX.0) as u64;
        let time = UNIX_EPOCH + Duration::from_micros(micros);
        if micros.is_multiple_of(1_000_000) {
            write!(f, "{}", humantime::format_rfc3339_seconds(time))
        } else {
            write!(f, "{}", humantime::format_rfc3339_micros(time))
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether a bank's matches condemn or absolve an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BankKind {
    /// Known abusive imagery: a match flags the upload.
    #[default]
    Block,
    /// Known benign imagery (stock photos, logos, a site's own banners): a match cancels block
    /// matches of the same picture.
    Allow,
}

impl FromStr for BankKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(BankKind::Block),
            "allow" => Ok(BankKind::Allow),
            _ => Err(StoreError::Invalid(format!(
                "bank kind must be block or allow, not {}",
                super::quote(s)
            ))),
        }
    }
}

impl fmt::Display for BankKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BankKind::Block => "block",
            BankKind::Allow => "allow",
        })
    }
}

/// Largest Hamming distance at which a bank entry still matches, per algorithm. Exact digests
/// match only at 0 whatever is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxDistances {
    /// PDQ threshold, in bits of 256 (at most 256).
    pub pdq: u32,
    /// pHash threshold, in bits of 64 (at most 64).
    pub phash: u32,
    /// dHash threshold, in bits of 64 (at most 64).
    pub dhash: u32,
    /// MD5 threshold: must be 0 (exact match).
    pub md5: u32,
    /// SHA-256 threshold: must be 0 (exact match).
    pub sha256: u32,
}

impl Default for MaxDistances {
    /// PDQ 31 is Meta's recommended threshold (PDQ paper, "hashing-and-matching" §3: 31 of 256 bits);
    /// 8 of 64 bits is the usual pHash/dHash cut-off; exact hashes match exactly.
    fn default() -> Self {
        MaxDistances {
            pdq: 31,
            phash: 8,
            dhash: 8,
            md5: 0,
            sha256: 0,
        }
    }
}

impl MaxDistances {
    /// The threshold for `algorithm`, in bits.
    pub fn get(&self, algorithm: Algorithm) -> u32 {
        match algorithm {
            Algorithm::Pdq => self.pdq,
            Algorithm::Phash => self.phash,
            Algorithm::Dhash => self.dhash,
            Algorithm::Md5 => self.md5,
            Algorithm::Sha256 => self.sha256,
        }
    }

    /// Refuse thresholds beyond a hash's width and non-zero ones for exact digests.
    pub fn validate(&self) -> Result<(), StoreError> {
        for algorithm in Algorithm::ALL {
            let d = self.get(algorithm);
            let limit = if algorithm.is_perceptual() {
                algorithm.byte_len() as u32 * 8
            } else {
                0
            };
            if d > limit {
                return Err(StoreError::Invalid(format!(
                    "max distance for {algorithm} must be at most {limit}, got {d}"
                )));
            }
        }
        Ok(())
    }
}

/// A validated bank name: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_bank_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "bank name {} must match [A-Za-z0-9_-]{{1,64}}",
            super::quote(name)
        )))
    }
}

/// Longest external id accepted (bytes). Bounds the lookup key.
pub const MAX_EXTERNAL_ID_LEN: usize = 512;
/// Longest label, source, note or actor accepted (bytes).
pub const MAX_TEXT_LEN: usize = 4096;

/// A named collection of hashes, with its matching thresholds. Serialised without its `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bank {
    /// Internal id (the key prefix of its rows); not serialised, restored from the row key.
    #[serde(skip)]
    pub id: BankId,
    /// Unique name, `[A-Za-z0-9_-]{1,64}`; what users and the audit log refer to.
    pub name: String,
    /// Free text, at most [`MAX_TEXT_LEN`] bytes.
    pub description: String,
    /// Whether the bank's entries take part in matching.
    pub enabled: bool,
    /// Whether a match blocks or allows the upload.
    pub kind: BankKind,
    /// Matching thresholds per algorithm, in bits.
    pub max_distance: MaxDistances,
    /// When the bank was created.
    pub created_at: Timestamp,
    /// When the bank was last changed (equal to `created_at` until an update).
    pub updated_at: Timestamp,
}

/// What a new bank is created with; defaults are an enabled block bank with default thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewBank {
    /// Unique name, `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// Free text, at most [`MAX_TEXT_LEN`] bytes.
    pub description: String,
    /// Block (default) or allow.
    pub kind: BankKind,
    /// Whether the bank takes part in matching; `None` means enabled.
    pub enabled: Option<bool>,
    /// Thresholds per algorithm, in bits; `None` means [`MaxDistances::default`].
    pub max_distance: Option<MaxDistances>,
}

/// Changes to a bank; `None` leaves a field as it is. The name cannot change: it keys the audit log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BankUpdate {
    /// New free-text description, at most [`MAX_TEXT_LEN`] bytes.
    pub description: Option<String>,
    /// Enable or disable the bank for matching.
    pub enabled: Option<bool>,
    /// New kind (block or allow).
    pub kind: Option<BankKind>,
    /// New thresholds per algorithm, in bits; validated by [`MaxDistances::validate`].
    pub max_distance: Option<MaxDistances>,
}

/// A stored bank entry: its hashes and metadata, as read back from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Vigie's id of the entry, unique across banks and never reused.
    pub id: EntryId,
    /// Name of the bank holding the entry.
    pub bank: String,
    /// The caller's id of the entry, unique within its bank (1 to [`MAX_EXTERNAL_ID_LEN`] bytes).
    pub external_id: String,
    /// The entry's hashes (at least one algorithm).
    pub hashes: EntryHashes,
    /// Free-text label (at most [`MAX_TEXT_LEN`] bytes; may be empty).
    pub label: String,
    /// Where the entry came from (at most [`MAX_TEXT_LEN`] bytes; may be empty).
    pub source: String,
    /// Free-text note (at most [`MAX_TEXT_LEN`] bytes; may be empty).
    pub note: String,
    /// Who added the entry (the acting user, or the value carried by an import).
    pub added_by: String,
    /// When the entry was added.
    pub added_at: Timestamp,
    /// While set and later than now, the entry is left out of matching ([`Entry::is_active`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_until: Option<Timestamp>,
}

impl Entry {
    /// Whether the entry takes part in matching at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.disabled_until.is_none_or(|t| t <= now)
    }
}

/// An entry to add, or to replace the entry with the same external id in the bank.
/// `added_by`/`added_at` default to the acting user and now; imports carry them over so a
/// jsonl export re-imports losslessly.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewEntry {
    /// The caller's id of the entry, unique within the bank: 1 to [`MAX_EXTERNAL_ID_LEN`] bytes,
    /// no control characters.
    pub external_id: String,
    /// The entry's hashes: at least one algorithm.
    pub hashes: EntryHashes,
    /// Free-text label, at most [`MAX_TEXT_LEN`] bytes.
    #[serde(default)]
    pub label: String,
    /// Where the entry came from, at most [`MAX_TEXT_LEN`] bytes.
    #[serde(default)]
    pub source: String,
    /// Free-text note, at most [`MAX_TEXT_LEN`] bytes.
    #[serde(default)]
    pub note: String,
    /// Who added it, at most [`MAX_TEXT_LEN`] bytes; `None`: the acting user.
    #[serde(default)]
    pub added_by: Option<String>,
    /// When it was added; `None`: now.
    #[serde(default)]
    pub added_at: Option<Timestamp>,
    /// Leave the entry out of matching until this time; `None`: active.
    #[serde(default)]
    pub disabled_until: Option<Timestamp>,
}

impl NewEntry {
    /// Checks the external id (1 to [`MAX_EXTERNAL_ID_LEN`] bytes, no control characters), that
    /// there is a hash, and that the texts fit [`MAX_TEXT_LEN`] bytes.
    /// Errors: [`StoreError::Invalid`] naming the first fault.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.external_id.is_empty() || self.external_id.len() > MAX_EXTERNAL_ID_LEN {
            return Err(StoreError::Invalid(format!(
                "external_id must be 1 to {MAX_EXTERNAL_ID_LEN} bytes, got {}",
                self.external_id.len()
            )));
        }
        if self.external_id.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "external_id contains control characters".into(),
            ));
        }
        if self.hashes.is_empty() {
            return Err(StoreError::Invalid(format!(
                "entry {} has no hash",
                super::quote(&self.external_id)
            )));
        }
        for (field, text) in [
            ("label", self.label.as_str()),
            ("source", self.source.as_str()),
            ("note", self.note.as_str()),
            ("added_by", self.added_by.as_deref().unwrap_or("")),
        ] {
            if text.len() > MAX_TEXT_LEN {
                return Err(StoreError::Invalid(format!(
                    "{field} is longer than {MAX_TEXT_LEN} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// What `upsert_entries` did with one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upserted {
    /// Vigie's id of the entry (new, or the replaced entry's id).
    pub id: EntryId,
    /// The caller's id of the entry, as given.
    pub external_id: String,
    /// `true` for a new entry, `false` when an existing one was replaced.
    pub added: bool,
    /// The replaced entry's hashes and whether it was active, so an index can drop them.
    #[serde(skip)]
    pub previous: Option<EntryHashes>,
    /// The hashes the entry has now, and whether it is active (not disabled), so an index can
    /// add them.
    #[serde(skip)]
    pub hashes: EntryHashes,
    /// Whether the entry takes part in matching now (not disabled).
    #[serde(skip)]
    pub active: bool,
}

/// What a bank-and-entry change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A bank was created.
    BankCreate,
    /// A bank's description, enabled flag, kind or thresholds changed.
    BankUpdate,
    /// A bank and all its entries were deleted.
    BankDelete,
    /// Entries were added.
    EntryAdd,
    /// Entries with an existing external id were replaced.
    EntryUpdate,
    /// Entries were removed.
    EntryRemove,
    /// Entries were disabled (left out of matching) until a time.
    EntryDisable,
    /// Disabled entries were enabled again.
    EntryEnable,
    /// An import finished (the counts are in `detail`).
    Import,
    /// Service API keys (created and revoked by admins).
    KeyCreate,
    /// A service API key was revoked.
    KeyRevoke,
    /// A key's policy (detail, rate limit, probing action) or suspension changed.
    KeyUpdate,
    /// The server saw a key probe near banked hashes (many near-identical queries, see
    /// `matcher::guard`); `detail` names the key, the rule and what was done.
    KeyProbing,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the log, increasing with every event.
    pub seq: u64,
    /// When the change was made.
    pub time: Timestamp,
    /// Who made the change: the actor passed to the store call (user, API key or process).
    pub actor: String,
    /// What kind of change it was.
    pub action: AuditAction,
    /// Name of the bank changed (empty for changes that concern no bank, such as API keys).
    pub bank: String,
    /// Entry ids the change touched (empty for bank changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_ids: Vec<EntryId>,
    /// Free-form facts: changed fields, import counts.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// Which audit events to list. Times are inclusive bounds.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events of the bank with this name; `None`: all banks.
    pub bank: Option<String>,
    /// Only events at or after this time; `None`: from the start.
    pub since: Option<Timestamp>,
    /// Only events at or before this time; `None`: up to the end.
    pub until: Option<Timestamp>,
    /// At most this many events (the oldest first); `None`: no limit.
    pub limit: Option<usize>,
}

//! API keys for the service: name, role, and the SHA-256 of the key (never the key itself).
//!
//! Key layout, in the `meta` column family:
//! - `apikey:h:` + SHA-256(key) (32 bytes) -> JSON [`ApiKey`]: the lookup on every call;
//! - `apikey:n:` + name -> SHA-256(key): names are unique, revocation is by name.
//!
//! Creating, updating or revoking a key is one atomic batch with its audit event.
//!
//! A record also carries the key's [`KeyPolicy`] (how much a screen answer reveals, its rate
//! limit, what probing does) and whether it is suspended. Both fields came after the first
//! records (issue 16) and are optional in the JSON: a record written before them reads with the
//! role's defaults ([`KeyPolicy::default`]), so an old store's keys load as they are and no
//! schema step is needed (see `schema.rs`). Keys do not travel between cluster replicas (each
//! node's keys are made with `vigie keys` on that node), so neither do their policies.

use std::str::FromStr;

use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::Cf;
use super::{AuditAction, Store, StoreError, Timestamp, WriteOp, audit_op, validate_actor};

const BY_HASH: &[u8] = b"apikey:h:";
const BY_NAME: &[u8] = b"apikey:n:";

/// What a key may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Screening only.
    Screen,
    /// Screening and bank management.
    Curate,
    /// Everything, keys included.
    Admin,
}

impl Role {
    /// The role's lowercase name (`screen`, `curate`, `admin`), as stored, printed and parsed
    /// by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Screen => "screen",
            Role::Curate => "curate",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may call what needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "screen" => Ok(Role::Screen),
            "curate" => Ok(Role::Curate),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "role must be screen, curate or admin, not {}",
                super::quote(s)
            )),
        }
    }
}

/// How much of a match a key's screen answers reveal (see docs/SECURITY.md). Distances (and
/// anything that gives them back: a calibrated confidence, a keypoint vote count) let a caller
/// walk a query onto a banked hash bit by bit; without them, a platform still knows whether the
/// upload matched, which bank and entry, and how strongly, coarsely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// The Hamming distance and the calibrated confidence, as computed (trusted keys).
    Exact,
    /// A band (strong, medium, weak) instead of the distance; the confidence is the band's floor.
    Band,
    /// Match and a two-level confidence only (0.9: act on it; 0.5: review); no distance. The
    /// `screen` role's default: the least a platform needs to act.
    Confidence,
}

impl Detail {
    /// The detail a key of `role` gets unless its policy says otherwise: `confidence` for
    /// `screen` (third-party platforms, not trusted with the bank), `exact` for `curate` and
    /// `admin` (who may read the bank's hashes anyway).
    pub fn default_for(role: Role) -> Detail {
        match role {
            Role::Screen => Detail::Confidence,
            Role::Curate | Role::Admin => Detail::Exact,
        }
    }

    /// The lowercase name (`exact`, `band`, `confidence`), as stored, printed and parsed.
    pub fn name(self) -> &'static str {
        match self {
            Detail::Exact => "exact",
            Detail::Band => "band",
            Detail::Confidence => "confidence",
        }
    }
}

impl FromStr for Detail {
    type Err = String;
    /// The level whose [`Detail::name`] is `s` (each name is written once, there).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match [Detail::Exact, Detail::Band, Detail::Confidence]
            .into_iter()
            .find(|d| d.name() == s)
        {
            Some(d) => Ok(d),
            None => Err(format!(
                "detail must be exact, band or confidence, not {}",
                super::quote(s)
            )),
        }
    }
}

/// What the server does when a key probes near banked hashes (`matcher::guard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeAction {
    /// Nothing: no detection for this key.
    Off,
    /// An audit event and a metric, answers unchanged.
    Audit,
    /// An audit event and a metric, and the key's answers near the probed place are withheld
    /// (PERMISSION_DENIED, kind `probing_withheld`) for the fence time. The `screen` role's
    /// default.
    Withhold,
    /// As `withhold`, and the key is suspended (stored): every later call fails until an admin
    /// lifts it (`vigie keys update NAME --unsuspend`).
    Suspend,
}

impl ProbeAction {
    /// The action for a key of `role` unless its policy says otherwise: `withhold` for `screen`,
    /// `off` for `curate` and `admin` (they may read the bank's hashes anyway).
    pub fn default_for(role: Role) -> ProbeAction {
        match role {
            Role::Screen => ProbeAction::Withhold,
            Role::Curate | Role::Admin => ProbeAction::Off,
        }
    }

    /// The lowercase name (`off`, `audit`, `withhold`, `suspend`).
    pub fn name(self) -> &'static str {
        match self {
            ProbeAction::Off => "off",
            ProbeAction::Audit => "audit",
            ProbeAction::Withhold => "withhold",
            ProbeAction::Suspend => "suspend",
        }
    }
}

impl FromStr for ProbeAction {
    type Err = String;
    /// The action whose [`ProbeAction::name`] is `s` (each name is written once, there).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            ProbeAction::Off,
            ProbeAction::Audit,
            ProbeAction::Withhold,
            ProbeAction::Suspend,
        ];
        match all.into_iter().find(|a| a.name() == s) {
            Some(a) => Ok(a),
            None => Err(format!(
                "on-probe must be off, audit, withhold or suspend, not {}",
                super::quote(s)
            )),
        }
    }
}

/// A key's own policy; each field left `None` takes its default (the role's for `detail` and
/// `on_probe`, the server's `--key-rate`/`--key-burst` for the rate limit). Absent fields are
/// left out of the stored JSON, and a record without a policy reads as all defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPolicy {
    /// How much a screen answer reveals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
    /// Screens a second, sustained (token bucket refill); 0 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Screens that may come at once (token bucket size); at least 1 when a rate is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// What probing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_probe: Option<ProbeAction>,
}

impl KeyPolicy {
    /// Whether every field is left to its default (the stored JSON then leaves the policy out).
    pub fn is_default(&self) -> bool {
        *self == KeyPolicy::default()
    }

    /// `self` with each field of `changes` that is set put over it.
    pub fn merged(self, changes: KeyPolicy) -> KeyPolicy {
        KeyPolicy {
            detail: changes.detail.or(self.detail),
            rate: changes.rate.or(self.rate),
            burst: changes.burst.or(self.burst),
            on_probe: changes.on_probe.or(self.on_probe),
        }
    }
}

/// A stored API key's record (stored as JSON under its SHA-256; the key itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Unique name, `[A-Za-z0-9_-]{1,64}`: how the key is listed and revoked.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// When the key was created (microseconds since the Unix epoch).
    pub created_at: Timestamp,
    /// When the key was revoked; `None` while it is valid. Left out of the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// The key's own policy (left out of the JSON when all defaults; absent in records written
    /// before it existed).
    #[serde(default, skip_serializing_if = "KeyPolicy::is_default")]
    pub policy: KeyPolicy,
    /// When probing suspended the key (`ProbeAction::Suspend`); `None` while it is not. A
    /// suspended key's calls fail (PERMISSION_DENIED, kind `key_suspended`) until an admin lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<Timestamp>,
}

impl ApiKey {
    /// The detail this key's screen answers carry: its policy's, else its role's default.
    pub fn detail(&self) -> Detail {
        self.policy
            .detail
            .unwrap_or_else(|| Detail::default_for(self.role))
    }

    /// What probing does for this key: its policy's, else its role's default.
    pub fn on_probe(&self) -> ProbeAction {
        self.policy
            .on_probe
            .unwrap_or_else(|| ProbeAction::default_for(self.role))
    }
}

/// SHA-256 of a key: what is stored and looked up. Keys carry 256 random bits, so a plain hash
/// (no salt, no stretching) is enough: there is nothing to guess.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new key: `vk_` and 64 hex digits from the operating system's random source.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::StdRng::from_os_rng().fill_bytes(&mut bytes);
    let mut key = String::with_capacity(67);
    key.push_str("vk_");
    for b in bytes {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

fn prefixed(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(rest);
    k
}

fn decode(bytes: &[u8]) -> Result<ApiKey, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("api key record: {e}")))
}

fn encode(key: &ApiKey) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(key).map_err(|e| StoreError::Corrupt(format!("api key record: {e}")))
}

impl Store {
    /// Stores a new key under `name` (unique). The key itself is not kept.
    pub fn create_api_key(
        &self,
        name: &str,
        role: Role,
        key: &str,
        actor: &str,
    ) -> Result<ApiKey, StoreError> {
        self.create_api_key_hashed_at(name, role, hash_key(key), actor, Timestamp::now())
    }

    /// [`Store::create_api_key`] with its own `policy` (what `vigie keys create --detail ...`
    /// makes), in the same batch. Errors: as [`Store::create_api_key_hashed_at`].
    pub fn create_api_key_with_policy(
        &self,
        name: &str,
        role: Role,
        policy: KeyPolicy,
        key: &str,
        actor: &str,
    ) -> Result<ApiKey, StoreError> {
        self.create_key_record(name, role, policy, hash_key(key), actor, Timestamp::now())
    }

    /// [`Store::create_api_key`] from the key's SHA-256 ([`hash_key`]) rather than the key, as of
    /// `now`: what a replicated change carries (the clear key never leaves the process that made
    /// it). Errors: an invalid or taken name ([`StoreError::Invalid`]), storage.
    pub fn create_api_key_hashed_at(
        &self,
        name: &str,
        role: Role,
        hash: [u8; 32],
        actor: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        self.create_key_record(name, role, KeyPolicy::default(), hash, actor, now)
    }

    fn create_key_record(
        &self,
        name: &str,
        role: Role,
        policy: KeyPolicy,
        hash: [u8; 32],
        actor: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        validate_actor(actor)?;
        super::validate_bank_name(name).map_err(|_| {
            StoreError::Invalid(format!(
                "key name {} must match [A-Za-z0-9_-]{{1,64}}",
                super::quote(name)
            ))
        })?;
        let mut counters = self.lock_writer()?;
        if self
            .backend
            .get(Cf::Meta, &prefixed(BY_NAME, name.as_bytes()))?
            .is_some()
        {
            return Err(StoreError::Invalid(format!(
                "a key named {} already exists",
                super::quote(name)
            )));
        }
        let record = ApiKey {
            name: name.to_string(),
            role,
            created_at: now,
            revoked_at: None,
            policy,
            suspended_at: None,
        };
        let mut next = *counters;
        let audit = audit_op(
            &mut next,
            now,
            actor,
            AuditAction::KeyCreate,
            "",
            &[],
            serde_json::json!({"key": name, "role": role.name(), "policy": policy}),
        )?;
        let ops = vec![
            WriteOp::Put(Cf::Meta, prefixed(BY_HASH, &hash), encode(&record)?),
            WriteOp::Put(Cf::Meta, prefixed(BY_NAME, name.as_bytes()), hash.to_vec()),
            audit,
        ];
        self.commit(ops, &mut counters, next)?;
        Ok(record)
    }

    /// The key whose SHA-256 is `hash`, revoked or not.
    pub fn find_api_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.backend
            .get(Cf::Meta, &prefixed(BY_HASH, hash))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every key, revoked ones included, sorted by name. Errors: storage, or
    /// [`StoreError::Corrupt`] when a record is not valid JSON.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut end = BY_HASH.to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut keys = Vec::new();
        self.backend
            .scan(Cf::Meta, BY_HASH, Some(&end), &mut |_, v| {
                keys.push(decode(v)?);
                Ok(true)
            })?;
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// Revokes the key named `name`: every later call with it fails.
    pub fn revoke_api_key(&self, name: &str, actor: &str) -> Result<ApiKey, StoreError> {
        self.revoke_api_key_at(name, actor, Timestamp::now())
    }

    /// [`Store::revoke_api_key`] as of `now` (a key already revoked keeps its first time).
    pub fn revoke_api_key_at(
        &self,
        name: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        validate_actor(actor)?;
        let mut counters = self.lock_writer()?;
        let hash = self
            .backend
            .get(Cf::Meta, &prefixed(BY_NAME, name.as_bytes()))?
            .ok_or_else(|| StoreError::EntryNotFound(format!("key {}", super::quote(name))))?;
        let mut record = self
            .backend
            .get(Cf::Meta, &prefixed(BY_HASH, &hash))?
            .map(|v| decode(&v))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt(format!("key {name:?} has a name but no record")))?;
        record.revoked_at.get_or_insert(now);
        let mut next = *counters;
        let audit = audit_op(
            &mut next,
            now,
            actor,
            AuditAction::KeyRevoke,
            "",
            &[],
            serde_json::json!({"key": name}),
        )?;
        self.commit(
            vec![
                WriteOp::Put(Cf::Meta, prefixed(BY_HASH, &hash), encode(&record)?),
                audit,
            ],
            &mut counters,
            next,
        )?;
        Ok(record)
    }
}

impl Store {
    fn key_by_name(&self, name: &str) -> Result<([u8; 32], ApiKey), StoreError> {
        let hash = self
            .backend
            .get(Cf::Meta, &prefixed(BY_NAME, name.as_bytes()))?
            .ok_or_else(|| StoreError::EntryNotFound(format!("key {}", super::quote(name))))?;
        let hash: [u8; 32] = hash
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("key {name:?}: hash is not 32 bytes")))?;
        let record = self
            .backend
            .get(Cf::Meta, &prefixed(BY_HASH, &hash))?
            .map(|v| decode(&v))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt(format!("key {name:?} has a name but no record")))?;
        Ok((hash, record))
    }

    /// Changes the key named `name`: each field of `changes` that is set replaces the policy's,
    /// and `suspended` (when given) suspends the key (`true`, keeping the first time) or lifts a
    /// suspension (`false`). One batch with a `key_update` audit event. Returns the new record.
    /// Errors: no such key ([`StoreError::EntryNotFound`]), storage.
    pub fn update_api_key(
        &self,
        name: &str,
        changes: KeyPolicy,
        suspended: Option<bool>,
        actor: &str,
    ) -> Result<ApiKey, StoreError> {
        validate_actor(actor)?;
        let now = Timestamp::now();
        let mut counters = self.lock_writer()?;
        let (hash, mut record) = self.key_by_name(name)?;
        record.policy = record.policy.merged(changes);
        match suspended {
            Some(true) => {
                record.suspended_at.get_or_insert(now);
            }
            Some(false) => record.suspended_at = None,
            None => {}
        }
        let mut next = *counters;
        let audit = audit_op(
            &mut next,
            now,
            actor,
            AuditAction::KeyUpdate,
            "",
            &[],
            serde_json::json!({
                "key": name,
                "policy": record.policy,
                "suspended": record.suspended_at.is_some(),
            }),
        )?;
        self.commit(
            vec![
                WriteOp::Put(Cf::Meta, prefixed(BY_HASH, &hash), encode(&record)?),
                audit,
            ],
            &mut counters,
            next,
        )?;
        Ok(record)
    }

    /// Records that the key named `name` probed near banked hashes (`matcher::guard`): a
    /// `key_probing` audit event whose detail is `detail` (the key's name added), and, with
    /// `suspend`, the key suspended in the same batch. The actor is `server`. Errors: no such
    /// key, storage.
    pub fn record_key_probing(
        &self,
        name: &str,
        detail: serde_json::Value,
        suspend: bool,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mut counters = self.lock_writer()?;
        let (hash, mut record) = self.key_by_name(name)?;
        let mut detail = detail;
        if let serde_json::Value::Object(map) = &mut detail {
            map.insert("key".into(), name.into());
            map.insert("suspended".into(), suspend.into());
        }
        let mut next = *counters;
        let mut ops = vec![audit_op(
            &mut next,
            now,
            "server",
            AuditAction::KeyProbing,
            "",
            &[],
            detail,
        )?];
        if suspend {
            record.suspended_at.get_or_insert(now);
            ops.push(WriteOp::Put(
                Cf::Meta,
                prefixed(BY_HASH, &hash),
                encode(&record)?,
            ));
        }
        self.commit(ops, &mut counters, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_hashed_found_and_revoked() {
        let store = Store::in_memory();
        let key = generate_key();
        assert!(key.starts_with("vk_") && key.len() == 67);
        assert_ne!(generate_key(), key);
        let created = store
            .create_api_key("platform-a", Role::Screen, &key, "test")
            .unwrap();
        assert_eq!(created.role, Role::Screen);
        let found = store.find_api_key(&hash_key(&key)).unwrap().unwrap();
        assert_eq!(found.name, "platform-a");
        assert!(store.find_api_key(&hash_key("vk_wrong")).unwrap().is_none());
        assert!(
            store
                .create_api_key("platform-a", Role::Admin, &generate_key(), "test")
                .is_err(),
            "names are unique"
        );
        store.revoke_api_key("platform-a", "test").unwrap();
        assert!(
            store
                .find_api_key(&hash_key(&key))
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert_eq!(store.list_api_keys().unwrap().len(), 1);
        assert!(store.revoke_api_key("nobody", "test").is_err());
    }

    #[test]
    fn a_record_written_before_policies_reads_with_the_role_defaults() {
        // A record as every vigie before issue 16 wrote it.
        let old = serde_json::to_vec(&serde_json::json!({
            "name": "platform-a",
            "role": "screen",
            "created_at": Timestamp(1_700_000_000_000_000),
        }))
        .unwrap();
        let key = decode(&old).unwrap();
        assert!(key.policy.is_default() && key.suspended_at.is_none());
        assert_eq!(key.detail(), Detail::Confidence);
        assert_eq!(key.on_probe(), ProbeAction::Withhold);
        // Defaults are not written, so such a record is written back with the same fields.
        let again: serde_json::Value = serde_json::from_slice(&encode(&key).unwrap()).unwrap();
        let before: serde_json::Value = serde_json::from_slice(&old).unwrap();
        assert_eq!(again, before);
        let admin = ApiKey {
            role: Role::Admin,
            ..key
        };
        assert_eq!(admin.detail(), Detail::Exact);
        assert_eq!(admin.on_probe(), ProbeAction::Off);
    }

    #[test]
    fn policies_are_stored_updated_and_suspensions_lifted() {
        let store = Store::in_memory();
        let key = generate_key();
        let policy = KeyPolicy {
            detail: Some(Detail::Exact),
            rate: Some(5),
            ..KeyPolicy::default()
        };
        store
            .create_api_key_with_policy("trusted", Role::Screen, policy, &key, "test")
            .unwrap();
        let found = store.find_api_key(&hash_key(&key)).unwrap().unwrap();
        assert_eq!(found.detail(), Detail::Exact);
        assert_eq!(found.policy.rate, Some(5));
        let changed = KeyPolicy {
            burst: Some(9),
            on_probe: Some(ProbeAction::Suspend),
            ..KeyPolicy::default()
        };
        let updated = store
            .update_api_key("trusted", changed, None, "test")
            .unwrap();
        assert_eq!(updated.policy.rate, Some(5), "unset fields are kept");
        assert_eq!(updated.policy.burst, Some(9));
        assert_eq!(updated.on_probe(), ProbeAction::Suspend);
        store
            .record_key_probing("trusted", serde_json::json!({"rule": "steps"}), true)
            .unwrap();
        let found = store.find_api_key(&hash_key(&key)).unwrap().unwrap();
        assert!(found.suspended_at.is_some());
        let lifted = store
            .update_api_key("trusted", KeyPolicy::default(), Some(false), "test")
            .unwrap();
        assert!(lifted.suspended_at.is_none());
        assert!(
            store
                .update_api_key("nobody", changed, None, "test")
                .is_err()
        );
        let actions: Vec<AuditAction> = store
            .audit_events(&crate::store::AuditFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(actions.contains(&AuditAction::KeyProbing), "{actions:?}");
        assert!(actions.contains(&AuditAction::KeyUpdate), "{actions:?}");
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Admin.allows(Role::Curate) && Role::Curate.allows(Role::Screen));
        assert!(!Role::Screen.allows(Role::Curate) && !Role::Curate.allows(Role::Admin));
        assert_eq!("curate".parse::<Role>(), Ok(Role::Curate));
        assert!("root".parse::<Role>().is_err());
    }
}

//! API keys for the service: name, role, and the SHA-256 of the key (never the key itself).
//!
//! Key layout, in the `meta` column family:
//! - `apikey:h:` + SHA-256(key) (32 bytes) -> JSON [`ApiKey`]: the lookup on every call;
//! - `apikey:n:` + name -> SHA-256(key): names are unique, revocation is by name.
//!
//! Creating or revoking a key is one atomic batch with its audit event.

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
            _ => Err(format!("role must be screen, curate or admin, not {s:?}")),
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
        validate_actor(actor)?;
        super::validate_bank_name(name).map_err(|_| {
            StoreError::Invalid(format!(
                "key name {name:?} must match [A-Za-z0-9_-]{{1,64}}"
            ))
        })?;
        let mut counters = self.lock_writer()?;
        if self
            .backend
            .get(Cf::Meta, &prefixed(BY_NAME, name.as_bytes()))?
            .is_some()
        {
            return Err(StoreError::Invalid(format!(
                "a key named {name:?} already exists"
            )));
        }
        let record = ApiKey {
            name: name.to_string(),
            role,
            created_at: now,
            revoked_at: None,
        };
        let mut next = *counters;
        let audit = audit_op(
            &mut next,
            now,
            actor,
            AuditAction::KeyCreate,
            "",
            &[],
            serde_json::json!({"key": name, "role": role.name()}),
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
            .ok_or_else(|| StoreError::EntryNotFound(format!("key {name:?}")))?;
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
    fn roles_nest() {
        assert!(Role::Admin.allows(Role::Curate) && Role::Curate.allows(Role::Screen));
        assert!(!Role::Screen.allows(Role::Curate) && !Role::Curate.allows(Role::Admin));
        assert_eq!("curate".parse::<Role>(), Ok(Role::Curate));
        assert!("root".parse::<Role>().is_err());
    }
}

//! API keys: `authorization: Bearer <key>` on every call, checked against the hashes in the store.
//!
//! A key is only ever stored as its SHA-256; the store is read on every call, so a revoked key
//! fails on its very next call. The caller's identity rides in the request's extensions so that
//! handlers can name it in the audit log.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::error::ServiceError;
use super::metrics::Metrics;
use crate::matcher::guard::{Access, GuardConfig};
use crate::store::Store;
use crate::store::api_keys::{KeyPolicy, Role, hash_key};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's name (never the key).
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// The stored key's own policy; `None` for a caller without a stored key (the key-less role
    /// of the HTTP edge, `--insecure-no-auth`).
    pub policy: Option<KeyPolicy>,
    /// Let in by `--insecure-no-auth`: exact answers, no rate limit, no probing detection.
    pub unrestricted: bool,
}

impl Caller {
    /// What this caller may see and do under the server's guard settings (`matcher::guard`).
    pub fn access(&self, config: &GuardConfig) -> Access {
        if self.unrestricted {
            return Access::unrestricted(&self.name);
        }
        match self.policy {
            Some(policy) => Access::of_key(&self.name, self.role, policy, config),
            None => Access::for_role(&self.name, self.role, config),
        }
    }

    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        format!("key:{}", self.name)
    }
}

/// Checks the API key of every call against the store (by its SHA-256), counting failures.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<Store>,
    insecure_no_auth: bool,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    /// Checks keys against `store`; with `insecure_no_auth` every call is an admin (tests, trusted
    /// networks only); failures are counted in `metrics`.
    pub fn new(store: Arc<Store>, insecure_no_auth: bool, metrics: Arc<Metrics>) -> Self {
        Authenticator {
            store,
            insecure_no_auth,
            metrics,
        }
    }

    /// The caller of a call with these headers, if its key exists, is not revoked and has at least
    /// the `needed` role. Errors: [`ServiceError::Unauthenticated`] (no, unknown or revoked key),
    /// [`ServiceError::PermissionDenied`] (a weaker role), a store read failure.
    pub fn authenticate(
        &self,
        metadata: &MetadataMap,
        needed: Role,
    ) -> Result<Caller, ServiceError> {
        if self.insecure_no_auth {
            return self.authenticate_key(None, needed);
        }
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(ServiceError::Unauthenticated)?;
        let key = bearer_key(header).ok_or(ServiceError::Unauthenticated)?;
        self.authenticate_key(Some(key), needed)
    }

    /// Whether every call is let in as admin without a key (`--insecure-no-auth`).
    pub fn is_insecure(&self) -> bool {
        self.insecure_no_auth
    }

    /// The caller holding `key` (as sent, any edge), if its role allows `needed`. Errors:
    /// `Unauthenticated` for no key, an empty or over-long one, an unknown or revoked one;
    /// `PermissionDenied` for a role below `needed`; `Suspended` for a key suspended for probing.
    /// Under `--insecure-no-auth` every call is
    /// an admin's.
    pub fn authenticate_key(
        &self,
        key: Option<&str>,
        needed: Role,
    ) -> Result<Caller, ServiceError> {
        if self.insecure_no_auth {
            return Ok(Caller {
                name: "insecure-no-auth".into(),
                role: Role::Admin,
                policy: None,
                unrestricted: true,
            });
        }
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(ServiceError::Unauthenticated)?;
        let record = self
            .store
            .find_api_key(&hash_key(key))?
            .ok_or(ServiceError::Unauthenticated)?;
        if record.revoked_at.is_some() {
            return Err(ServiceError::Unauthenticated);
        }
        if record.suspended_at.is_some() {
            return Err(ServiceError::Suspended(record.name));
        }
        if !record.role.allows(needed) {
            return Err(ServiceError::PermissionDenied {
                key: record.name,
                role: record.role.name(),
                needed: needed.name(),
            });
        }
        Ok(Caller {
            name: record.name,
            role: record.role,
            policy: Some(record.policy),
            unrestricted: false,
        })
    }

    /// A tonic interceptor requiring `needed` for every method of a service.
    pub fn require(&self, needed: Role) -> RoleInterceptor {
        RoleInterceptor {
            auth: self.clone(),
            needed,
        }
    }
}

/// A tonic interceptor that admits calls of at least one role and puts the [`Caller`] in the
/// request extensions.
#[derive(Clone)]
pub struct RoleInterceptor {
    auth: Authenticator,
    needed: Role,
}

impl Interceptor for RoleInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match self.auth.authenticate(request.metadata(), self.needed) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err(e) => {
                self.auth.metrics.record_auth_failure(e.kind());
                Err(e.into())
            }
        }
    }
}

/// The key of an `authorization` header value `Bearer <key>`: 1 to 256 bytes, surrounding blanks
/// trimmed. The scheme is matched without regard
/// to case (RFC 9110 section 11.1: "It uses a case-insensitive token"; `BEARER` and `bearer` are
/// `Bearer`), then one or more spaces. `None` for any other scheme or shape.
pub fn bearer_key(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(rest.trim()).filter(|k| !k.is_empty() && k.len() <= 256)
}

/// The caller the interceptor put in the request (every service is behind one).
pub fn caller<T>(request: &Request<T>) -> Result<Caller, ServiceError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or(ServiceError::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::bearer_key;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer k1", "bearer k1", "BEARER k1", "bEaReR   k1 "] {
            assert_eq!(bearer_key(header), Some("k1"), "{header}");
        }
    }

    #[test]
    fn other_schemes_and_empty_or_long_tokens_are_refused() {
        let long = format!("Bearer {}", "k".repeat(257));
        for header in [
            "Basic k1",
            "Bearer",
            "Bearer ",
            "Bearerk1",
            "Token k1",
            long.as_str(),
        ] {
            assert_eq!(bearer_key(header), None, "{header}");
        }
    }
}

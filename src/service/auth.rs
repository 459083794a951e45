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
use crate::store::Store;
use crate::store::api_keys::{Role, hash_key};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's name (never the key).
    pub name: String,
    /// What the key may do.
    pub role: Role,
}

impl Caller {
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
            return Ok(Caller {
                name: "insecure-no-auth".into(),
                role: Role::Admin,
            });
        }
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(ServiceError::Unauthenticated)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
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

/// The caller the interceptor put in the request (every service is behind one).
pub fn caller<T>(request: &Request<T>) -> Result<Caller, ServiceError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or(ServiceError::Unauthenticated)
}

//! The service layer's one error type, and its mapping to gRPC status codes, in one place.

use tonic::{Code, Status};

use crate::cluster::WriteError;
use crate::hashing::{DecodeError, DecodeErrorKind};
use crate::matcher::{MatchError, ScreenError};
use crate::store::StoreError;

/// Metadata key carrying the machine-readable kind of an error (e.g. `corrupt`, `invalid_hash`).
pub const ERROR_KIND_HEADER: &str = "vigie-error-kind";

/// Why a call failed: one enum for the whole gRPC edge, mapped to a `tonic::Status` (and a kind in
/// the [`ERROR_KIND_HEADER`] metadata) in one place, [`ServiceError::code`] and `From<ServiceError>`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No key, an unknown key or a revoked key (UNAUTHENTICATED).
    #[error("no or unknown API key")]
    Unauthenticated,
    /// The key's role is too weak for the call (PERMISSION_DENIED).
    #[error("the key {key:?} (role {role}) may not call this; it needs role {needed}")]
    PermissionDenied {
        /// The key's name.
        key: String,
        /// The key's role.
        role: &'static str,
        /// The role the call needs.
        needed: &'static str,
    },
    /// The image could not be hashed (INVALID_ARGUMENT; RESOURCE_EXHAUSTED over a size limit).
    #[error("image {}: {}", .0.kind.as_str(), .0.message)]
    BadImage(DecodeError),
    /// A field of the request is wrong (INVALID_ARGUMENT).
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field, as a path (`entries[3].hashes`).
        field: String,
        /// A stable kind clients key on (`invalid_hash`, `missing_input`, ...).
        kind: &'static str,
        /// What is wrong, for a person.
        message: String,
    },
    /// What the call names does not exist (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// Over a size limit (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    TooLarge(String),
    /// Every hashing worker stayed busy (RESOURCE_EXHAUSTED: retry with backoff).
    #[error("server busy: {0}")]
    Overloaded(String),
    /// The client's deadline passed (DEADLINE_EXCEEDED).
    #[error("the deadline passed before the work was done")]
    DeadlineExceeded,
    /// A bug or an unexpected failure (INTERNAL; details in the server log).
    #[error("internal error: {0}")]
    Internal(String),
    /// The index is still loading (UNAVAILABLE).
    #[error("the index is still loading")]
    Unavailable,
    /// A replica could not commit a change through its cluster (quorum lost, NATS unreachable).
    #[error("{0}")]
    ClusterUnavailable(String),
    /// The cluster committed the change but this replica did not apply it in time.
    #[error("{0}")]
    NotYetApplied(String),
    /// The store refused or failed (mapped by the store error's kind).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    /// An [`ServiceError::InvalidArgument`] for `field`.
    pub fn invalid(
        field: impl Into<String>,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ServiceError::InvalidArgument {
            field: field.into(),
            kind,
            message: message.into(),
        }
    }

    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServiceError::Unauthenticated => Code::Unauthenticated,
            ServiceError::PermissionDenied { .. } => Code::PermissionDenied,
            ServiceError::BadImage(e) if e.kind == DecodeErrorKind::TooLarge => {
                Code::InvalidArgument
            }
            ServiceError::BadImage(_) | ServiceError::InvalidArgument { .. } => {
                Code::InvalidArgument
            }
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::TooLarge(_) | ServiceError::Overloaded(_) => Code::ResourceExhausted,
            ServiceError::DeadlineExceeded => Code::DeadlineExceeded,
            ServiceError::Internal(_) => Code::Internal,
            ServiceError::Unavailable | ServiceError::ClusterUnavailable(_) => Code::Unavailable,
            ServiceError::NotYetApplied(_) => Code::DeadlineExceeded,
            ServiceError::Store(e) => match e {
                StoreError::Locked(_) => Code::Unavailable,
                StoreError::SchemaTooNew { .. } => Code::FailedPrecondition,
                StoreError::Corrupt(_) | StoreError::Backend(_) => Code::Internal,
                StoreError::Invalid(_) | StoreError::UnknownAlgorithm(_) => Code::InvalidArgument,
                StoreError::BankExists(_) => Code::AlreadyExists,
                StoreError::BankNotFound(_) | StoreError::EntryNotFound(_) => Code::NotFound,
            },
        }
    }

    /// The machine-readable kind sent in the `vigie-error-kind` metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::Unauthenticated => "unauthenticated",
            ServiceError::PermissionDenied { .. } => "permission_denied",
            ServiceError::BadImage(e) => e.kind.as_str(),
            ServiceError::InvalidArgument { kind, .. } => kind,
            ServiceError::NotFound(_) => "not_found",
            ServiceError::TooLarge(_) => "too_large",
            ServiceError::Overloaded(_) => "overloaded",
            ServiceError::DeadlineExceeded => "deadline_exceeded",
            ServiceError::Internal(_) => "internal",
            ServiceError::Unavailable => "unavailable",
            ServiceError::ClusterUnavailable(_) => "cluster_unavailable",
            ServiceError::NotYetApplied(_) => "not_yet_applied",
            ServiceError::Store(StoreError::BankExists(_)) => "already_exists",
            ServiceError::Store(StoreError::BankNotFound(_) | StoreError::EntryNotFound(_)) => {
                "not_found"
            }
            ServiceError::Store(StoreError::Invalid(_) | StoreError::UnknownAlgorithm(_)) => {
                "invalid"
            }
            ServiceError::Store(_) => "storage",
        }
    }
}

impl From<WriteError> for ServiceError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Store(s) => ServiceError::Store(s),
            WriteError::Unavailable(_) => ServiceError::ClusterUnavailable(e.to_string()),
            WriteError::NotYetApplied { .. } => ServiceError::NotYetApplied(e.to_string()),
            WriteError::TooLarge(m) => ServiceError::TooLarge(m),
            WriteError::Internal(m) => ServiceError::Internal(m),
        }
    }
}

impl From<DecodeError> for ServiceError {
    fn from(e: DecodeError) -> Self {
        ServiceError::BadImage(e)
    }
}

impl From<ScreenError> for ServiceError {
    fn from(e: ScreenError) -> Self {
        match e {
            ScreenError::Image(d) => ServiceError::from(d),
            ScreenError::Match(m) => ServiceError::from(m),
        }
    }
}

impl From<MatchError> for ServiceError {
    fn from(e: MatchError) -> Self {
        match e {
            MatchError::UnknownBank(name) => {
                ServiceError::NotFound(format!("no bank named {name:?}"))
            }
            MatchError::Store(s) => ServiceError::Store(s),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let code = e.code();
        // Internal details stay in the log, not in the answer.
        let message = match &e {
            ServiceError::Internal(_)
            | ServiceError::Store(StoreError::Corrupt(_) | StoreError::Backend(_)) => {
                tracing::error!(error = %e, "internal error");
                "internal error (see the server log)".to_string()
            }
            _ => e.to_string(),
        };
        let mut status = Status::new(code, message);
        if let Ok(v) = e.kind().parse() {
            status.metadata_mut().insert(ERROR_KIND_HEADER, v);
        }
        status
    }
}

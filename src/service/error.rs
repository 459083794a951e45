//! The service layer's one error type, and its mapping to gRPC status codes, in one place.

use tonic::{Code, Status};

use crate::cluster::WriteError;
use crate::hashing::{DecodeError, DecodeErrorKind};
use crate::matcher::guard::{GuardError, Refusal};
use crate::matcher::{MatchError, ScreenError};
use crate::store::StoreError;

/// What a write refused for want of disk space answers (kind `storage_full`, UNAVAILABLE).
pub const STORAGE_FULL_MESSAGE: &str = "the store's disk is full: writes are refused until space is freed, then resume by themselves; screens go on";

/// Longest error message sent to a caller, in bytes. Messages quote the caller's input (names,
/// ids, hashes); quoted in full, a megabyte field makes a status whose `grpc-message` trailer
/// exceeds the client's metadata limit, and the caller sees RESOURCE_EXHAUSTED ("metadata size
/// exceeds hard limit") instead of the real error. gRPC clients accept 8 KiB of metadata by
/// default and the message is percent-encoded (up to 3 bytes a byte), so 1 KiB stays well inside.
pub const MAX_MESSAGE_BYTES: usize = 1024;

pub use crate::store::{MAX_QUOTED_CHARS, quote};

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] bytes on a character boundary, with a note of
/// its full length when cut. The last line of defence behind [`quote`]: every status leaves
/// through it.
pub fn truncate_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let note = format!("... (message of {} bytes, cut)", message.len());
    let mut end = MAX_MESSAGE_BYTES - note.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &message[..end])
}

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
    /// The key was suspended for probing near banked hashes (PERMISSION_DENIED, kind
    /// `key_suspended`) until an admin lifts it.
    #[error(
        "the key {0:?} is suspended (probing near banked hashes was detected); an admin can lift it: vigie keys update NAME --unsuspend"
    )]
    Suspended(String),
    /// The key's guard refused the screen: over its rate limit (RESOURCE_EXHAUSTED, kind
    /// `rate_limited`, with a `retry-after` entry in seconds and `vigie-retry-after-ms`), or its
    /// answer is withheld after probing (PERMISSION_DENIED, kind `probing_withheld`).
    #[error(transparent)]
    Refused(Refusal),
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
            ServiceError::PermissionDenied { .. }
            | ServiceError::Suspended(_)
            | ServiceError::Refused(Refusal::Withheld { .. }) => Code::PermissionDenied,
            ServiceError::Refused(Refusal::RateLimited { .. }) => Code::ResourceExhausted,
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
                StoreError::Corrupt(_)
                | StoreError::Backend(_)
                | StoreError::Damaged(_)
                | StoreError::NotAStore(_) => Code::Internal,
                // UNAVAILABLE, not RESOURCE_EXHAUSTED: nothing the caller sent is too much, the
                // server is briefly unable to write, and gRPC marks UNAVAILABLE as the code a
                // client may retry (with backoff) as it is; screens on the same server go on.
                StoreError::StorageFull(_) => Code::Unavailable,
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
            ServiceError::Suspended(_) => "key_suspended",
            ServiceError::Refused(Refusal::RateLimited { .. }) => "rate_limited",
            ServiceError::Refused(Refusal::Withheld { .. }) => "probing_withheld",
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
            ServiceError::Store(StoreError::StorageFull(_)) => "storage_full",
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

impl From<GuardError> for ServiceError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::Screen(s) => ServiceError::from(s),
            GuardError::Refused(r) => ServiceError::Refused(r),
        }
    }
}

/// Metadata entry of a rate-limited answer: seconds to wait (whole, rounded up, at least 1), as
/// HTTP's `Retry-After`.
pub const RETRY_AFTER_HEADER: &str = "retry-after";
/// Metadata entry of a rate-limited answer: milliseconds to wait.
pub const RETRY_AFTER_MS_HEADER: &str = "vigie-retry-after-ms";

impl ServiceError {
    /// How long the caller should wait before retrying, for a rate-limited answer.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ServiceError::Refused(Refusal::RateLimited { retry_after, .. }) => Some(*retry_after),
            _ => None,
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1 (what `Retry-After` carries).
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

impl From<MatchError> for ServiceError {
    fn from(e: MatchError) -> Self {
        match e {
            MatchError::UnknownBank(name) => {
                ServiceError::NotFound(format!("no bank named {}", quote(&name)))
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
            | ServiceError::Store(
                StoreError::Corrupt(_)
                | StoreError::Backend(_)
                | StoreError::Damaged(_)
                | StoreError::NotAStore(_),
            ) => {
                tracing::error!(error = %e, "internal error");
                "internal error (see the server log)".to_string()
            }
            // The detail names server paths: it goes to the log (once, by the store), not out.
            ServiceError::Store(StoreError::StorageFull(_)) => STORAGE_FULL_MESSAGE.to_string(),
            _ => truncate_message(&e.to_string()),
        };
        let mut status = Status::new(code, message);
        if let Ok(v) = e.kind().parse() {
            status.metadata_mut().insert(ERROR_KIND_HEADER, v);
        }
        if let Some(wait) = e.retry_after() {
            let m = status.metadata_mut();
            if let Ok(v) = retry_after_secs(wait).to_string().parse() {
                m.insert(RETRY_AFTER_HEADER, v);
            }
            if let Ok(v) = (wait.as_millis() as u64).max(1).to_string().parse() {
                m.insert(RETRY_AFTER_MS_HEADER, v);
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_messages_are_cut_with_a_note_of_their_length() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "é".repeat(300);
        let q = quote(&long);
        assert!(q.starts_with(&format!("\"{}", "é".repeat(MAX_QUOTED_CHARS))));
        assert!(q.ends_with("(300 characters, cut)"), "{q}");
        let m = truncate_message(&"x".repeat(1 << 20));
        assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
        assert!(m.ends_with("(message of 1048576 bytes, cut)"), "{m}");
        let m = truncate_message(&"é".repeat(1000));
        assert!(m.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(truncate_message("short"), "short");
    }

    #[test]
    fn a_full_disk_is_unavailable_with_its_own_kind_and_no_server_paths() {
        let e = ServiceError::Store(StoreError::StorageFull(
            "IO error: No space left on device: /srv/vigie/000012.log".into(),
        ));
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.kind(), "storage_full");
        let status = Status::from(e);
        assert_eq!(status.message(), STORAGE_FULL_MESSAGE);
        assert_eq!(
            status
                .metadata()
                .get(ERROR_KIND_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("storage_full")
        );
    }
}

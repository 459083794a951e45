//! The HTTP edge's errors: the service's one error type mapped to HTTP status codes, plus HMA's
//! own messages (`{"message": ...}` with HMA's status), in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::hashing::DecodeErrorKind;
use crate::matcher::guard::Refusal;
use crate::service::error::{STORAGE_FULL_MESSAGE, ServiceError, truncate_message};
use crate::store::StoreError;

/// An error answer: `{"message": ..., "kind": ...}` with an HTTP status.
#[derive(Debug)]
pub enum ApiError {
    /// A service error, mapped as the gRPC edge maps it (see [`ApiError::http_status`]).
    Service(ServiceError),
    /// An answer with HMA's exact status and message (HMA clients match on some messages, e.g.
    /// "already exists").
    Plain {
        /// The HTTP status.
        status: StatusCode,
        /// The message, as HMA words it where HMA has one.
        message: String,
    },
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::Plain {
            status,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::status(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::status(StatusCode::NOT_FOUND, message)
    }

    /// The HTTP status of a service error: 401 no or unknown key, 403 role too low, 400 bad
    /// argument or picture, 403 also a suspended key or a withheld answer (probing), 404
    /// missing, 409 existing bank, 413 over a size limit, 429 every worker busy or a key over its
    /// rate limit (with `Retry-After`), 503 index loading, store locked or disk full, 504 deadline, 500 internal.
    pub fn http_status(e: &ServiceError) -> StatusCode {
        match e {
            ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ServiceError::PermissionDenied { .. }
            | ServiceError::Suspended(_)
            | ServiceError::Refused(Refusal::Withheld { .. }) => StatusCode::FORBIDDEN,
            ServiceError::Refused(Refusal::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::BadImage(d) if d.kind == DecodeErrorKind::TooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ServiceError::BadImage(_) | ServiceError::InvalidArgument { .. } => {
                StatusCode::BAD_REQUEST
            }
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Unavailable | ServiceError::ClusterUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ServiceError::NotYetApplied(_) => StatusCode::GATEWAY_TIMEOUT,
            ServiceError::Store(s) => match s {
                // A full disk: writes come back by themselves once space is freed (as gRPC's
                // UNAVAILABLE, kind `storage_full`).
                StoreError::Locked(_) | StoreError::StorageFull(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                StoreError::Invalid(_) | StoreError::UnknownAlgorithm(_) => StatusCode::BAD_REQUEST,
                StoreError::BankExists(_) => StatusCode::CONFLICT,
                StoreError::BankNotFound(_) | StoreError::EntryNotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The gRPC code the metrics record for this answer (the same labels as the gRPC edge).
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            ApiError::Service(e) => e.code(),
            ApiError::Plain { status, .. } => match *status {
                StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
                StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
                StatusCode::NOT_FOUND => tonic::Code::NotFound,
                StatusCode::CONFLICT => tonic::Code::AlreadyExists,
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
                    tonic::Code::ResourceExhausted
                }
                StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
                StatusCode::GATEWAY_TIMEOUT => tonic::Code::DeadlineExceeded,
                StatusCode::BAD_GATEWAY => tonic::Code::Unavailable,
                s if s.is_client_error() => tonic::Code::InvalidArgument,
                _ => tonic::Code::Internal,
            },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::Service(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Service(ServiceError::Store(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::Service(e) => e.retry_after(),
            ApiError::Plain { .. } => None,
        };
        let (status, message, kind) = match &self {
            ApiError::Plain { status, message } => (*status, message.clone(), None),
            ApiError::Service(e) => {
                let status = ApiError::http_status(e);
                // Internal details stay in the log, not in the answer (as on gRPC).
                let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "internal error");
                    "internal error (see the server log)".to_string()
                } else if let ServiceError::Store(StoreError::StorageFull(_)) = e {
                    // The detail names server paths: it is logged by the store, not sent.
                    STORAGE_FULL_MESSAGE.to_string()
                } else {
                    truncate_message(&e.to_string())
                };
                (status, message, Some(e.kind()))
            }
        };
        let mut response = super::json(
            status,
            &Body {
                message: &message,
                kind,
            },
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            // A key over its rate limit is told when its next token comes; a busy server, 1 s.
            let secs = retry_after.map_or(1, crate::service::error::retry_after_secs);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn a_full_disk_is_503_storage_full_without_server_paths() {
        let e = ApiError::from(StoreError::StorageFull(
            "IO error: No space left on device: /srv/vigie/000123.log".into(),
        ));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = body(response).await;
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["kind"], "storage_full", "{text}");
        assert_eq!(json["message"], STORAGE_FULL_MESSAGE, "{text}");
        assert!(!text.contains("/srv/vigie"), "{text}");
    }

    #[tokio::test]
    async fn messages_are_cut_to_the_limit() {
        let huge = "x".repeat(1 << 20);
        let response = ApiError::from(ServiceError::NotFound(huge)).into_response();
        let text = body(response).await;
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let message = json["message"].as_str().expect("message");
        assert!(
            message.len() <= crate::service::error::MAX_MESSAGE_BYTES,
            "{} bytes",
            message.len()
        );
    }
}

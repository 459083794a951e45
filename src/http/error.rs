//! The HTTP edge's errors: the service's one error type mapped to HTTP status codes, plus HMA's
//! own messages (`{"message": ...}` with HMA's status), in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::hashing::DecodeErrorKind;
use crate::service::error::ServiceError;
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
    /// argument or picture, 404 missing, 409 existing bank, 413 over a size limit, 429 every
    /// worker busy, 503 index loading or store locked, 504 deadline, 500 internal.
    pub fn http_status(e: &ServiceError) -> StatusCode {
        match e {
            ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ServiceError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
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
                StoreError::Locked(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        let (status, message, kind) = match &self {
            ApiError::Plain { status, message } => (*status, message.clone(), None),
            ApiError::Service(e) => {
                let status = ApiError::http_status(e);
                // Internal details stay in the log, not in the answer (as on gRPC).
                let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "internal error");
                    "internal error (see the server log)".to_string()
                } else {
                    e.to_string()
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
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

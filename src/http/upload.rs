//! Reading request bodies: multipart uploads (one file, some text fields) and JSON, with every
//! failure a JSON answer (413 over the body limit, 400 otherwise).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Longest text field kept (bytes): metadata, notes, bank lists.
const MAX_TEXT_FIELD: usize = 64 * 1024;

/// A multipart body: at most one file, and text fields.
#[derive(Debug, Default)]
pub struct Upload {
    /// The file field's name and bytes.
    pub file: Option<(String, Bytes)>,
    /// Text fields by name (the last of a repeated name).
    pub texts: HashMap<String, String>,
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the upload exceeds the request size limit",
        )
    } else {
        ApiError::bad_request(format!("bad multipart/form-data body: {}", e.body_text()))
    }
}

/// Reads a multipart body. A field with a file name (or any field over the text limit) is the
/// file. Errors: 400 for a second file (HMA's `Only one file allowed per request`) or a broken
/// body, 413 over the body limit.
pub async fn read_multipart(mut multipart: Multipart) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some()
            || field
                .content_type()
                .is_some_and(|c| !c.starts_with("text/"));
        let bytes = field.bytes().await.map_err(multipart_error)?;
        if is_file || bytes.len() > MAX_TEXT_FIELD {
            if upload.file.is_some() {
                return Err(ApiError::bad_request("Only one file allowed per request"));
            }
            upload.file = Some((name, bytes));
        } else {
            upload
                .texts
                .insert(name, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Ok(upload)
}

/// Parses a JSON body into `T`. Errors: 400 naming what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}

/// Whether a request's `Content-Type` is multipart.
pub fn is_multipart(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The request body as bytes, or as a multipart upload, depending on its content type.
pub enum Body {
    /// A multipart body.
    Multipart(Upload),
    /// Any other body (JSON, or empty).
    Raw(Bytes),
}

/// Reads the body of `request` as [`Body`]. Errors: as [`read_multipart`]; 413 over the limit.
pub async fn read_body(request: axum::extract::Request) -> Result<Body, ApiError> {
    use axum::extract::FromRequest;
    if is_multipart(request.headers()) {
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(Body::Multipart(read_multipart(multipart).await?))
    } else {
        let bytes = Bytes::from_request(request, &()).await.map_err(|e| {
            ApiError::status(
                e.status(),
                format!("cannot read the body: {}", e.body_text()),
            )
        })?;
        Ok(Body::Raw(bytes))
    }
}

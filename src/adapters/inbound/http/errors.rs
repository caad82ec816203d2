//! The one error body of the contract, and the catch-all that gives every framework error
//! (bad JSON, wrong content type, unknown path, wrong method, oversized body) that body too.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use poem_openapi::payload::Json;
use poem_openapi::Object;

/// `{"error": "<code>", "message": "<text for humans>"}`; the message never echoes input.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A fixed machine-readable code, e.g. `invalid_token`.
    pub error: String,
    /// A fixed human-readable explanation.
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: &str, message: &str) -> Json<Self> {
        Json(Self {
            error: error.to_owned(),
            message: message.to_owned(),
        })
    }
}

/// `WWW-Authenticate` for a refused bearer token (RFC 6750 §3).
pub const BEARER_CHALLENGE: &str = r#"Bearer error="invalid_token""#;

/// The contract's code and message for a status the framework produced.
pub fn for_status(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => (
            "invalid_request",
            "The request is malformed: check the JSON body and its fields.",
        ),
        401 => ("invalid_token", "A valid access token is required."),
        403 => ("forbidden_origin", "Cross-site requests are not allowed."),
        404 => ("not_found", "No such resource."),
        405 => (
            "method_not_allowed",
            "This method is not allowed on this resource.",
        ),
        411 => ("length_required", "A request body needs a length."),
        413 => ("payload_too_large", "The request body is too large."),
        415 => (
            "unsupported_media_type",
            "The request body must be JSON (Content-Type: application/json).",
        ),
        429 => ("too_many_requests", "Too many attempts; retry later."),
        431 => (
            "request_header_fields_too_large",
            "The request headers are too large.",
        ),
        503 => (
            "unavailable",
            "The service is temporarily unavailable; retry later.",
        ),
        s if s < 500 => ("invalid_request", "The request could not be processed."),
        _ => ("internal_error", "An internal error occurred."),
    }
}

/// A JSON error response for `status`.
pub fn response(status: StatusCode) -> Response {
    let (code, message) = for_status(status);
    let mut resp = ErrorBody::new(code, message).into_response();
    resp.set_status(status);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BEARER_CHALLENGE),
        );
    }
    resp
}

/// Turns every error or non-JSON error response into the contract's JSON body. Responses that
/// already carry JSON (the operations' own) pass untouched.
pub async fn json_errors<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => {
            if err.status().is_server_error() {
                tracing::error!(status = %err.status(), error = %err, "request failed");
            } else {
                tracing::debug!(status = %err.status(), error = %err, "request refused");
            }
            err.into_response()
        }
    };
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if (resp.status().is_client_error() || resp.status().is_server_error()) && !is_json {
        let mut fresh = response(resp.status());
        if let Some(allow) = resp.headers().get(header::ALLOW) {
            fresh.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return Ok(fresh);
    }
    Ok(resp)
}

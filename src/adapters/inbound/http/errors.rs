//! The one error body of the contract, and the catch-all that gives every framework error
//! (bad JSON, wrong content type, unknown path, wrong method, oversized body) that body too.

use std::collections::HashMap;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::ParseRequestPayloadError;
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

/// The methods each path answers, read once from the OpenAPI document, for `Allow` on a 405.
#[derive(Debug, Default)]
pub struct AllowedMethods(HashMap<String, HeaderValue>);

impl AllowedMethods {
    pub fn from_spec(spec_json: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec_json).unwrap_or_default();
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        Self(
            paths
                .into_iter()
                .filter_map(|(path, ops)| {
                    let mut methods: Vec<String> = ops
                        .as_object()?
                        .keys()
                        .map(|m| m.to_ascii_uppercase())
                        .collect();
                    methods.sort();
                    Some((path, HeaderValue::from_str(&methods.join(", ")).ok()?))
                })
                .collect(),
        )
    }

    fn for_path(&self, path: &str) -> Option<&HeaderValue> {
        self.0.get(path)
    }
}

/// A human message for a failed schema validator, naming the field and the rule but never
/// the value (poem-openapi says e.g. ``field `password` verification failed. minLength(8)``).
fn validation_message(reason: &str) -> Option<String> {
    let field = reason.split("field `").nth(1)?.split('`').next()?;
    let rule = reason.split("verification failed. ").nth(1)?;
    let number = |name: &str| {
        rule.strip_prefix(name)?
            .strip_suffix(')')?
            .parse::<usize>()
            .ok()
    };
    let what = if let Some(n) = number("minLength(") {
        format!("must have at least {n} characters")
    } else if let Some(n) = number("maxLength(") {
        format!("must have at most {n} characters")
    } else if rule.starts_with("pattern(") {
        "has an invalid format (see the schema)".to_owned()
    } else {
        return None;
    };
    Some(format!("{field} {what}"))
}

/// Turns every error or non-JSON error response into the contract's JSON body. Responses that
/// already carry JSON (the operations' own) pass untouched.
pub async fn json_errors<E: Endpoint>(next: E, req: Request, allowed: &AllowedMethods) -> Response {
    let uri = req.uri().clone();
    let mut detail = None;
    let resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => {
            if err.status().is_server_error() {
                tracing::error!(status = %err.status(), error = %err, "request failed");
            } else {
                tracing::debug!(status = %err.status(), "request refused");
            }
            detail = err
                .downcast_ref::<ParseRequestPayloadError>()
                .and_then(|e| validation_message(&e.reason));
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
        if let Some(message) = detail {
            let (code, _) = for_status(resp.status());
            fresh = ErrorBody::new(code, &message)
                .with_status(resp.status())
                .into_response();
        }
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            if let Some(allow) = allowed.for_path(uri.path()) {
                fresh.headers_mut().insert(header::ALLOW, allow.clone());
            }
        }
        return fresh;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_failures_name_field_and_rule_only() {
        let reason = r#"failed to parse "RegisterRequest": field `password` verification failed. minLength(8)"#;
        assert_eq!(
            validation_message(reason).as_deref(),
            Some("password must have at least 8 characters")
        );
        let reason =
            r#"failed to parse "LoginRequest": field `email` verification failed. pattern("^x$")"#;
        assert_eq!(
            validation_message(reason).as_deref(),
            Some("email has an invalid format (see the schema)")
        );
        assert_eq!(
            validation_message("expected value at line 1 column 1"),
            None
        );
    }

    #[test]
    fn allow_lists_the_methods_of_a_path() {
        let allowed =
            AllowedMethods::from_spec(r#"{"paths":{"/a":{"post":{}},"/b":{"get":{},"put":{}}}}"#);
        assert_eq!(allowed.for_path("/a").unwrap(), "POST");
        assert_eq!(allowed.for_path("/b").unwrap(), "GET, PUT");
        assert!(allowed.for_path("/c").is_none());
    }
}

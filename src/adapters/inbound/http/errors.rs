//! The one error body of the contract, and the catch-all that gives every framework error
//! (bad JSON, wrong content type, unknown path, wrong method, oversized body) that body too.

use std::collections::HashMap;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::payload::Json;
use poem_openapi::Object;

use super::json_string::NOT_A_STRING;

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

/// One entry of the contract's table of errors: a fixed code and its fixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: &'static str,
}

impl ApiError {
    pub(super) const fn new(code: &'static str, message: &'static str) -> Self {
        Self { code, message }
    }

    /// The body with the table's message.
    pub fn body(self) -> Json<ErrorBody> {
        ErrorBody::new(self.code, self.message)
    }

    /// The body with a more precise message (a domain rule's), under the same code.
    pub fn body_with(self, message: &str) -> Json<ErrorBody> {
        ErrorBody::new(self.code, message)
    }
}

// The table. Every body the service sends takes its code and message from here.
pub const INVALID_REQUEST: ApiError = ApiError::new(
    "invalid_request",
    "The request is malformed: check the JSON body and its fields.",
);
/// Any other 4xx the framework produces.
pub const UNPROCESSABLE: ApiError =
    ApiError::new("invalid_request", "The request could not be processed.");
pub const INVALID_TOKEN: ApiError =
    ApiError::new("invalid_token", "A valid access token is required.");
pub const INVALID_CREDENTIALS: ApiError =
    ApiError::new("invalid_credentials", "Invalid email or password.");
/// Login with the right password of an account whose email is not verified, while
/// `REQUIRE_EMAIL_VERIFICATION` is on.
pub const EMAIL_NOT_VERIFIED: ApiError = ApiError::new(
    "email_not_verified",
    "Verify your email address first: follow the link mailed to it.",
);
pub const INVALID_REFRESH_TOKEN: ApiError = ApiError::new(
    "invalid_refresh_token",
    "The refresh token is missing, expired or revoked.",
);
pub const FORBIDDEN_ORIGIN: ApiError =
    ApiError::new("forbidden_origin", "Cross-site requests are not allowed.");
pub const NOT_FOUND: ApiError = ApiError::new("not_found", "No such resource.");
pub const METHOD_NOT_ALLOWED: ApiError = ApiError::new(
    "method_not_allowed",
    "This method is not allowed on this resource.",
);
pub const MISDIRECTED_REQUEST: ApiError = ApiError::new(
    "misdirected_request",
    "This server does not answer for the requested host.",
);
pub const EMAIL_TAKEN: ApiError =
    ApiError::new("email_taken", "An account with this email already exists.");
pub const REQUEST_TIMEOUT: ApiError = ApiError::new(
    "request_timeout",
    "The request body did not arrive in time.",
);
pub const LENGTH_REQUIRED: ApiError =
    ApiError::new("length_required", "A request body needs a length.");
pub const PAYLOAD_TOO_LARGE: ApiError =
    ApiError::new("payload_too_large", "The request body is too large.");
pub const UNSUPPORTED_MEDIA_TYPE: ApiError = ApiError::new(
    "unsupported_media_type",
    "The request body must be JSON (Content-Type: application/json).",
);
pub const TOO_MANY_REQUESTS: ApiError = ApiError::new(
    "too_many_requests",
    "Too many attempts; retry after Retry-After seconds.",
);
pub const HEADERS_TOO_LARGE: ApiError = ApiError::new(
    "request_header_fields_too_large",
    "The request headers are too large.",
);
pub const INTERNAL_ERROR: ApiError = ApiError::new("internal_error", "An internal error occurred.");
pub const UNAVAILABLE: ApiError = ApiError::new(
    "unavailable",
    "The service is temporarily unavailable; retry later.",
);

/// `WWW-Authenticate` for a refused bearer token (RFC 6750 §3).
pub const BEARER_CHALLENGE: &str = r#"Bearer error="invalid_token""#;

/// The table's entry for a status the framework (or a guard) produced.
pub fn for_status(status: StatusCode) -> ApiError {
    match status.as_u16() {
        400 => INVALID_REQUEST,
        401 => INVALID_TOKEN,
        403 => FORBIDDEN_ORIGIN,
        404 => NOT_FOUND,
        405 => METHOD_NOT_ALLOWED,
        408 => REQUEST_TIMEOUT,
        411 => LENGTH_REQUIRED,
        413 => PAYLOAD_TOO_LARGE,
        415 => UNSUPPORTED_MEDIA_TYPE,
        421 => MISDIRECTED_REQUEST,
        429 => TOO_MANY_REQUESTS,
        431 => HEADERS_TOO_LARGE,
        503 => UNAVAILABLE,
        s if s < 500 => UNPROCESSABLE,
        _ => INTERNAL_ERROR,
    }
}

/// A JSON error response for `status`.
pub fn response(status: StatusCode) -> Response {
    let mut resp = for_status(status).body().into_response();
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

    /// The methods of the spec path `path` matches, a `{param}` segment matching any one
    /// segment (`/auth/sessions/{id}`).
    fn for_path(&self, path: &str) -> Option<&HeaderValue> {
        self.0.get(path).or_else(|| {
            self.0
                .iter()
                .find(|(template, _)| matches_template(template, path))
                .map(|(_, methods)| methods)
        })
    }
}

pub(super) fn matches_template(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) => {
                let param = want.starts_with('{') && want.ends_with('}');
                if !(want == got || (param && !got.is_empty())) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A human message for a failed schema validator, naming the field and the rule but never
/// the value (poem-openapi says e.g. ``field `password` verification failed. minLength(8)``).
fn validation_message(reason: &str) -> Option<String> {
    let field = reason.split("field `").nth(1)?.split('`').next()?;
    if reason.contains(&format!("field `{field}` {NOT_A_STRING}")) {
        return Some(format!("{field} {NOT_A_STRING}"));
    }
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
            fresh = for_status(resp.status())
                .body_with(&message)
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
        let reason = r#"failed to parse "string": field `email` must be a string (occurred while parsing "LoginRequest")"#;
        assert_eq!(
            validation_message(reason).as_deref(),
            Some("email must be a string")
        );
    }

    #[test]
    fn framework_statuses_take_the_table_entries() {
        assert_eq!(for_status(StatusCode::TOO_MANY_REQUESTS), TOO_MANY_REQUESTS);
        // One 429 message for every throttled operation (login and sign-up alike).
        assert_eq!(
            TOO_MANY_REQUESTS.message,
            "Too many attempts; retry after Retry-After seconds."
        );
        assert_eq!(for_status(StatusCode::UNAUTHORIZED), INVALID_TOKEN);
        assert_eq!(for_status(StatusCode::IM_A_TEAPOT), UNPROCESSABLE);
        assert_eq!(for_status(StatusCode::BAD_GATEWAY), INTERNAL_ERROR);
        assert_eq!(for_status(StatusCode::SERVICE_UNAVAILABLE), UNAVAILABLE);
        assert_eq!(for_status(StatusCode::REQUEST_TIMEOUT), REQUEST_TIMEOUT);
        assert_eq!(
            for_status(StatusCode::MISDIRECTED_REQUEST),
            MISDIRECTED_REQUEST
        );
    }

    #[test]
    fn allow_lists_the_methods_of_a_path() {
        let allowed =
            AllowedMethods::from_spec(r#"{"paths":{"/a":{"post":{}},"/b":{"get":{},"put":{}}}}"#);
        assert_eq!(allowed.for_path("/a").unwrap(), "POST");
        assert_eq!(allowed.for_path("/b").unwrap(), "GET, PUT");
        assert!(allowed.for_path("/c").is_none());
        let templated =
            AllowedMethods::from_spec(r#"{"paths":{"/s":{"get":{}},"/s/{id}":{"delete":{}}}}"#);
        assert_eq!(templated.for_path("/s/1234").unwrap(), "DELETE");
        assert!(templated.for_path("/s/").is_none());
        assert!(templated.for_path("/s/1/x").is_none());
    }
}

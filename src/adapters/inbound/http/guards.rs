//! The one middleware around every request: cross-site refusal, body limit, the contract's
//! JSON errors, CORS for the allow-list, and the security headers. One layer instead of five
//! keeps the per-request future small (a profile showed the nested layers' moves).

use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result};

use super::errors::{self, AllowedMethods};
use super::unique_keys;
use super::{AppState, HttpSettings};

/// `Retry-After` on a 503: a full hashing queue drains in about one hash time per thread.
const RETRY_UNAVAILABLE_SECS: &str = "1";

/// `Origin` equals our own origin: the configured public URL, or the `Host` the client used
/// (already checked to be one of ours by `edge`).
fn same_origin(origin: &str, req: &Request, public_url: Option<&str>) -> bool {
    if public_url.is_some_and(|url| url.trim_end_matches('/') == origin) {
        return true;
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// A POST or DELETE to `/auth/*` that a browser marks as cross-site, or whose `Origin` is
/// neither ours nor allow-listed (API.md "Cross-site requests"). Every method that changes
/// something, whether it is authenticated by the cookie or by a bearer token.
fn is_cross_site_auth_post(req: &Request, settings: &HttpSettings) -> bool {
    let changes = matches!(*req.method(), Method::POST | Method::DELETE);
    if !changes || !req.uri().path().starts_with("/auth/") {
        return false;
    }
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    let cross_fetch = fetch_site.is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    let bad_origin = req.headers().get(header::ORIGIN).is_some_and(|o| {
        let origin = o.to_str().unwrap_or("");
        !same_origin(origin, req, settings.public_url.as_deref())
            && !settings.allowed_origins.iter().any(|a| a == origin)
    });
    cross_fetch || bad_origin
}

/// Reads at most `limit` bytes of the body within `timeout`, whatever `Content-Length` says or
/// whether it is chunked; `Err` is the response to give instead (408, and the connection
/// closed, for a body that does not arrive in time). An empty body (a GET's) is left alone, so
/// no timer is armed for it.
async fn limit_body(
    req: &mut Request,
    limit: usize,
    timeout: Duration,
) -> std::result::Result<(), Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(errors::response(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let body = req.take_body();
    if body.is_empty() {
        req.set_body(body);
        return Ok(());
    }
    let Ok(read) = tokio::time::timeout(timeout, body.into_bytes_limit(limit)).await else {
        tracing::info!(
            event = "body_timeout",
            "request body did not arrive in time"
        );
        let mut resp = errors::response(StatusCode::REQUEST_TIMEOUT);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(resp);
    };
    match read {
        Ok(bytes) => {
            if is_json(req) && unique_keys::has_duplicate_keys(&bytes) {
                return Err(errors::INVALID_REQUEST
                    .body_with("a JSON object repeats a key")
                    .with_status(StatusCode::BAD_REQUEST)
                    .into_response());
            }
            req.set_body(bytes);
            Ok(())
        }
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            Err(errors::response(StatusCode::PAYLOAD_TOO_LARGE))
        }
        Err(_) => Err(errors::response(StatusCode::BAD_REQUEST)),
    }
}

fn is_json(req: &Request) -> bool {
    req.content_type()
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"))
}

/// The CORS preflight answer for an allow-listed origin.
fn preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

/// Everything around a request, in order: a `Host` that is not ours (421), CORS preflight,
/// cross-site refusal, body limit, the operation (its errors turned into the contract's JSON),
/// CORS answer headers for the allow-list only (an origin is never reflected otherwise),
/// `Cache-Control: no-store` on the token and health endpoints and `nosniff` everywhere.
pub async fn edge<E: Endpoint>(
    next: E,
    mut req: Request,
    state: &Arc<AppState>,
    allowed: &AllowedMethods,
) -> Result<Response> {
    let settings = &state.settings;
    let path = req.uri().path();
    let no_store = path.starts_with("/auth/")
        || path.starts_with("/health/")
        // A cached feed would delay revocations.
        || path == "/revocations";
    let cors_origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| settings.allowed_origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let is_preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);

    let mut resp = if !settings.allowed_hosts.permits_request(&req) {
        tracing::info!(
            event = "host_refused",
            path = req.uri().path(),
            "request for another host refused"
        );
        errors::response(StatusCode::MISDIRECTED_REQUEST)
    } else if cors_origin.is_some() && is_preflight {
        preflight()
    } else if is_cross_site_auth_post(&req, settings) {
        tracing::info!(
            event = "cross_site_refused",
            path = req.uri().path(),
            "cross-site request refused"
        );
        errors::response(StatusCode::FORBIDDEN)
    } else {
        match limit_body(
            &mut req,
            settings.max_body_bytes,
            settings.body_read_timeout,
        )
        .await
        {
            Ok(()) => {
                req.set_data(state.clone());
                errors::json_errors(next, req, allowed).await
            }
            Err(refusal) => refusal,
        }
    };

    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        // Every 503 is retryable (a store down, the hashing queue full): say when.
        resp.headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static(RETRY_UNAVAILABLE_SECS));
    }
    let h = resp.headers_mut();
    if let Some(origin) = cors_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if no_store {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

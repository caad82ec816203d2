//! Middleware around every request: cross-site refusal, body limit, CORS for the allow-list,
//! and the security headers of the contract.

use std::sync::Arc;

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result};

use super::errors;
use super::AppState;

fn state(req: &Request) -> Arc<AppState> {
    req.data::<Arc<AppState>>()
        .cloned()
        .expect("AppState is attached in build_app")
}

fn is_auth_post(req: &Request) -> bool {
    req.method() == Method::POST && req.uri().path().starts_with("/auth/")
}

/// `Origin` equals our own origin: the configured public URL, or the `Host` the client used.
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

/// Refuses, before any work, a POST to `/auth/*` that a browser marks as cross-site, or whose
/// `Origin` is neither ours nor allow-listed (API.md "Cross-site requests").
pub async fn cross_site<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    if is_auth_post(&req) {
        let st = state(&req);
        let fetch_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok());
        let cross_fetch = fetch_site.is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
        let bad_origin = req.headers().get(header::ORIGIN).is_some_and(|o| {
            let origin = o.to_str().unwrap_or("");
            !same_origin(origin, &req, st.settings.public_url.as_deref())
                && !st.settings.allowed_origins.iter().any(|a| a == origin)
        });
        if cross_fetch || bad_origin {
            tracing::info!(
                event = "cross_site_refused",
                path = req.uri().path(),
                "cross-site POST refused"
            );
            return Ok(errors::response(StatusCode::FORBIDDEN));
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Reads at most `max_body_bytes` of any body, whatever `Content-Length` says or whether the
/// body is chunked, and answers 413 past that before anything parses it.
pub async fn body_limit<E: Endpoint>(next: E, mut req: Request) -> Result<Response> {
    let limit = state(&req).settings.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(errors::response(StatusCode::PAYLOAD_TOO_LARGE));
    }
    match req.take_body().into_bytes_limit(limit).await {
        Ok(bytes) => req.set_body(bytes),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return Ok(errors::response(StatusCode::PAYLOAD_TOO_LARGE));
        }
        Err(_) => return Ok(errors::response(StatusCode::BAD_REQUEST)),
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// CORS with credentials for the configured origins only; every other origin gets no
/// `Access-Control-Allow-Origin` at all.
pub async fn cors<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let st = state(&req);
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| st.settings.allowed_origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = allowed else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
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
    } else {
        next.call(req).await?.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(resp)
}

/// `Cache-Control: no-store` on the token and health endpoints, `nosniff` everywhere.
pub async fn security_headers<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let path = req.uri().path();
    let no_store = path.starts_with("/auth/") || path.starts_with("/health/");
    let mut resp = next.call(req).await?.into_response();
    let h = resp.headers_mut();
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

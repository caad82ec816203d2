//! The responses of each operation as the spec documents them, and the one mapping of an
//! infrastructure failure onto them.

use poem_openapi::payload::Json;
use poem_openapi::ApiResponse;

use super::dto::{HealthBody, SessionsBody, TokenBody, UserBody};
use super::errors::{ErrorBody, INTERNAL_ERROR, UNAVAILABLE};
use crate::domain::InfraError;
use crate::ports::HasherBusy;

#[derive(ApiResponse)]
pub enum TokenResponse {
    /// Tokens issued; `Set-Cookie` carries the (new) refresh token.
    #[oai(status = 200)]
    Ok(Json<TokenBody>, #[oai(header = "Set-Cookie")] String),
    /// Malformed JSON, missing or mistyped fields, or a field over its limit.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `invalid_credentials` (login) or `invalid_refresh_token` (refresh; the cookie is cleared).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
    /// `forbidden_origin`: a cross-site request. `email_not_verified` (login, with
    /// `REQUIRE_EMAIL_VERIFICATION` on): the password is right but the account's email is not
    /// verified; no session was opened.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `request_timeout`: the declared body did not arrive in time; the connection is closed.
    #[oai(status = 408)]
    Timeout(Json<ErrorBody>),
    /// `payload_too_large`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: the body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `too_many_requests`: wait `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a backing store is down, or (login) the password hashing queue is full;
    /// nothing changed. Retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// Sessions ended as the scope says (if the cookie named a live one). The cookie is
    /// cleared, except with `scope=others`, whose session stays.
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] Option<String>),
    /// `invalid_request`: an unknown `scope`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `request_timeout`: the declared body did not arrive in time; the connection is closed.
    #[oai(status = 408)]
    Timeout(Json<ErrorBody>),
    /// `payload_too_large`: a body over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: a body that is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: the session store is down; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum MeResponse {
    /// The user the access token was issued to.
    #[oai(status = 200)]
    Ok(Json<UserBody>),
    /// `invalid_token`, with `WWW-Authenticate: Bearer error="invalid_token"`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// `payload_too_large`: a body over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a store is down; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum SessionsResponse {
    /// The caller's live sessions, most recently used first; `current` marks the caller's.
    #[oai(status = 200)]
    Ok(Json<SessionsBody>),
    /// `invalid_token`, with `WWW-Authenticate: Bearer error="invalid_token"`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// `payload_too_large`: a body over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a store is down; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum EndSessionResponse {
    /// The session is ended: its refresh token is refused and its access tokens stop at
    /// `/auth/me` at once.
    #[oai(status = 204)]
    NoContent,
    /// `invalid_token`, with `WWW-Authenticate: Bearer error="invalid_token"`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `not_found`: no live session of the caller has this id (someone else's, an ended one
    /// and an unknown one alike).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `request_timeout`: the declared body did not arrive in time; the connection is closed.
    #[oai(status = 408)]
    Timeout(Json<ErrorBody>),
    /// `payload_too_large`: a body over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a store is down; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Account created.
    #[oai(status = 201)]
    Created(Json<UserBody>),
    /// Malformed body, invalid email, or a password that breaks the policy (the message says
    /// which rule).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `not_found`: registration is turned off.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `email_taken`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `request_timeout`: the declared body did not arrive in time; the connection is closed.
    #[oai(status = 408)]
    Timeout(Json<ErrorBody>),
    /// `payload_too_large`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `too_many_requests`: too many sign-ups from this client; wait `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: the store is down or the password hashing queue is full (the answer is
    /// immediate); nothing is created. Retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names (answered by the
    /// edge before the operation runs).
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    #[oai(status = 503)]
    Unavailable(Json<HealthBody>),
}

/// A response that can say "a backing store is down" (503) and "something broke" (500).
pub trait InfraFailure {
    fn unavailable(body: Json<ErrorBody>) -> Self;
    fn internal(body: Json<ErrorBody>) -> Self;
}

/// The one place an infrastructure failure becomes a response: the detail goes to the log,
/// the client gets the table's fixed body.
pub fn infra_failure<R: InfraFailure>(operation: &str, e: InfraError) -> R {
    match e {
        InfraError::Unavailable(e) if e.is::<HasherBusy>() => {
            tracing::info!(
                event = "hash_queue_full",
                "{operation} refused: hashing queue full"
            );
            R::unavailable(UNAVAILABLE.body())
        }
        InfraError::Unavailable(e) => {
            tracing::warn!(error = %e, "store unavailable during {operation}");
            R::unavailable(UNAVAILABLE.body())
        }
        InfraError::Unknown(e) => {
            tracing::error!(error = %e, "{operation} failed");
            R::internal(INTERNAL_ERROR.body())
        }
    }
}

macro_rules! infra_failure_responses {
    ($($response:ident),*) => {$(
        impl InfraFailure for $response {
            fn unavailable(body: Json<ErrorBody>) -> Self {
                Self::Unavailable(body)
            }

            fn internal(body: Json<ErrorBody>) -> Self {
                Self::Internal(body)
            }
        }
    )*};
}

infra_failure_responses!(
    TokenResponse,
    LogoutResponse,
    MeResponse,
    SessionsResponse,
    EndSessionResponse,
    RegisterResponse
);

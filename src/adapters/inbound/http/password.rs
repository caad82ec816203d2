//! `POST /auth/password`: the caller changes their own password.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Cookie;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::{bearer_or_refusal, bearer_refused, client_address, user_agent};
use super::bearer::BearerAuth;
use super::errors::{
    ErrorBody, BEARER_CHALLENGE, INVALID_CREDENTIALS, INVALID_REQUEST, INVALID_TOKEN,
    TOO_MANY_REQUESTS,
};
use super::json_string::{FieldName, JsonString};
use super::responses::{infra_failure, InfraFailure};
use super::{cookie, AppState, Tag};
use crate::app::ChangePasswordCommand;
use crate::domain::{ChangePasswordError, Password};

pub enum CurrentPasswordField {}
pub enum NewPasswordField {}

impl FieldName for CurrentPasswordField {
    const NAME: &'static str = "current_password";
    const SECRET: bool = true;
}

impl FieldName for NewPasswordField {
    const NAME: &'static str = "new_password";
    const SECRET: bool = true;
}

/// A password change. As in every request body, other fields are ignored (the schema allows
/// them): a confirmation field, if a client sends one, is not checked here.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ChangePasswordRequest {
    /// The account's password now, 1 to 1024 characters, compared exactly as sent.
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub current_password: JsonString<CurrentPasswordField>,
    /// The new password: as at registration, at least 8 and at most 1024 characters, any of
    /// them; every character counts.
    #[oai(validator(min_length = 8, max_length = 1024))]
    pub new_password: JsonString<NewPasswordField>,
}

impl Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            // Not the demo account's password: a generated test run that replays the example
            // must not change it.
            current_password: "the current passphrase".into(),
            new_password: "a new long passphrase".into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum ChangePasswordResponse {
    /// Changed. Every other session of the account is ended (its refresh token refused, its
    /// access tokens refused at `/auth/me` at once, listed on `/revocations`); this one stays.
    /// With the request's refresh cookie, `Set-Cookie` carries its rotated successor; without
    /// one, no `Set-Cookie` (the access token is the credential; the session's cookie, if it
    /// has one elsewhere, keeps working).
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] Option<String>),
    /// `invalid_request`: malformed JSON, a missing or mistyped field, or a new password that
    /// breaks the rules (the message says which).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `invalid_token` (with `WWW-Authenticate`): no valid access token of a live session of
    /// an enabled account. `invalid_credentials`: the current password is wrong (counted by
    /// the login throttle as a failed login), or another change replaced it meanwhile.
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    /// `forbidden_origin`: a cross-site request.
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
    /// `too_many_requests`: the login throttle holds this account and client back; wait
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a store is down or the password hashing queue is full; nothing changed.
    /// Retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl InfraFailure for ChangePasswordResponse {
    fn unavailable(body: Json<ErrorBody>) -> Self {
        Self::Unavailable(body)
    }

    fn internal(body: Json<ErrorBody>) -> Self {
        Self::Internal(body)
    }
}

pub struct PasswordApi;

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl PasswordApi {
    /// Change my password
    ///
    /// Checks the current password (under the login throttle: a wrong one counts as a failed
    /// login) and stores the new one, which follows the registration rules. Every other
    /// session of the account ends at once; this one stays. Send the `refresh_token` cookie
    /// too to get it rotated.
    #[oai(path = "/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        _scheme: BearerAuth,
        #[oai(name = "refresh_token")] refresh_cookie: Cookie<Option<String>>,
        body: Json<ChangePasswordRequest>,
    ) -> ChangePasswordResponse {
        let refused = || {
            ChangePasswordResponse::Unauthorized(
                INVALID_TOKEN.body(),
                Some(BEARER_CHALLENGE.to_owned()),
            )
        };
        let Some(bearer) = bearer_or_refusal(req) else {
            return refused();
        };
        let body = body.0;
        let (current, new) = match (
            Password::parse(body.current_password.into_inner()),
            Password::parse_new(body.new_password.into_inner()),
        ) {
            (Ok(c), Ok(n)) => (c, n),
            (Err(why), _) => {
                let why = why.replacen("password", "current_password", 1);
                return ChangePasswordResponse::BadRequest(INVALID_REQUEST.body_with(&why));
            }
            (_, Err(why)) => {
                let why = why.replacen("password", "new_password", 1);
                return ChangePasswordResponse::BadRequest(INVALID_REQUEST.body_with(&why));
            }
        };
        let cmd = ChangePasswordCommand {
            bearer,
            current,
            new,
            cookie: cookie::presented(req.headers(), &refresh_cookie),
            client: client_address(state, req),
            user_agent: user_agent(req),
        };
        match state.change_password.execute(cmd).await {
            Ok(changed) => ChangePasswordResponse::NoContent(changed.rotated.map(|tokens| {
                let max_age = state.clock.now().secs_until(tokens.session_expires_at);
                cookie::set(&tokens.refresh_token, max_age, state.settings.cookie_secure)
            })),
            Err(ChangePasswordError::InvalidToken(reason)) => {
                bearer_refused(&reason);
                refused()
            }
            Err(ChangePasswordError::InvalidCredentials) => {
                ChangePasswordResponse::Unauthorized(INVALID_CREDENTIALS.body(), None)
            }
            Err(ChangePasswordError::Throttled { retry_after_secs }) => {
                ChangePasswordResponse::TooManyRequests(TOO_MANY_REQUESTS.body(), retry_after_secs)
            }
            Err(ChangePasswordError::Infra(e)) => infra_failure("change password", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::registry::Registry;
    use poem_openapi::types::Type;

    use super::*;
    use crate::domain::{MAX_PASSWORD_CHARS, MIN_NEW_PASSWORD_CHARS};

    #[test]
    fn schema_limits_are_the_domain_constants_and_secrets_stay_out_of_debug() {
        let mut registry = Registry::new();
        ChangePasswordRequest::register(&mut registry);
        let schema = serde_json::to_value(&registry.schemas["ChangePasswordRequest"]).unwrap();
        let props = &schema["properties"];
        assert_eq!(props["current_password"]["minLength"], 1);
        assert_eq!(props["current_password"]["maxLength"], MAX_PASSWORD_CHARS);
        assert_eq!(props["new_password"]["minLength"], MIN_NEW_PASSWORD_CHARS);
        assert_eq!(props["new_password"]["maxLength"], MAX_PASSWORD_CHARS);
        let body = ChangePasswordRequest {
            current_password: "canary-current".into(),
            new_password: "canary-new-password".into(),
        };
        let debug = format!("{body:?}");
        assert!(!debug.contains("canary"), "{debug}");
    }
}

//! `POST /auth/password/forgot` and `POST /auth/password/reset`: a forgotten password.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::{client_address, user_agent};
use super::errors::{ApiError, ErrorBody, INVALID_REQUEST};
use super::json_string::{FieldName, JsonString, LoginEmailField};
use super::password::NewPasswordField;
use super::responses::{infra_failure, InfraFailure};
use super::{AppState, Tag};
use crate::app::ResetPasswordError;
use crate::domain::{Email, Password, ResetToken};

/// The contract's `invalid_token`, with the reset's own message (and no `WWW-Authenticate`:
/// no bearer token is involved).
pub const INVALID_RESET_TOKEN: ApiError = ApiError::new(
    "invalid_token",
    "The reset token is invalid, expired or already used.",
);

pub enum ResetTokenField {}

impl FieldName for ResetTokenField {
    const NAME: &'static str = "token";
    const SECRET: bool = true;
}

/// A request for a reset link.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ForgotPasswordRequest {
    /// The account's email, at most 254 characters; letter case and surrounding spaces are
    /// ignored.
    #[oai(validator(max_length = 254))]
    pub email: JsonString<LoginEmailField>,
}

impl Example for ForgotPasswordRequest {
    fn example() -> Self {
        Self {
            email: "jywan@test.com".into(),
        }
    }
}

/// A reset with the mailed token.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ResetPasswordRequest {
    /// The token from the mailed link's fragment (`#token=`): 43 base64url characters.
    #[oai(validator(max_length = 1024))]
    pub token: JsonString<ResetTokenField>,
    /// The new password: as at registration, at least 8 and at most 1024 characters.
    #[oai(validator(min_length = 8, max_length = 1024))]
    pub new_password: JsonString<NewPasswordField>,
}

impl Example for ResetPasswordRequest {
    fn example() -> Self {
        Self {
            token: "the-token-from-the-mailed-link-fragment-000".into(),
            new_password: "a new long passphrase".into(),
        }
    }
}

/// The one body a request for a mailed link (a reset, a new verification) answers with.
#[derive(Debug, Object)]
pub struct ForgotPasswordAccepted {
    /// Always `accepted`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum ForgotPasswordResponse {
    /// Accepted, whatever the address: if it is an enabled account's, a reset link is mailed
    /// to it (unless the per-address or per-client rate is spent).
    #[oai(status = 202)]
    Accepted(Json<ForgotPasswordAccepted>),
    /// `invalid_request`: malformed JSON, a missing field, or not an email address.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `payload_too_large`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: the body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum ResetPasswordResponse {
    /// The password is reset; every session of the account has ended.
    #[oai(status = 204)]
    NoContent,
    /// `invalid_request`: malformed JSON, a missing field or a new password that breaks the
    /// rules (the token is then not used up).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `invalid_token`: the token is malformed, unknown, expired, already used or voided by a
    /// newer one. A credential refused, as a refresh token is: 401, not a malformed request.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `payload_too_large`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: the body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a store is down or the hashing queue is full.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl InfraFailure for ResetPasswordResponse {
    fn unavailable(body: Json<ErrorBody>) -> Self {
        Self::Unavailable(body)
    }

    fn internal(body: Json<ErrorBody>) -> Self {
        Self::Internal(body)
    }
}

pub struct ResetApi;

#[OpenApi(prefix_path = "/auth/password", tag = "Tag::Auth")]
impl ResetApi {
    /// Ask for a password-reset link
    ///
    /// Always 202 with the same body, in the same time, whatever the address: the lookup and
    /// the mail happen after the answer. An enabled account's address gets a link to
    /// `PASSWORD_RESET_URL#token=...`, usable once within `PASSWORD_RESET_EXPIRES_MIN`; a
    /// newer link voids the older ones.
    #[oai(path = "/forgot", method = "post", operation_id = "forgotPassword")]
    async fn forgot(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        body: Json<ForgotPasswordRequest>,
    ) -> ForgotPasswordResponse {
        let email = match Email::parse(body.email.as_str()) {
            Ok(email) => email,
            Err(why) => return ForgotPasswordResponse::BadRequest(INVALID_REQUEST.body_with(why)),
        };
        // The task is not awaited: the answer must not wait on the lookup or the mail.
        let _ = state
            .forgot_password
            .execute(email, client_address(state, req), user_agent(req));
        ForgotPasswordResponse::Accepted(Json(ForgotPasswordAccepted {
            status: "accepted".into(),
        }))
    }

    /// Reset the password with a mailed token
    ///
    /// The new password follows the registration rules (checked before the token is used).
    /// The token works once; every session of the account ends (refresh refused, access
    /// tokens refused at `/auth/me`, listed on `/revocations`).
    #[oai(path = "/reset", method = "post", operation_id = "resetPassword")]
    async fn reset(
        &self,
        Data(state): Data<&Arc<AppState>>,
        body: Json<ResetPasswordRequest>,
    ) -> ResetPasswordResponse {
        let body = body.0;
        let new = match Password::parse_new(body.new_password.into_inner()) {
            Ok(p) => p,
            Err(why) => {
                let why = why.replacen("password", "new_password", 1);
                return ResetPasswordResponse::BadRequest(INVALID_REQUEST.body_with(&why));
            }
        };
        let Some(token) = ResetToken::parse(body.token.as_str()) else {
            return ResetPasswordResponse::Unauthorized(INVALID_RESET_TOKEN.body());
        };
        match state.reset_password.execute(token, new).await {
            Ok(()) => ResetPasswordResponse::NoContent,
            Err(ResetPasswordError::InvalidToken) => {
                ResetPasswordResponse::Unauthorized(INVALID_RESET_TOKEN.body())
            }
            Err(ResetPasswordError::Infra(e)) => infra_failure("reset password", e),
        }
    }
}

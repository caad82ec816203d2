//! `POST /auth/verify-email` and `POST /auth/verify-email/resend`: proving an account's address.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::{client_address, user_agent};
use super::errors::{ApiError, ErrorBody, INVALID_REQUEST};
use super::json_string::{FieldName, JsonString, LoginEmailField};
use super::reset::ForgotPasswordAccepted;
use super::responses::{infra_failure, InfraFailure};
use super::{AppState, Tag};
use crate::app::VerifyEmailError;
use crate::domain::{Email, ResetToken};

/// The contract's `invalid_token`, with the verification's own message (and no
/// `WWW-Authenticate`: no bearer token is involved).
pub const INVALID_VERIFICATION_TOKEN: ApiError = ApiError::new(
    "invalid_token",
    "The verification token is invalid, expired or already used.",
);

pub enum VerificationTokenField {}

impl FieldName for VerificationTokenField {
    const NAME: &'static str = "token";
    const SECRET: bool = true;
}

/// A verification with the mailed token.
#[derive(Debug, Object)]
#[oai(example)]
pub struct VerifyEmailRequest {
    /// The token from the mailed link's fragment (`#token=`): 43 base64url characters.
    #[oai(validator(max_length = 1024))]
    pub token: JsonString<VerificationTokenField>,
}

impl Example for VerifyEmailRequest {
    fn example() -> Self {
        Self {
            token: "the-token-from-the-mailed-link-fragment-000".into(),
        }
    }
}

/// A request for a new verification link.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ResendVerificationRequest {
    /// The account's email, at most 254 characters; letter case and surrounding spaces are
    /// ignored.
    #[oai(validator(max_length = 254))]
    pub email: JsonString<LoginEmailField>,
}

impl Example for ResendVerificationRequest {
    fn example() -> Self {
        Self {
            email: "jywan@test.com".into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum VerifyEmailResponse {
    /// The account's email is verified.
    #[oai(status = 204)]
    NoContent,
    /// `invalid_request`: malformed JSON, a missing or mistyped field, or a token over 1024
    /// characters.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `invalid_token`: the token is malformed, unknown, expired, already used or voided by a
    /// newer one, or its account is disabled. A credential refused: 401, not a malformed
    /// request.
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
    /// `unavailable`: a store is down.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl InfraFailure for VerifyEmailResponse {
    fn unavailable(body: Json<ErrorBody>) -> Self {
        Self::Unavailable(body)
    }

    fn internal(body: Json<ErrorBody>) -> Self {
        Self::Internal(body)
    }
}

#[derive(ApiResponse)]
pub enum ResendVerificationResponse {
    /// Accepted, whatever the address: if it is an enabled, unverified account's, a new link
    /// is mailed to it (unless the per-address or per-client rate is spent).
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

pub struct VerifyApi;

#[OpenApi(prefix_path = "/auth/verify-email", tag = "Tag::Auth")]
impl VerifyApi {
    /// Verify my email with a mailed token
    ///
    /// Sign-ups get a link to `EMAIL_VERIFICATION_URL#token=...`, usable once within
    /// `EMAIL_VERIFICATION_EXPIRES_HOURS`; a newer link voids the older ones. Using it marks
    /// the account's email verified (`email_verified` on `/auth/me`).
    #[oai(path = "/", method = "post", operation_id = "verifyEmail")]
    async fn verify(
        &self,
        Data(state): Data<&Arc<AppState>>,
        body: Json<VerifyEmailRequest>,
    ) -> VerifyEmailResponse {
        let Some(token) = ResetToken::parse(body.token.as_str()) else {
            return VerifyEmailResponse::Unauthorized(INVALID_VERIFICATION_TOKEN.body());
        };
        match state.email_verification.verify(token).await {
            Ok(()) => VerifyEmailResponse::NoContent,
            Err(VerifyEmailError::InvalidToken) => {
                VerifyEmailResponse::Unauthorized(INVALID_VERIFICATION_TOKEN.body())
            }
            Err(VerifyEmailError::Infra(e)) => infra_failure("verify email", e),
        }
    }

    /// Ask for a new verification link
    ///
    /// Always 202 with the same body, in the same time, whatever the address: the lookup and
    /// the mail happen after the answer, and only an enabled account whose email is not yet
    /// verified gets a mail. Held to the forgot-password rate, shared with it.
    #[oai(path = "/resend", method = "post", operation_id = "resendVerification")]
    async fn resend(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        body: Json<ResendVerificationRequest>,
    ) -> ResendVerificationResponse {
        let email = match Email::parse(body.email.as_str()) {
            Ok(email) => email,
            Err(why) => {
                return ResendVerificationResponse::BadRequest(INVALID_REQUEST.body_with(why))
            }
        };
        // The task is not awaited: the answer must not wait on the lookup or the mail.
        let _ = state
            .email_verification
            .resend(email, client_address(state, req), user_agent(req));
        ResendVerificationResponse::Accepted(Json(ForgotPasswordAccepted {
            status: "accepted".into(),
        }))
    }
}

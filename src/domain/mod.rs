//! The vocabulary of the service: validated newtypes, records and per-use-case errors.
//!
//! Must never import a web framework, a JWT library, a database driver or bcrypt.

mod client;
mod errors;
mod ids;
mod secrets;
mod throttle;
mod time;
mod user;

pub use client::ClientAddress;
pub use errors::{
    InfraError, LoginError, LogoutError, MeError, RefreshError, RegisterError, SetDisabledError,
};
pub use ids::{SessionId, UserId};
pub use secrets::{
    AccessToken, Password, PasswordHash, RefreshToken, RefreshTokenHash, MAX_PASSWORD_CHARS,
    MIN_NEW_PASSWORD_CHARS,
};
pub use throttle::{FailureCount, MinuteRate, ThrottleDecision, ThrottleSettings};
pub use time::Timestamp;
pub use user::{Email, Session, User, LOGIN_EMAIL_PATTERN, MAX_EMAIL_CHARS, NEW_EMAIL_PATTERN};

/// Claims of an issued access token, as the domain sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: UserId,
    pub sid: SessionId,
    pub iat: Timestamp,
    pub exp: Timestamp,
    pub jti: uuid::Uuid,
}

/// What a successful login or refresh hands back to the caller.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: AccessToken,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    pub refresh_token: RefreshToken,
    /// The session's absolute end; rotation never moves it.
    pub session_expires_at: Timestamp,
}

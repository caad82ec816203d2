//! The vocabulary of the service: validated newtypes, records and per-use-case errors.
//!
//! Must never import a web framework, a JWT library, a database driver or bcrypt.

mod client;
mod errors;
mod events;
mod feed;
mod ids;
mod keys;
mod reset;
mod rotation;
mod secrets;
mod sessions;
mod signing;
mod throttle;
mod time;
mod user;

pub use client::ClientAddress;
pub use errors::{
    ChangePasswordError, InfraError, LoginError, LogoutError, MeError, RefreshError, RegisterError,
    SetDisabledError,
};
pub use events::{EventKind, RefreshOutcome, SecurityEvent};
pub use feed::{FeedPosition, CURSOR_SCALE, PLAIN_SECONDS_BELOW};
pub use ids::{SessionId, UserId};
pub use keys::{due_key_actions, KeyAction, KeyPolicy, KeyState, StoredKey, JWKS_MAX_AGE_SECS};
pub use reset::{ResetToken, ResetTokenHash};
pub use rotation::{
    judge_rotation, speaks_for_session, PresentedToken, RotationRefusal, RotationVerdict,
    KEPT_CONSUMED_TOKENS,
};
pub use secrets::{
    AccessToken, Password, PasswordHash, RefreshToken, RefreshTokenHash, MAX_PASSWORD_CHARS,
    MIN_NEW_PASSWORD_CHARS,
};
pub use sessions::{LogoutScope, SessionInfo, SessionOrigin, UserAgent, MAX_USER_AGENT_CHARS};
pub use signing::SigningAlgorithm;
pub use throttle::{
    Attempt, AttemptCounters, FailureCount, Lockout, MinuteRate, Reservation, ThrottleDecision,
    ThrottleSettings,
};
pub use time::Timestamp;
pub use user::{Email, Session, User, LOGIN_EMAIL_PATTERN, MAX_EMAIL_CHARS, NEW_EMAIL_PATTERN};

/// Claims of an issued access token, as the domain sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: UserId,
    pub sid: SessionId,
    pub iat: Timestamp,
    pub exp: Timestamp,
    /// Not before; this service never issues one, but honours it when present.
    pub nbf: Option<Timestamp>,
    pub jti: uuid::Uuid,
}

impl AccessClaims {
    /// The time rules of an access token at `now`, allowing `leeway_secs` of clock skew:
    /// expired from `exp` on (`exp == now` is expired), not valid before `nbf`, never issued
    /// in the future. Every verification runs this, a cached one too. The reason is for logs.
    ///
    /// # Errors
    /// The rule that failed.
    pub fn check_time(&self, now: Timestamp, leeway_secs: u64) -> Result<(), &'static str> {
        let late_now = now.plus_secs(leeway_secs);
        if now >= self.exp.plus_secs(leeway_secs) {
            return Err("expired");
        }
        if self.iat > late_now {
            return Err("issued in the future");
        }
        if self.nbf.is_some_and(|nbf| nbf > late_now) {
            return Err("not yet valid");
        }
        Ok(())
    }
}

/// What a successful login or refresh hands back to the caller.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: AccessToken,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    pub refresh_token: RefreshToken,
    /// When the session ends unless refreshed again: its absolute end, or its idle end if
    /// that is earlier. The cookie's `Max-Age` promises no more.
    pub session_expires_at: Timestamp,
}

//! One error enum per use case. The HTTP adapter maps each variant to one status and one fixed
//! `error` code; detail for operators goes to the logs, never to the client.

/// Why a login did not produce tokens.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed attempts for this account or client address.
    #[error("throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// A backing store could not be reached; nothing was written.
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why a refresh did not rotate the session.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Missing, unknown, expired, revoked or reused token; the reason is for the logs only.
    #[error("invalid refresh token ({0})")]
    InvalidRefreshToken(&'static str),
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Logout is idempotent: the only failures are infrastructure ones.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why `/auth/me` refused a bearer token.
#[derive(Debug, thiserror::Error)]
pub enum MeError {
    /// Bad, expired or revoked token, or its user is gone or disabled; the reason is for logs.
    #[error("invalid access token ({0})")]
    InvalidToken(String),
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("email already registered")]
    EmailTaken,
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why an account could not be disabled or enabled.
#[derive(Debug, thiserror::Error)]
pub enum SetDisabledError {
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

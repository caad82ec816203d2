//! One error enum per use case, each embedding the one infrastructure error. The HTTP adapter
//! maps each variant to one status and one fixed `error` code; detail for operators goes to
//! the logs, never to the client.

/// A port failed for a reason that is not the request's fault. Every use case can end this
/// way, so it is one type mapped in one place (503 or 500 at the edge).
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// A backing store could not be reached; nothing was written. Retryable.
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a store, the hasher or the signer failed unexpectedly.
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why a login did not produce tokens.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password is right but the account's email is not verified, and
    /// `REQUIRE_EMAIL_VERIFICATION` is on. Only ever after the password checked out.
    #[error("email not verified")]
    EmailNotVerified,
    /// Held back by the throttle (a locked account-and-client pair, or a slowed client or
    /// account).
    #[error("throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Why a refresh did not rotate the session.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Missing, unknown, expired, revoked or reused token; the reason is for the logs only.
    #[error("invalid refresh token ({0})")]
    InvalidRefreshToken(&'static str),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Logout is idempotent: the only failures are infrastructure ones.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Why `/auth/me` refused a bearer token.
#[derive(Debug, thiserror::Error)]
pub enum MeError {
    /// Bad, expired or revoked token, or its user is gone or disabled; the reason is for logs.
    #[error("invalid access token ({0})")]
    InvalidToken(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("email already registered")]
    EmailTaken,
    /// Too many sign-ups from this client address.
    #[error("throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Why an account could not be disabled or enabled.
#[derive(Debug, thiserror::Error)]
pub enum SetDisabledError {
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Why a password was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The bearer token is not a valid access token of a live session of an enabled account;
    /// the reason is for the logs.
    #[error("invalid access token ({0})")]
    InvalidToken(String),
    /// The current password is wrong, or it stopped being the account's while this change was
    /// checked (another change won).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Held back by the login throttle.
    #[error("throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

//! The driven ports: what the use cases need from the outside world, and nothing more.
//!
//! Each method's `# Errors` section is the contract every adapter is tested against
//! (`tests/api/contract.rs` runs the same cases on every adapter). Must never import a web
//! framework, a JWT library, a database driver or bcrypt.

use async_trait::async_trait;

use crate::domain::{
    AccessClaims, AccessToken, ClientAddress, Email, InfraError, Password, PasswordHash,
    RefreshTokenHash, RotationRefusal, Session, SessionId, ThrottleDecision, Timestamp, User,
    UserId,
};

/// A backing store failed; no partial write is left behind.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now (connection refused, pool timed out). Retryable.
    #[error("store unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why a new account was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh token could not be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// No live session holds this token: never issued, its session was revoked, or purged.
    #[error("unknown refresh token")]
    NotFound,
    /// The token was already consumed. Its whole session has been revoked by the call.
    #[error("refresh token reused; session revoked")]
    Reused,
    /// The session's absolute lifetime is over. The session has been revoked by the call.
    #[error("session expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The domain's refusal, as the port reports it (the use cases match on `RotateError`).
impl From<RotationRefusal> for RotateError {
    fn from(why: RotationRefusal) -> Self {
        match why {
            RotationRefusal::NotFound => Self::NotFound,
            RotationRefusal::Expired => Self::Expired,
            RotationRefusal::Reused => Self::Reused,
        }
    }
}

/// Token signing or verification failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The presented token is not a valid access token. The text is for logs only: it may
    /// name claims, never their values.
    #[error("invalid access token: {0}")]
    Invalid(String),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Hashing failed for a reason other than a wrong password.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HashError(pub anyhow::Error);

/// The hasher's queue is full: nothing was hashed and the caller may retry shortly. Carried
/// inside a `HashError`; the use cases see it as `InfraError::Unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("the password hashing queue is full")]
pub struct HasherBusy;

impl HashError {
    /// The full-queue refusal.
    pub fn busy() -> Self {
        Self(HasherBusy.into())
    }

    /// Whether this is the full-queue refusal.
    pub fn is_busy(&self) -> bool {
        self.0.is::<HasherBusy>()
    }
}

/// Where accounts live.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// The account with this (normalized) email, if any, disabled or not.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The account with this id, if any, disabled or not.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Stores a new account.
    ///
    /// # Errors
    /// `CreateUserError::EmailTaken` when an account has this email (case-insensitively);
    /// `CreateUserError::Store` when the store cannot be reached.
    async fn create(&self, user: User) -> Result<(), CreateUserError>;

    /// Marks the account disabled (or enabled again) and returns it; `None` if there is none.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn set_disabled(&self, email: &Email, disabled: bool)
        -> Result<Option<User>, StoreError>;

    /// Every account, oldest first.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn list(&self) -> Result<Vec<User>, StoreError>;

    /// Whether the store answers (for readiness); reads and changes nothing.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Password hashing, off the async executor.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// # Errors
    /// `HashError` when the hashing backend fails, or (`is_busy`) when its queue is full.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `password` matches `hash`. With `None` (no such user) it checks against a dummy
    /// hash of the same cost and returns `false`, so both paths take the same time.
    ///
    /// # Errors
    /// `HashError` when the backend fails or (`is_busy`) its queue is full; a malformed stored
    /// hash is `Ok(false)`.
    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError>;

    /// Whether `hash` was made under another policy (another cost or scheme) than new hashes
    /// get, so a login that verified against it should store a fresh one. Keeps every stored
    /// hash, and so the unknown-account dummy, at one cost. Pure: no hashing.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool;
}

/// Signs and verifies access tokens.
#[cfg_attr(test, mockall::automock)]
pub trait TokenIssuer: Send + Sync {
    /// # Errors
    /// `TokenError::Unknown` when signing fails.
    fn issue_access(&self, claims: &AccessClaims) -> Result<AccessToken, TokenError>;

    /// Verifies signature, algorithm, `typ` and every required claim against `now`.
    ///
    /// # Errors
    /// `TokenError::Invalid` for any token that is not a currently valid access token.
    fn verify_access(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError>;
}

/// Sessions (refresh-token families) and the hashes of their tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Stores a new session whose first (current) token hash is `first`.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing is stored then.
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
    ) -> Result<(), StoreError>;

    /// Atomically consumes `presented` and makes `successor` the session's current token.
    /// Of concurrent calls with one token, exactly one succeeds.
    ///
    /// # Errors
    /// `RotateError::NotFound` for a token no live session holds; `RotateError::Reused` for an
    /// already consumed token (the session is revoked, its newest token too);
    /// `RotateError::Expired` when `now` is at or past the session's end (the session is
    /// revoked); `RotateError::Store` when the store cannot be reached (nothing changes).
    async fn rotate(
        &self,
        presented: RefreshTokenHash,
        successor: RefreshTokenHash,
        now: Timestamp,
    ) -> Result<Session, RotateError>;

    /// Revokes the session that `presented` belongs to, whether it is current or consumed.
    /// Returns whether a session was revoked; an unknown token is `Ok(false)`.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn revoke_by_token(&self, presented: RefreshTokenHash) -> Result<bool, StoreError>;

    /// Revokes every session of the user; returns how many were live.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    /// Whether the session exists, is not revoked and has not reached its end at `now`.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn is_active(&self, session: SessionId, now: Timestamp) -> Result<bool, StoreError>;

    /// Forgets up to `limit` sessions that ended or were revoked before `now`, with their
    /// tokens; returns how many were removed. Bounded so one run has a bounded cost.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError>;

    /// Whether the store answers (for readiness); reads and changes nothing.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The time, from one place, so tests can move it.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Counts login attempts per account and per client address and says when to hold one back,
/// following the policy in `domain::throttle`. An adapter may be per process or shared.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait LoginAttempts: Send + Sync {
    /// Whether an attempt for `email` from `client` may go ahead now. An allowed attempt is
    /// counted against the client's per-minute rate.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn check(
        &self,
        email: &Email,
        client: &ClientAddress,
    ) -> Result<ThrottleDecision, StoreError>;

    /// Counts a failed attempt against both the account and the client address.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn record_failure(&self, email: &Email, client: &ClientAddress)
        -> Result<(), StoreError>;

    /// A correct password: forgets the account's failures (not the client's, so a stuffing
    /// run that hits one valid pair keeps its count).
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn record_success(&self, email: &Email) -> Result<(), StoreError>;

    /// Forgets counters that no longer hold anything back; called by the background sweeper.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn sweep(&self) -> Result<(), StoreError>;
}

// A port failure is never the request's fault: the use cases turn it into their one
// infrastructure variant with `?`.
impl From<StoreError> for InfraError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => Self::Unavailable(e),
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

impl From<HashError> for InfraError {
    fn from(e: HashError) -> Self {
        // A full queue is load, not a fault: retryable, like a store that does not answer.
        if e.is_busy() {
            Self::Unavailable(e.0)
        } else {
            Self::Unknown(e.0)
        }
    }
}

/// Only for signing: a token that fails verification is the caller's fault, not the
/// infrastructure's, and is mapped by the use case itself.
impl From<TokenError> for InfraError {
    fn from(e: TokenError) -> Self {
        Self::Unknown(e.into())
    }
}

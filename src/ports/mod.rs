//! The driven ports: what the use cases need from the outside world, and nothing more.
//!
//! Each method's `# Errors` section is the contract every adapter is tested against
//! (`tests/api/contract.rs` runs the same cases on every adapter). Must never import a web
//! framework, a JWT library, a database driver or bcrypt.

use async_trait::async_trait;

mod mailer;
pub use mailer::{MailError, Mailer, OutgoingMail};
mod reset_tokens;
#[cfg(test)]
pub use reset_tokens::MockResetTokens;
pub use reset_tokens::ResetTokens;

use crate::domain::{
    AccessClaims, AccessToken, Attempt, ClientAddress, Email, InfraError, LogoutScope, Password,
    PasswordHash, RefreshToken, RefreshTokenHash, Reservation, RotationRefusal, Session, SessionId,
    SessionInfo, SessionOrigin, ThrottleDecision, Timestamp, User, UserId,
};

/// A backing store failed; no partial write is left behind. `Unavailable`: the store cannot
/// be reached right now (connection refused, pool timed out), retryable; `Unknown`: anything
/// else. The use cases' one infrastructure error, under the name the ports speak of.
pub use crate::domain::InfraError as StoreError;

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
    /// The rotation rule refused the token (`domain::judge_rotation`); whatever the rule
    /// revokes with the refusal has been revoked by the call. `session` is the token's
    /// session when the store found one, so a reuse can be investigated.
    #[error("{why}")]
    Refused {
        why: RotationRefusal,
        session: Option<Session>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RotationRefusal> for RotateError {
    fn from(why: RotationRefusal) -> Self {
        Self::Refused { why, session: None }
    }
}

impl RotateError {
    /// A refusal of a token of `session`.
    pub fn refused_in(why: RotationRefusal, session: Session) -> Self {
        Self::Refused {
            why,
            session: Some(session),
        }
    }
}

/// What a refresh asks of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub presented: RefreshTokenHash,
    /// The hash of `presented`'s derived successor (`Successors::successor_of`).
    pub successor: RefreshTokenHash,
    /// Its successor as derived under the previous server key (`JWT_PREVIOUS_SECRET_KEY`),
    /// if one is configured: a replay whose current successor is that one, made by an
    /// instance still on the old key, is answered with it.
    pub previous_successor: Option<RefreshTokenHash>,
    pub now: Timestamp,
    /// The session's idle end once rotated (`now` plus the idle timeout); the store never
    /// keeps one later than the absolute end. `None`: no idle timeout.
    pub idle_expires_at: Option<Timestamp>,
    /// `REFRESH_REUSE_GRACE_SECS`: how long after its consumption a token may be replayed for
    /// the same successor.
    pub reuse_grace_secs: u64,
}

/// What a logout ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoggedOut {
    /// How many live sessions were revoked.
    pub revoked: u64,
    /// The presented token's session and its user, when that session was live.
    pub session: Option<(SessionId, UserId)>,
}

/// A rotation that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The session, with its idle end as it now is.
    pub session: Session,
    /// `true` when the token had been consumed moments before and its successor was handed
    /// out again (`RotationVerdict::Replay`); nothing was written.
    pub replayed: bool,
    /// The hash of the session's current token now: `Rotation::successor`, or on a replay
    /// `previous_successor` when that is the one an instance on the old key made current.
    pub successor: RefreshTokenHash,
}

/// Token signing or verification failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The presented token is not a valid access token. The text is for logs only: it may
    /// name claims, never their values.
    #[error("invalid access token: {0}")]
    Invalid(String),
    /// No key may sign now (the store withdrew the one this instance holds): answered as
    /// unavailable, like a store that does not answer, until a reload finds one.
    #[error("no signing key in force")]
    NoSigningKey,
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
    /// The account with this (normalized) email, if any, disabled or not. A stored record
    /// that does not parse (written by hand or by an older version) is `None`, as no account.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The account with this id, if any, disabled or not; `None` for a record that does not
    /// parse.
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

    /// Marks the account disabled (or enabled again) and returns it; `None` if there is none
    /// (or its stored record does not parse).
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn set_disabled(&self, email: &Email, disabled: bool)
        -> Result<Option<User>, StoreError>;

    /// Replaces the account's password hash with `new` if it is still `current`, so a password
    /// changed in the meantime is never overwritten; returns whether it was replaced.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing changes then.
    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError>;

    /// Marks the account's email verified (idempotent); returns whether the account exists.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing changes then.
    async fn mark_email_verified(&self, id: UserId) -> Result<bool, StoreError>;

    /// Every account, oldest first. A record that does not parse is skipped with a warning
    /// naming its id, so one bad row never fails the listing.
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

/// Replaces a verified password's stored hash when it was made under an older policy, off the
/// request's path: the login answers first.
#[cfg_attr(test, mockall::automock)]
pub trait PasswordUpgrades: Send + Sync {
    /// Schedules a new hash of `password` for `user`, stored only if the account still has
    /// `current` (a password changed meanwhile wins). Never fails the caller: the outcome is
    /// logged, and a skipped upgrade is retried at the next login.
    fn schedule(&self, user: UserId, current: PasswordHash, password: Password);
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

    /// Moves on whenever a key that verified tokens is withdrawn, so a cache of verified
    /// tokens knows to start over; constant for keys fixed at start-up.
    fn key_generation(&self) -> u64 {
        0
    }
}

/// The successor of a refresh token: a keyed one-way function of it under a server key.
/// Derived, not drawn, so concurrent requests presenting one token (several tabs) can all be
/// answered with the one successor the first of them made current, while the stores keep
/// hashes only; every instance holding the key derives the same one, before or after a
/// crash. Without the key a successor is as unpredictable as a random token.
#[cfg_attr(test, mockall::automock)]
pub trait Successors: Send + Sync {
    fn successor_of(&self, token: &RefreshToken) -> RefreshToken;

    /// The successor under the previous key, while one is configured (a key rotation in
    /// progress): instances still on it derive that one.
    fn previous_successor_of(&self, token: &RefreshToken) -> Option<RefreshToken>;
}

/// Sessions (refresh-token families) and the hashes of their tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Stores a new session whose first (current) token hash is `first`, recording `origin`
    /// and the session's creation as its last use, only if its user exists and is enabled,
    /// checked atomically with the insert: a login that verified the password before the
    /// account was disabled must not leave a session that the disabling missed and that would
    /// be live again once the account is enabled. Then, in the same atomic step, revokes the
    /// user's least recently used live sessions beyond `max_per_user` (the new one counts),
    /// so concurrent logins of one user cannot overshoot the cap. Returns whether it was
    /// stored; `Ok(false)` (user disabled or gone) stores nothing.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing is stored then.
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
        origin: &SessionOrigin,
        max_per_user: usize,
    ) -> Result<bool, StoreError>;

    /// Atomically consumes `rotation.presented`, makes `rotation.successor` the session's
    /// current token, records `now` as the session's last use and moves its idle end. Of
    /// concurrent calls with one token, exactly one consumes it; the others, inside the grace
    /// window, are answered as replays (`Rotated::replayed`) of that same successor, which
    /// stays the one current token. Only the current token and the `KEPT_CONSUMED_TOKENS`
    /// before it are kept: an older one is forgotten, as if never issued. Nothing is consumed
    /// for a user who is disabled or gone, so a caller has nothing fallible left to do after a
    /// success but sign.
    ///
    /// # Errors
    /// `RotateError::Refused` with `RotationRefusal::NotFound` for a token no live session
    /// holds (never issued, forgotten, revoked or purged); `Reused` for a consumed token that
    /// is not a replay within the window (the session is revoked, its newest token too);
    /// `Expired` when `now` is at or past the session's absolute or idle end (the session is
    /// revoked); `UserInactive` when the session's user is disabled or gone (every session of
    /// that user is revoked); `RotateError::Store` when the store cannot be reached (nothing
    /// changes).
    async fn rotate(&self, rotation: Rotation) -> Result<Rotated, RotateError>;

    /// Ends sessions by a refresh token of theirs, whether it is current or a kept consumed
    /// one: `Local` its own session; `Others` and `Global` every other (or every) live session
    /// of its user, but only for a session's current token or a replay within
    /// `reuse_grace_secs`: an older token ends only its own session, so a stale cookie cannot
    /// sign its owner out everywhere. Returns how many live sessions were revoked; an unknown
    /// (or forgotten) token revokes nothing. Also names the token's session and its user when
    /// that session was live, for the audit trail.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing changes then.
    async fn revoke_by_token(
        &self,
        presented: RefreshTokenHash,
        scope: LogoutScope,
        now: Timestamp,
        reuse_grace_secs: u64,
    ) -> Result<LoggedOut, StoreError>;

    /// Revokes `session` if it is a live session of `user`; returns whether it did. Someone
    /// else's session, an ended one and an unknown id all answer `false` alike.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Revokes every session of the user; returns how many were live.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    /// Replaces the user's password hash with `new` if it is still `current` and the account
    /// is enabled and, with `keep`, `keep` is still a live session of the user at `now`; in
    /// the same atomic step revokes every other session of the user (every one without
    /// `keep`), which the revocation feed then lists. Of concurrent changes from one
    /// `current`, at most one applies. Returns how many sessions it revoked (ended ones not
    /// yet purged included), or `None` when nothing changed (the hash was replaced meanwhile, the account is disabled or
    /// gone, or `keep` has ended).
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing changes then.
    async fn change_password(
        &self,
        user: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError>;

    /// The user's live sessions at `now` (not revoked, neither end reached), most recently
    /// used first, at most `limit`.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn list_sessions(
        &self,
        user: UserId,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// The user who owns the session, disabled or not, when the session exists, is not
    /// revoked and has reached neither of its ends at `now`; `None` otherwise (also for an owner
    /// whose stored record does not parse). One look-up, for `/auth/me`.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn live_session_user(
        &self,
        session: SessionId,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError>;

    /// Brings the idle end of every live session down to its last use plus `idle_ttl_secs`
    /// (never past its absolute end) where it is later or unset; returns how many changed.
    /// Run at start-up, so that a newly set or shortened `REFRESH_IDLE_TIMEOUT_DAYS` reaches
    /// the sessions opened before, not only those refreshed after. Never lengthens one.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn tighten_idle_ends(&self, idle_ttl_secs: u64) -> Result<u64, StoreError>;

    /// Forgets up to `limit` sessions that ended or were revoked before `now`, with their
    /// tokens; returns how many were removed. Bounded so one run has a bounded cost.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError>;

    /// How many sessions are live at `now` (not revoked, neither end reached), for the
    /// metrics: one counting query, run on a timer rather than per scrape.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError>;

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

/// Counts login attempts and sign-ups and says when to hold one back, following the policy in
/// `domain::throttle`. An adapter may be per process or shared (a database or Redis): every
/// decision is one atomic check-and-count, so concurrent requests cannot all pass a limit
/// that only one more of them may pass.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait LoginAttempts: Send + Sync {
    /// Whether an attempt for `email` from `client` may go ahead now, and if so counts it,
    /// in the same atomic step, against the client's per-minute rate and, provisionally, as a
    /// failure of the pair, the account and the client (so a burst in flight counts in full
    /// before any of it is checked). The reservation is settled with `succeeded`, `failed`
    /// or `abandoned`; one never settled stays a failure.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached; nothing is counted.
    async fn begin(&self, email: &Email, client: &ClientAddress) -> Result<Attempt, StoreError>;

    /// A correct password: takes the provisional failure back and forgets the pair's failures
    /// (not the client's nor the account's, so a stuffing run that hits one valid pair keeps
    /// its count).
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn succeeded(&self, attempt: Reservation) -> Result<(), StoreError>;

    /// A wrong password (or an unknown or disabled account): confirms the failure.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn failed(&self, attempt: Reservation) -> Result<(), StoreError>;

    /// The attempt could not be judged (a store or the hasher failed): takes the provisional
    /// failure back, so an outage does not lock anyone out.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn abandoned(&self, attempt: Reservation) -> Result<(), StoreError>;

    /// Whether a sign-up from `client` may go ahead now; an allowed one is counted in the same
    /// step.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn begin_registration(
        &self,
        client: &ClientAddress,
    ) -> Result<ThrottleDecision, StoreError>;

    /// Forgets counters that no longer hold anything back; called by the background sweeper.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the counters cannot be reached.
    async fn sweep(&self) -> Result<(), StoreError>;
}

// A port failure is never the request's fault: the use cases turn it into their one
// infrastructure variant with `?`.
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
        match e {
            TokenError::NoSigningKey => Self::Unavailable(e.into()),
            e => Self::Unknown(e.into()),
        }
    }
}

/// The public halves of the signing keys in force, for `/.well-known/jwks.json`.
pub trait PublicKeys: Send + Sync {
    /// Each published key as a JWK (RFC 7517) with public parameters only; empty when tokens
    /// are signed with a shared secret.
    fn public_jwks(&self) -> Vec<serde_json::Map<String, serde_json::Value>>;

    /// Whether the keys loaded fully, for readiness.
    fn key_health(&self) -> KeyHealth {
        KeyHealth::Ok
    }
}

/// What the last key reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHealth {
    Ok,
    /// Some stored keys did not open and were skipped; the instance signs with a key the
    /// store still publishes.
    Degraded,
    /// No key the store still lists could sign: this instance must not take traffic.
    Unavailable,
}

/// Where generated signing keys live, shared by every instance on one database. Every change
/// is a compare-and-set, so instances racing through the same lifecycle step agree.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The keys of `algorithm` that are not retired, oldest first.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn list(
        &self,
        algorithm: crate::domain::SigningAlgorithm,
    ) -> Result<Vec<crate::domain::StoredKey>, StoreError>;

    /// Stores a new `Current` or `Next` key; `Ok(false)` when the algorithm already has a key
    /// in that state (another instance got there first) and nothing is stored.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn insert(&self, key: &crate::domain::StoredKey) -> Result<bool, StoreError>;

    /// Atomically makes the current key previous (stopped at `now`) and the `Next` key `kid`
    /// current (from `now`); `Ok(false)`, changing nothing, when `kid` is no longer next.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached; nothing changes then.
    async fn promote(&self, kid: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Retires the `Next` or `Previous` key `kid`; `Ok(false)` for the current key, a retired
    /// one or an unknown kid.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn retire(&self, kid: &str, now: Timestamp) -> Result<bool, StoreError>;
}

/// One revoked session in the revocation feed: its access tokens must be refused until
/// `revoked_at` plus an access token's lifetime, when the last of them expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub session: SessionId,
    /// Unix seconds, by the feed's own clock (the database's, or the process's in memory).
    pub revoked_at: u64,
}

/// The sessions revoked recently, for verifiers that check access tokens without asking.
#[async_trait]
pub trait RevocationFeed: Send + Sync {
    /// Revocations from `since` on (all when `None`) and within the last `window_secs`,
    /// ordered by (`revoked_at`, session id), at most `limit`; with the feed's clock now.
    /// `since.skip` passes over that many entries of `since.second` only (of none when that
    /// second is older than the window). A session revoked twice may appear twice: entries
    /// are idempotent.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn revoked_since(
        &self,
        since: Option<crate::domain::FeedPosition>,
        window_secs: u64,
        limit: usize,
    ) -> Result<(Vec<Revocation>, u64), StoreError>;

    /// Forgets entries older than `window_secs`; returns how many.
    ///
    /// # Errors
    /// `StoreError::Unavailable` when the store cannot be reached.
    async fn purge_revocations(&self, window_secs: u64) -> Result<u64, StoreError>;
}

/// Where the use cases report security events (`domain::SecurityEvent`): the audit trail, the
/// metrics and the webhooks subscribe behind it. Reporting never fails and never waits on a
/// store: an adapter that persists hands the event to its own bounded queue and counts what it
/// has to drop, so an event cannot fail or slow the request it describes.
pub trait SecurityEvents: Send + Sync {
    fn record(&self, event: crate::domain::SecurityEvent);

    /// How a refresh ended: every refresh, for counting (the metrics); not a security event,
    /// so the audit trail and the webhooks leave it alone. Never fails, never waits.
    fn refresh_outcome(&self, _outcome: crate::domain::RefreshOutcome) {}
}

/// Reports nowhere: the default until an audit trail, metrics or webhooks are configured.
pub struct NoSecurityEvents;

impl SecurityEvents for NoSecurityEvents {
    fn record(&self, _event: crate::domain::SecurityEvent) {}
}

/// Hands every event to each of several sinks, in order.
pub struct FanOut(pub Vec<std::sync::Arc<dyn SecurityEvents>>);

impl SecurityEvents for FanOut {
    fn record(&self, event: crate::domain::SecurityEvent) {
        if let Some((last, rest)) = self.0.split_last() {
            for sink in rest {
                sink.record(event.clone());
            }
            last.record(event);
        }
    }

    fn refresh_outcome(&self, outcome: crate::domain::RefreshOutcome) {
        for sink in &self.0 {
            sink.refresh_outcome(outcome);
        }
    }
}

/// Where the wiring sends events: subscribers (the audit trail, metrics, webhooks) may join
/// after the hub was handed to what reports (the use cases, the key lifecycle), so the order in
/// which adapters are wired does not decide who hears what.
#[derive(Default)]
pub struct EventHub {
    sinks: std::sync::RwLock<Vec<std::sync::Arc<dyn SecurityEvents>>>,
}

impl EventHub {
    pub fn subscribe(&self, sink: std::sync::Arc<dyn SecurityEvents>) {
        self.sinks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(sink);
    }
}

impl SecurityEvents for EventHub {
    fn record(&self, event: crate::domain::SecurityEvent) {
        let sinks = self
            .sinks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((last, rest)) = sinks.split_last() {
            for sink in rest {
                sink.record(event.clone());
            }
            last.record(event);
        }
    }

    fn refresh_outcome(&self, outcome: crate::domain::RefreshOutcome) {
        let sinks = self
            .sinks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for sink in sinks.iter() {
            sink.refresh_outcome(outcome);
        }
    }
}

/// An event waiting for its webhook delivery, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The event id: the `webhook-id` receivers de-duplicate on.
    pub id: uuid::Uuid,
    /// The event type, e.g. `reuse_detected`.
    pub kind: String,
    /// The JSON body to POST, exactly as it is signed.
    pub body: String,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Deliveries tried so far.
    pub attempts: u32,
}

/// What is in the outbox: still to deliver, and given up on (dead-lettered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: u64,
    pub dead: u64,
}

/// The webhook outbox: events to deliver, shared by every instance on one store. A worker
/// claims due entries for a lease under a claim id; only the holder of the claim may settle
/// them, so a worker whose lease ran out cannot delete what another one now holds. Times are
/// Unix milliseconds from the caller.
#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// Adds entries due at once; an id already present is kept as it is.
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError>;

    /// Takes up to `limit` due entries (oldest first) that no live lease holds, and holds
    /// them under `claim` until `now + lease_ms`.
    async fn claim(
        &self,
        claim: uuid::Uuid,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Removes a delivered entry (if `claim` still holds it).
    async fn delivered(&self, id: uuid::Uuid, claim: uuid::Uuid) -> Result<(), StoreError>;

    /// Counts a failed attempt and makes the entry due again at `next_at`; `None` releases
    /// it without counting (it was never tried).
    async fn retry(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        next_at: Option<u64>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Gives up on an entry: it stays, marked dead at `now`, for the operator to see.
    async fn dead_letter(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        now: u64,
        error: &str,
    ) -> Result<(), StoreError>;

    async fn stats(&self) -> Result<OutboxStats, StoreError>;

    /// Makes every dead-lettered entry due again at `now`, with fresh attempts and age (after
    /// the operator fixed the receiver); returns how many.
    async fn requeue_dead(&self, now: u64) -> Result<u64, StoreError>;

    /// Deletes entries dead-lettered before `dead_before`, so a receiver gone for good does
    /// not grow the outbox without end; returns how many.
    async fn purge_dead(&self, dead_before: u64) -> Result<u64, StoreError>;
}

/// One row of the audit trail: a security event as it is kept. Ids, the client bucket, the
/// user agent and a closed-set detail word; never a password, token, hash, cookie or email
/// (an email filter resolves to a user id first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: uuid::Uuid,
    pub at: crate::domain::Timestamp,
    pub kind: crate::domain::EventKind,
    pub user: Option<crate::domain::UserId>,
    pub session: Option<crate::domain::SessionId>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

impl From<&crate::domain::SecurityEvent> for AuditRecord {
    fn from(e: &crate::domain::SecurityEvent) -> Self {
        Self {
            id: e.id,
            at: e.at,
            kind: e.kind,
            user: e.user,
            session: e.session,
            client: e.client.as_ref().map(|c| c.as_str().to_owned()),
            user_agent: e.user_agent.as_ref().map(|u| u.as_str().to_owned()),
            detail: e.detail.clone(),
        }
    }
}

/// Which audit rows to list: every filter set must match; newest first, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub user: Option<crate::domain::UserId>,
    pub kind: Option<crate::domain::EventKind>,
    /// Rows at or after this time.
    pub since: Option<crate::domain::Timestamp>,
    pub limit: usize,
}

/// Where the audit trail is kept (a table, or a bounded ring in memory).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends rows; an id already present is kept as it is.
    ///
    /// # Errors
    /// `StoreError` when the store fails; then none of the batch is kept.
    async fn append(&self, records: &[AuditRecord]) -> Result<(), StoreError>;

    /// The rows matching `query`, newest first.
    ///
    /// # Errors
    /// `StoreError` when the store fails.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes up to `limit` rows older than `before`; returns how many.
    ///
    /// # Errors
    /// `StoreError` when the store fails.
    async fn purge_before(
        &self,
        before: crate::domain::Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError>;
}

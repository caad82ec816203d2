//! Prometheus metrics: the recorder, the security-event sink that counts logins, refreshes,
//! revocations and key rotations, and the decorators that time the stores.
//!
//! One recorder per application, never installed as the process-global one: several apps in
//! one process (the tests) count apart, and nothing else in the process can add series. Every
//! series is registered once, up front, with a label value from a closed set, so the
//! cardinality is fixed by the code (no email, id, address, user agent or raw path) and a hot
//! path pays an atomic add, not a registry look-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::domain::{
    Email, EventKind, InfraError, LogoutScope, PasswordHash, RefreshOutcome, RefreshTokenHash,
    SecurityEvent, Session, SessionId, SessionInfo, SessionOrigin, Timestamp, User, UserId,
};
use crate::ports::{
    CreateUserError, LoggedOut, RefreshStore, RotateError, Rotated, Rotation, SecurityEvents,
    StoreError, UserRepo,
};

/// Histogram buckets in seconds: from a cached `/auth/me` (tens of microseconds) to a queued
/// password hash (seconds).
const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// How often samples are folded into the histograms even when nobody scrapes, so memory stays
/// bounded (the recorder keeps raw samples until then).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

const META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Login outcomes, as the `outcome` label says them.
const LOGIN_OUTCOMES: [&str; 4] = ["ok", "wrong_credentials", "throttled", "disabled"];

/// Why sessions were revoked, as the `cause` label says them.
const REVOCATION_CAUSES: [&str; 6] = [
    "logout",
    "reuse",
    "ended_by_owner",
    "account_inactive",
    "account_disabled",
    "other",
];

/// The recorder and the series registered up front.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    logins: [Counter; LOGIN_OUTCOMES.len()],
    refreshes: [Counter; RefreshOutcome::ALL.len()],
    revocations: [Counter; REVOCATION_CAUSES.len()],
    key_rotations: Counter,
    /// Password hashes waiting for a hashing thread.
    pub hash_queue_depth: Gauge,
    /// How long a hash waited for a thread.
    pub hash_wait: Histogram,
    /// Live sessions as last counted (see `count_live_sessions`).
    pub sessions_live: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
        };
        describe(
            "http_requests_total",
            "HTTP requests answered, by operation and status.",
        );
        describe(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (headers ready), by operation.",
        );
        describe("auth_logins_total", "Login attempts by outcome.");
        describe("auth_refreshes_total", "Refresh attempts by outcome.");
        describe(
            "auth_session_revocations_total",
            "Session revocations by cause.",
        );
        describe(
            "auth_key_rotations_total",
            "Signing keys promoted to current.",
        );
        describe("auth_sessions_live", "Live sessions, as last counted.");
        describe(
            "password_hash_queue_depth",
            "Password hashes waiting for a hashing thread.",
        );
        describe(
            "password_hash_wait_seconds",
            "Time a password hash waited in the queue for a thread.",
        );
        describe(
            "store_operation_duration_seconds",
            "Store calls by store, operation and result (ok, refused, unavailable, error).",
        );
        let counter = |name: &'static str, label: &'static str, value: &'static str| {
            recorder.register_counter(
                &Key::from_parts(name, vec![Label::from_static_parts(label, value)]),
                &META,
            )
        };
        Self {
            logins: LOGIN_OUTCOMES.map(|o| counter("auth_logins_total", "outcome", o)),
            refreshes: RefreshOutcome::ALL
                .map(|o| counter("auth_refreshes_total", "outcome", o.as_str())),
            revocations: REVOCATION_CAUSES
                .map(|c| counter("auth_session_revocations_total", "cause", c)),
            key_rotations: recorder
                .register_counter(&Key::from_static_name("auth_key_rotations_total"), &META),
            hash_queue_depth: recorder
                .register_gauge(&Key::from_static_name("password_hash_queue_depth"), &META),
            hash_wait: recorder
                .register_histogram(&Key::from_static_name("password_hash_wait_seconds"), &META),
            sessions_live: recorder
                .register_gauge(&Key::from_static_name("auth_sessions_live"), &META),
            recorder,
            handle,
        }
    }

    /// The Prometheus text format of every series.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds the samples taken since the last call into the histograms.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// A counter of `name` with these fixed labels (for the HTTP edge, which knows its
    /// operations only once the spec is built).
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    /// A histogram of `name` with these fixed labels.
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &META)
    }

    fn revoked(&self, cause: &str) {
        let i = REVOCATION_CAUSES
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(REVOCATION_CAUSES.len() - 1);
        self.revocations[i].increment(1);
    }
}

/// Counts what the use cases report.
impl SecurityEvents for Metrics {
    fn record(&self, event: SecurityEvent) {
        let login = |i: usize| self.logins[i].increment(1);
        match event.kind {
            EventKind::LoginSucceeded => login(0),
            EventKind::LoginFailed => login(1),
            EventKind::LoginThrottled => login(2),
            EventKind::LoginDisabled => login(3),
            EventKind::Logout => self.revoked("logout"),
            EventKind::RefreshReuse => self.revoked("reuse"),
            // `detail` is a word from a closed set; anything else is counted as `other`.
            EventKind::SessionRevoked => self.revoked(event.detail.as_deref().unwrap_or("other")),
            EventKind::AccountDisabled => self.revoked("account_disabled"),
            EventKind::KeyRotated => self.key_rotations.increment(1),
            _ => {}
        }
    }

    fn refresh_outcome(&self, outcome: RefreshOutcome) {
        if let Some(i) = RefreshOutcome::ALL.iter().position(|o| *o == outcome) {
            self.refreshes[i].increment(1);
        }
    }
}

/// The duration histograms of one store operation, one per result (`refused` only for the
/// operations whose contract has a refusal).
struct Timed([Option<Histogram>; 4]);

/// What a store call came to: `refused` is an answer of the contract (an email taken, a
/// refresh token refused), not a failure.
#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    Refused,
    Unavailable,
    Error,
}

impl Outcome {
    fn of_infra(e: &InfraError) -> Self {
        match e {
            InfraError::Unavailable(_) => Self::Unavailable,
            InfraError::Unknown(_) => Self::Error,
        }
    }

    fn of<T>(r: &Result<T, StoreError>) -> Self {
        r.as_ref().map_or_else(Self::of_infra, |_| Self::Ok)
    }
}

impl Timed {
    fn new(metrics: &Metrics, store: &'static str, op: &'static str) -> Self {
        Self::with_results(metrics, store, op, false)
    }

    fn refusable(metrics: &Metrics, store: &'static str, op: &'static str) -> Self {
        Self::with_results(metrics, store, op, true)
    }

    fn with_results(
        metrics: &Metrics,
        store: &'static str,
        op: &'static str,
        refusable: bool,
    ) -> Self {
        Self(["ok", "refused", "unavailable", "error"].map(|result| {
            (refusable || result != "refused").then(|| {
                metrics.histogram(
                    "store_operation_duration_seconds",
                    vec![
                        Label::from_static_parts("store", store),
                        Label::from_static_parts("op", op),
                        Label::from_static_parts("result", result),
                    ],
                )
            })
        }))
    }

    fn record(&self, started: Instant, outcome: Outcome) {
        if let Some(h) = &self.0[outcome as usize] {
            h.record(started.elapsed().as_secs_f64());
        }
    }
}

/// A `UserRepo` that times every call.
pub struct MeasuredUsers {
    inner: Arc<dyn UserRepo>,
    find_by_email: Timed,
    find_by_id: Timed,
    create: Timed,
    set_disabled: Timed,
    replace_password_hash: Timed,
    mark_email_verified: Timed,
    list: Timed,
    ping: Timed,
}

impl MeasuredUsers {
    pub fn new(inner: Arc<dyn UserRepo>, metrics: &Metrics) -> Self {
        let t = |op| Timed::new(metrics, "users", op);
        Self {
            inner,
            find_by_email: t("find_by_email"),
            find_by_id: t("find_by_id"),
            create: Timed::refusable(metrics, "users", "create"),
            set_disabled: t("set_disabled"),
            replace_password_hash: t("replace_password_hash"),
            mark_email_verified: t("mark_email_verified"),
            list: t("list"),
            ping: t("ping"),
        }
    }
}

/// Times `call` into `timed`, judging its result with `judge`.
macro_rules! timed {
    ($timed:expr, $judge:expr, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $timed.record(started, $judge(&result));
        result
    }};
}

#[async_trait]
impl UserRepo for MeasuredUsers {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        timed!(
            self.find_by_email,
            Outcome::of,
            self.inner.find_by_email(email)
        )
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        timed!(self.find_by_id, Outcome::of, self.inner.find_by_id(id))
    }

    async fn create(&self, user: User) -> Result<(), CreateUserError> {
        let judge = |r: &Result<(), CreateUserError>| match r {
            Ok(()) => Outcome::Ok,
            Err(CreateUserError::EmailTaken) => Outcome::Refused,
            Err(CreateUserError::Store(e)) => Outcome::of_infra(e),
        };
        timed!(self.create, judge, self.inner.create(user))
    }

    async fn set_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<User>, StoreError> {
        timed!(
            self.set_disabled,
            Outcome::of,
            self.inner.set_disabled(email, disabled)
        )
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        timed!(
            self.replace_password_hash,
            Outcome::of,
            self.inner.replace_password_hash(id, current, new)
        )
    }

    async fn mark_email_verified(&self, id: UserId) -> Result<bool, StoreError> {
        timed!(
            self.mark_email_verified,
            Outcome::of,
            self.inner.mark_email_verified(id)
        )
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        timed!(self.list, Outcome::of, self.inner.list())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed!(self.ping, Outcome::of, self.inner.ping())
    }
}

/// A `RefreshStore` that times every call.
pub struct MeasuredSessions {
    inner: Arc<dyn RefreshStore>,
    create_session: Timed,
    rotate: Timed,
    revoke_by_token: Timed,
    revoke_session: Timed,
    revoke_user_sessions: Timed,
    change_password: Timed,
    list_sessions: Timed,
    live_session_user: Timed,
    tighten_idle_ends: Timed,
    purge: Timed,
    count_live_sessions: Timed,
    ping: Timed,
}

impl MeasuredSessions {
    pub fn new(inner: Arc<dyn RefreshStore>, metrics: &Metrics) -> Self {
        let t = |op| Timed::new(metrics, "sessions", op);
        Self {
            inner,
            create_session: t("create_session"),
            rotate: Timed::refusable(metrics, "sessions", "rotate"),
            revoke_by_token: t("revoke_by_token"),
            revoke_session: t("revoke_session"),
            revoke_user_sessions: t("revoke_user_sessions"),
            change_password: t("change_password"),
            list_sessions: t("list_sessions"),
            live_session_user: t("live_session_user"),
            tighten_idle_ends: t("tighten_idle_ends"),
            purge: t("purge"),
            count_live_sessions: t("count_live_sessions"),
            ping: t("ping"),
        }
    }
}

#[async_trait]
impl RefreshStore for MeasuredSessions {
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
        origin: &SessionOrigin,
        max_per_user: usize,
    ) -> Result<bool, StoreError> {
        timed!(
            self.create_session,
            Outcome::of,
            self.inner
                .create_session(session, first, origin, max_per_user)
        )
    }

    async fn rotate(&self, rotation: Rotation) -> Result<Rotated, RotateError> {
        let judge = |r: &Result<Rotated, RotateError>| match r {
            Ok(_) => Outcome::Ok,
            Err(RotateError::Refused { .. }) => Outcome::Refused,
            Err(RotateError::Store(e)) => Outcome::of_infra(e),
        };
        timed!(self.rotate, judge, self.inner.rotate(rotation))
    }

    async fn revoke_by_token(
        &self,
        presented: RefreshTokenHash,
        scope: LogoutScope,
        now: Timestamp,
        reuse_grace_secs: u64,
    ) -> Result<LoggedOut, StoreError> {
        timed!(
            self.revoke_by_token,
            Outcome::of,
            self.inner
                .revoke_by_token(presented, scope, now, reuse_grace_secs)
        )
    }

    async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        timed!(
            self.revoke_session,
            Outcome::of,
            self.inner.revoke_session(user, session, now)
        )
    }

    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        timed!(
            self.revoke_user_sessions,
            Outcome::of,
            self.inner.revoke_user_sessions(user)
        )
    }

    async fn change_password(
        &self,
        user: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        timed!(
            self.change_password,
            Outcome::of,
            self.inner.change_password(user, current, new, keep, now)
        )
    }

    async fn list_sessions(
        &self,
        user: UserId,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        timed!(
            self.list_sessions,
            Outcome::of,
            self.inner.list_sessions(user, now, limit)
        )
    }

    async fn live_session_user(
        &self,
        session: SessionId,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError> {
        timed!(
            self.live_session_user,
            Outcome::of,
            self.inner.live_session_user(session, now)
        )
    }

    async fn tighten_idle_ends(&self, idle_ttl_secs: u64) -> Result<u64, StoreError> {
        timed!(
            self.tighten_idle_ends,
            Outcome::of,
            self.inner.tighten_idle_ends(idle_ttl_secs)
        )
    }

    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        timed!(self.purge, Outcome::of, self.inner.purge(now, limit))
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        timed!(
            self.count_live_sessions,
            Outcome::of,
            self.inner.count_live_sessions(now)
        )
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed!(self.ping, Outcome::of, self.inner.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_revocation_cause_is_counted_as_other_not_as_a_new_series() {
        let m = Metrics::new();
        let now = Timestamp::from_unix(1);
        for detail in ["ended_by_owner", "someone@example.com", "a-session-id"] {
            m.record(SecurityEvent::new(EventKind::SessionRevoked, now).detail(detail));
        }
        let text = m.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("auth_session_revocations_total{"))
            .count();
        assert_eq!(series, REVOCATION_CAUSES.len(), "{text}");
        assert!(text.contains(r#"auth_session_revocations_total{cause="other"} 2"#));
        assert!(text.contains(r#"auth_session_revocations_total{cause="ended_by_owner"} 1"#));
        assert!(!text.contains("example.com"));
    }

    #[test]
    fn two_recorders_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.refresh_outcome(RefreshOutcome::Grace);
        assert!(a
            .render()
            .contains(r#"auth_refreshes_total{outcome="grace"} 1"#));
        assert!(b
            .render()
            .contains(r#"auth_refreshes_total{outcome="grace"} 0"#));
    }
}

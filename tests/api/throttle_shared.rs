//! The login throttle shared by every instance: the in-process adapter's behaviour as a
//! contract every adapter of `LoginAttempts` passes (on memory, PostgreSQL and Redis), two
//! instances on one store enforcing one budget, bursts across instances, and what an
//! outage of the throttle's store does under `THROTTLE_STORE_FAILURE`.

use std::sync::Arc;

use ::redis::AsyncCommands;
use jwt_auth::adapters::outbound::clock::ManualClock;
use jwt_auth::adapters::outbound::db::{Database, PoolSettings};
use jwt_auth::adapters::outbound::memory_throttle::InMemoryLoginAttempts;
use jwt_auth::adapters::outbound::redis_throttle::RedisLoginAttempts;
use jwt_auth::adapters::outbound::throttle_outage::OnStoreFailure;
use jwt_auth::config::StoreFailure;
use jwt_auth::domain::{
    Attempt, ClientAddress, Email, Lockout, Reservation, ThrottleDecision, ThrottleSettings,
    Timestamp,
};
use jwt_auth::ports::{Clock, LoginAttempts};
use jwt_auth::startup::{DEMO_EMAIL, DEMO_PASSWORD};

use crate::helpers::*;

/// Which adapter a contract case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Postgres,
    Redis,
}

/// The Redis server for tests, or `None` after saying why.
///
/// # Panics
/// When `REQUIRE_REDIS=1` and `TEST_REDIS_URL` is not set: a silent skip must fail CI.
fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_REDIS").as_deref() != Ok("1"),
                "REQUIRE_REDIS=1 but TEST_REDIS_URL is not set: the Redis tests would not run"
            );
            eprintln!("SKIPPED redis contract: TEST_REDIS_URL not set");
            None
        }
    }
}

/// A key prefix no other test uses, so tests share one Redis in parallel.
fn fresh_prefix() -> String {
    format!("test-{}:", uuid::Uuid::new_v4().simple())
}

/// Where a Redis throttle keeps its keys.
struct RedisSpace {
    url: String,
    prefix: String,
}

impl RedisSpace {
    fn new() -> Option<Self> {
        Some(Self {
            url: redis_url()?,
            prefix: fresh_prefix(),
        })
    }

    /// The settings overrides of an app on this space.
    fn overrides(&self) -> [(&str, &str); 2] {
        [("REDIS_URL", &self.url), ("REDIS_KEY_PREFIX", &self.prefix)]
    }

    async fn conn(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("TEST_REDIS_URL answers")
    }

    /// Every key under the prefix.
    async fn keys(&self) -> Vec<String> {
        let mut conn = self.conn().await;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Each key's time to live in milliseconds (-1: none).
    async fn ttls(&self) -> Vec<(String, i64)> {
        let mut conn = self.conn().await;
        let mut out = Vec::new();
        for k in self.keys().await {
            let ttl: i64 = ::redis::cmd("PTTL")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((k, ttl));
        }
        out
    }
}

/// One or more instances of one throttle store, each with its own clock.
struct Shared {
    kind: Kind,
    settings: ThrottleSettings,
    db: Option<TestDb>,
    redis: Option<RedisSpace>,
}

impl Shared {
    async fn new(kind: Kind, settings: ThrottleSettings) -> Option<Self> {
        let (db, redis) = match kind {
            Kind::Memory => (None, None),
            Kind::Postgres => (Some(TestDb::new(Store::Postgres).await?), None),
            Kind::Redis => (None, Some(RedisSpace::new()?)),
        };
        Some(Self {
            kind,
            settings,
            db,
            redis,
        })
    }

    /// An instance on this store with its own clock at `T0` (the in-process throttle is
    /// one per instance, so a second one of it counts on its own).
    fn instance(&self) -> (Arc<ManualClock>, Arc<dyn LoginAttempts>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix(T0)));
        let throttle: Arc<dyn LoginAttempts> = match (self.kind, &self.db, &self.redis) {
            (Kind::Postgres, Some(db), _) => db
                .db
                .login_attempts(self.settings, clock.clone())
                .expect("PostgreSQL has a shared throttle"),
            (Kind::Redis, _, Some(r)) => Arc::new(
                RedisLoginAttempts::connect_lazy(&r.url, &r.prefix, self.settings, clock.clone())
                    .expect("a Redis throttle"),
            ),
            _ => Arc::new(InMemoryLoginAttempts::new(self.settings, clock.clone())),
        };
        (clock, throttle)
    }

    /// The counters stored: rows on PostgreSQL, keys on Redis.
    async fn rows(&self) -> Option<i64> {
        if let Some(r) = &self.redis {
            return Some(i64::try_from(r.keys().await.len()).unwrap());
        }
        let db = self.db.as_ref()?;
        Some(
            db.db
                .query_i64("SELECT count(*) FROM login_throttle")
                .await
                .unwrap(),
        )
    }
}

/// Runs `case` on a fresh store of `kind` with these settings.
async fn setup(
    kind: Kind,
    settings: ThrottleSettings,
) -> Option<(Shared, Arc<ManualClock>, Arc<dyn LoginAttempts>)> {
    let shared = Shared::new(kind, settings).await?;
    let (clock, t) = shared.instance();
    Some((shared, clock, t))
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn client(s: &str) -> ClientAddress {
    ClientAddress::from_ip(
        match s {
            "c1" | "c" => [10, 0, 0, 1],
            "c2" => [10, 0, 0, 2],
            "c3" => [10, 0, 0, 3],
            "attacker" | "stuffer" => [10, 0, 0, 66],
            _ => [10, 0, 0, 99],
        }
        .into(),
    )
}

async fn begin(t: &dyn LoginAttempts, e: &Email, c: &str) -> Result<Reservation, u64> {
    match t.begin(e, &client(c)).await.unwrap() {
        Attempt::Admitted(r) => Ok(r),
        Attempt::Refused { retry_after_secs } => Err(retry_after_secs),
    }
}

async fn fail(t: &dyn LoginAttempts, e: &Email, c: &str) -> Result<(), u64> {
    let r = begin(t, e, c).await?;
    t.failed(r).await.unwrap();
    Ok(())
}

async fn succeed(t: &dyn LoginAttempts, e: &Email, c: &str) -> Result<(), u64> {
    let r = begin(t, e, c).await?;
    t.succeeded(r).await.unwrap();
    Ok(())
}

/// To the start of the next minute, so a rate budget is whole.
fn next_minute(clock: &ManualClock) {
    clock.advance(60 - clock.now().unix() % 60);
}

macro_rules! on_every_throttle {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::Kind::Memory).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
                async fn $case() {
                    super::$case(super::Kind::Postgres).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
                async fn $case() {
                    super::$case(super::Kind::Redis).await;
                }
            )*
        }
    };
}

on_every_throttle!(
    a_pair_locks_after_n_failures_with_growing_delay_and_unlocks,
    a_lockout_shuts_out_only_the_client_that_failed,
    many_emails_from_one_client_hit_the_client_budget,
    an_account_past_its_ceiling_is_slowed_for_every_client,
    a_burst_in_flight_is_counted_before_any_of_it_is_settled,
    a_concurrent_burst_is_admitted_exactly_to_each_limit,
    an_unsettled_attempt_stays_a_failure_and_an_abandoned_one_counts_neither_way,
    success_resets_the_pair_and_is_rate_limited_generously,
    sign_ups_are_limited_per_client_per_minute,
    the_lock_is_reported_by_exactly_one_attempt,
    a_concurrent_burst_reports_each_lock_exactly_once,
    expired_counters_are_swept,
    a_crowd_within_the_limits_is_admitted_in_full,
);

/// Contention on shared counters must not refuse what the limits allow (on Redis: retries of
/// a compare-and-set must not run out and turn a crowd away).
async fn a_crowd_within_the_limits_is_admitted_in_full(kind: Kind) {
    let settings = ThrottleSettings {
        client_max_per_minute: 1000,
        client_max_failures: 1000,
        ..ThrottleSettings::default()
    };
    let Some((_s, _, t)) = setup(kind, settings).await else {
        return;
    };
    let admitted = concurrent_begins(&t, 150, |i| (email(&format!("u{i}@x.io")), "c")).await;
    assert_eq!(admitted.len(), 150);
}

async fn a_pair_locks_after_n_failures_with_growing_delay_and_unlocks(kind: Kind) {
    let Some((_s, clock, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    let e = email("a@x.io");
    for _ in 0..5 {
        assert!(fail(t, &e, "c1").await.is_ok());
    }
    assert_eq!(fail(t, &e, "c1").await, Err(60));
    assert!(succeed(t, &e, "c2").await.is_ok());
    clock.advance(60);
    assert!(fail(t, &e, "c1").await.is_ok());
    assert_eq!(fail(t, &e, "c1").await, Err(120), "the delay doubles");
    clock.advance(10_000);
    assert!(fail(t, &e, "c1").await.is_ok(), "locks are never permanent");
}

async fn a_lockout_shuts_out_only_the_client_that_failed(kind: Kind) {
    let Some((_s, _, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    let victim = email("victim@x.io");
    for _ in 0..5 {
        fail(t, &victim, "attacker").await.unwrap();
    }
    assert!(succeed(t, &victim, "attacker").await.is_err());
    assert!(succeed(t, &victim, "someone").await.is_ok());
    assert!(succeed(t, &email("other@x.io"), "someone").await.is_ok());
}

async fn many_emails_from_one_client_hit_the_client_budget(kind: Kind) {
    let Some((_s, clock, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    for i in 0..20 {
        let e = email(&format!("u{i}@x.io"));
        assert!(fail(t, &e, "stuffer").await.is_ok(), "attempt {i}");
    }
    let fresh = email("fresh@x.io");
    let wait = fail(t, &fresh, "stuffer").await.unwrap_err();
    assert!(succeed(t, &fresh, "innocent").await.is_ok());
    clock.advance(wait);
    for i in 0..6 {
        let e = email(&format!("n{i}@x.io"));
        assert!(fail(t, &e, "stuffer").await.is_ok());
    }
    assert!(fail(t, &fresh, "stuffer").await.unwrap_err() <= 60);
}

async fn an_account_past_its_ceiling_is_slowed_for_every_client(kind: Kind) {
    let settings = ThrottleSettings {
        account_max_failures: 10,
        ..ThrottleSettings::default()
    };
    let Some((_s, clock, t)) = setup(kind, settings).await else {
        return;
    };
    let t = &*t;
    let e = email("a@x.io");
    for i in 0..10 {
        fail(t, &e, if i % 2 == 0 { "c1" } else { "c2" })
            .await
            .unwrap();
    }
    next_minute(&clock);
    for _ in 0..6 {
        assert!(succeed(t, &e, "someone").await.is_ok());
    }
    let wait = succeed(t, &e, "someone").await.unwrap_err();
    assert!((1..=60).contains(&wait));
    assert!(
        succeed(t, &e, "c3").await.is_ok(),
        "another client's budget is its own"
    );
    clock.advance(wait);
    assert!(succeed(t, &e, "someone").await.is_ok());
}

async fn a_burst_in_flight_is_counted_before_any_of_it_is_settled(kind: Kind) {
    let Some((_s, _, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    let e = email("a@x.io");
    let mut admitted = Vec::new();
    for _ in 0..40 {
        admitted.extend(begin(t, &e, "c").await.ok());
    }
    assert_eq!(admitted.len(), 5, "the pair limit");
    let mut admitted = Vec::new();
    for i in 0..40 {
        admitted.extend(begin(t, &email(&format!("u{i}@x.io")), "c2").await.ok());
    }
    assert_eq!(admitted.len(), 20, "the client limit");
}

/// `n` begins at once, each on its own task, for `each(i)`: the admitted reservations.
async fn concurrent_begins(
    t: &Arc<dyn LoginAttempts>,
    n: usize,
    each: impl Fn(usize) -> (Email, &'static str),
) -> Vec<Reservation> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let t = t.clone();
            let (e, c) = each(i);
            tokio::spawn(async move { begin(&*t, &e, c).await.ok() })
        })
        .collect();
    let mut admitted = Vec::new();
    for task in tasks {
        admitted.extend(task.await.unwrap());
    }
    admitted
}

async fn a_concurrent_burst_is_admitted_exactly_to_each_limit(kind: Kind) {
    let Some((_s, _, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let admitted = concurrent_begins(&t, 40, |_| (email("a@x.io"), "c")).await;
    assert_eq!(admitted.len(), 5, "the pair limit");
    let admitted = concurrent_begins(&t, 40, |i| (email(&format!("u{i}@x.io")), "c2")).await;
    assert_eq!(admitted.len(), 20, "the client limit");
}

async fn an_unsettled_attempt_stays_a_failure_and_an_abandoned_one_counts_neither_way(kind: Kind) {
    let Some((_s, _, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    let e = email("a@x.io");
    for _ in 0..4 {
        fail(t, &e, "c").await.unwrap();
    }
    for _ in 0..10 {
        let r = begin(t, &e, "c").await.unwrap();
        t.abandoned(r).await.unwrap();
    }
    drop(begin(t, &e, "c").await.unwrap());
    assert!(begin(t, &e, "c").await.is_err(), "the dropped one counted");
}

async fn success_resets_the_pair_and_is_rate_limited_generously(kind: Kind) {
    let Some((_s, clock, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    let e = email("a@x.io");
    for _ in 0..4 {
        fail(t, &e, "c").await.unwrap();
    }
    succeed(t, &e, "c").await.unwrap();
    fail(t, &e, "c").await.unwrap();
    assert!(
        fail(t, &e, "c").await.is_ok(),
        "count restarted after success"
    );
    next_minute(&clock);
    for _ in 0..120 {
        assert!(succeed(t, &e, "c").await.is_ok());
    }
    assert!(
        succeed(t, &e, "c").await.is_err(),
        "121st attempt in a minute waits"
    );
}

async fn sign_ups_are_limited_per_client_per_minute(kind: Kind) {
    let settings = ThrottleSettings {
        enabled: false,
        ..ThrottleSettings::default()
    };
    let Some((_s, clock, t)) = setup(kind, settings).await else {
        return;
    };
    next_minute(&clock);
    for _ in 0..10 {
        assert_eq!(
            t.begin_registration(&client("c")).await.unwrap(),
            ThrottleDecision::Allow
        );
    }
    assert_eq!(
        t.begin_registration(&client("c")).await.unwrap(),
        ThrottleDecision::Wait {
            retry_after_secs: 60
        }
    );
    assert_eq!(
        t.begin_registration(&client("c2")).await.unwrap(),
        ThrottleDecision::Allow
    );
}

async fn the_lock_is_reported_by_exactly_one_attempt(kind: Kind) {
    let settings = ThrottleSettings {
        account_max_failures: 10,
        ..ThrottleSettings::default()
    };
    let Some((_s, _, t)) = setup(kind, settings).await else {
        return;
    };
    let t = &*t;
    let e = email("a@x.io");
    let mut locks = Vec::new();
    for _ in 0..5 {
        let r = begin(t, &e, "c1").await.unwrap();
        locks.push(r.locks);
        t.failed(r).await.unwrap();
    }
    assert_eq!(locks, [None, None, None, None, Some(Lockout::Pair)]);
    // Five more from other clients take the account to its ceiling: the tenth failure.
    let mut locks = Vec::new();
    for c in ["c2", "c3", "c2", "c3", "someone", "someone"] {
        let r = begin(t, &e, c).await.unwrap();
        locks.push(r.locks);
        t.failed(r).await.unwrap();
    }
    assert_eq!(
        locks,
        [None, None, None, None, Some(Lockout::Account), None],
        "the account's ceiling is reported once, not again past it"
    );
}

async fn a_concurrent_burst_reports_each_lock_exactly_once(kind: Kind) {
    let settings = ThrottleSettings {
        account_max_failures: 10,
        client_max_per_minute: 1000,
        ..ThrottleSettings::default()
    };
    let Some((_s, _, t)) = setup(kind, settings).await else {
        return;
    };
    let admitted = concurrent_begins(&t, 24, |_| (email("a@x.io"), "c1")).await;
    let pair_locks = admitted
        .iter()
        .filter(|r| r.locks == Some(Lockout::Pair))
        .count();
    assert_eq!((admitted.len(), pair_locks), (5, 1), "{admitted:?}");
    // Distinct clients (not locked as pairs, the ceiling of 10 then reached once).
    let clients = ["c2", "c3", "someone", "attacker"];
    let admitted = concurrent_begins(&t, 24, |i| (email("b@x.io"), clients[i % 4])).await;
    let account_locks = admitted
        .iter()
        .filter(|r| r.locks == Some(Lockout::Account))
        .count();
    assert_eq!(account_locks, 1, "{admitted:?}");
}

async fn expired_counters_are_swept(kind: Kind) {
    let Some((s, clock, t)) = setup(kind, ThrottleSettings::default()).await else {
        return;
    };
    let t = &*t;
    for i in 0..30 {
        let _ = fail(t, &email(&format!("u{i}@x.io")), "c").await;
    }
    t.begin_registration(&client("c")).await.unwrap();
    if let Some(rows) = s.rows().await {
        assert!(rows > 30, "{rows} rows");
    }
    t.sweep().await.unwrap();
    if let Some(rows) = s.rows().await {
        assert!(rows > 30, "nothing expired yet: {rows} rows");
    }
    if let Some(r) = &s.redis {
        // Redis expires keys on its own clock: each key's expiry is when its counter stops
        // holding anything back (a window, a lock or a minute), never later.
        let settings = ThrottleSettings::default();
        let bound = settings.window_secs.max(settings.max_lockout_secs) * 1000;
        for (key, ttl) in r.ttls().await {
            assert!(
                ttl > 0 && ttl <= i64::try_from(bound).unwrap(),
                "{key}: {ttl} ms"
            );
        }
    }
    clock.advance(3600);
    t.sweep().await.unwrap();
    if let (Some(rows), false) = (s.rows().await, kind == Kind::Redis) {
        assert_eq!(rows, 0);
    }
    assert!(
        fail(t, &email("u0@x.io"), "c").await.is_ok(),
        "a swept store starts afresh"
    );
}

// ---- Two instances on one store ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn failures_split_between_two_instances_lock_the_pair_as_at_one() {
    failures_split_between_two_instances(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn failures_split_between_two_instances_on_redis_lock_the_pair_as_at_one() {
    failures_split_between_two_instances(Kind::Redis).await;
}

async fn failures_split_between_two_instances(kind: Kind) {
    let Some(s) = Shared::new(kind, ThrottleSettings::default()).await else {
        return;
    };
    let ((c1, a), (c2, b)) = (s.instance(), s.instance());
    let e = email("a@x.io");
    for i in 0..5 {
        let t = if i % 2 == 0 { &a } else { &b };
        assert!(fail(&**t, &e, "c1").await.is_ok(), "failure {i}");
    }
    assert_eq!(fail(&*a, &e, "c1").await, Err(60), "locked on the first");
    assert_eq!(fail(&*b, &e, "c1").await, Err(60), "and on the second");
    assert!(
        succeed(&*b, &e, "c2").await.is_ok(),
        "only the failing client"
    );
    c1.advance(60);
    c2.advance(60);
    assert!(fail(&*b, &e, "c1").await.is_ok());
    assert_eq!(
        fail(&*a, &e, "c1").await,
        Err(120),
        "the delay doubles across them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn concurrent_begins_on_two_instances_never_overshoot() {
    concurrent_begins_on_two_instances(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn concurrent_begins_on_two_instances_on_redis_never_overshoot() {
    concurrent_begins_on_two_instances(Kind::Redis).await;
}

async fn concurrent_begins_on_two_instances(kind: Kind) {
    let Some(s) = Shared::new(kind, ThrottleSettings::default()).await else {
        return;
    };
    let ((_, a), (_, b)) = (s.instance(), s.instance());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let t = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { begin(&*t, &email("a@x.io"), "c").await.is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 5, "one pair budget across both instances");
}

/// Logins through the real app: `n` wrong passwords at once, alternating between `a` and `b`.
async fn split_burst(a: &Arc<TestApp>, b: &Arc<TestApp>, n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { app.login(DEMO_EMAIL, "wrong-password").await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn two_app_instances_on_one_database_share_one_login_budget() {
    let Some(first) = spawn_app_on(Store::Postgres).await else {
        return;
    };
    let second = spawn_second_instance(&first, &[]).await;
    two_apps_share_one_login_budget(first, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn two_app_instances_on_one_redis_share_one_login_budget() {
    let Some(space) = RedisSpace::new() else {
        return;
    };
    let first = spawn_app_with(&space.overrides()).await;
    let second = spawn_second_instance(&first, &space.overrides()).await;
    two_apps_share_one_login_budget(first, second).await;
}

async fn two_apps_share_one_login_budget(first: TestApp, second: TestApp) {
    let max = first.settings.login_max_failures as usize;
    // Sequential failures split between them lock the pair as at one instance.
    for i in 0..max {
        let app = if i % 2 == 0 { &first } else { &second };
        app.login(DEMO_EMAIL, "wrong-password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    for app in [&first, &second] {
        let r = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(r.status, 429, "locked on both: {}", r.body);
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn a_parallel_burst_split_across_two_instances_runs_at_most_the_pair_limit_of_checks() {
    let Some(first) = spawn_app_on(Store::Postgres).await else {
        return;
    };
    let second = spawn_second_instance(&first, &[]).await;
    a_split_burst_runs_at_most_the_pair_limit(first, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn a_parallel_burst_split_across_two_instances_on_redis_runs_at_most_the_pair_limit() {
    let Some(space) = RedisSpace::new() else {
        return;
    };
    let first = spawn_app_with(&space.overrides()).await;
    let second = spawn_second_instance(&first, &space.overrides()).await;
    a_split_burst_runs_at_most_the_pair_limit(first, second).await;
}

async fn a_split_burst_runs_at_most_the_pair_limit(first: TestApp, second: TestApp) {
    let max = first.settings.login_max_failures as usize;
    let (first, second) = (Arc::new(first), Arc::new(second));
    let before = first.hasher.calls().1 + second.hasher.calls().1;
    let statuses = split_burst(&first, &second, 24).await;
    let checks = first.hasher.calls().1 + second.hasher.calls().1 - before;
    assert!(
        checks <= max,
        "{checks} password checks for a limit of {max}"
    );
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!(count(401), checks, "{statuses:?}");
    assert_eq!(count(429), 24 - checks, "{statuses:?}");
    assert_eq!(checks, max, "the whole budget, no more: {statuses:?}");
}

// ---- An outage of the throttle's store ----

/// A PostgreSQL throttle nobody answers for (a closed port).
fn unreachable_throttle_db() -> Database {
    Database::connect_lazy(
        "postgres://postgres:pw-canary@127.0.0.1:1/x",
        PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_millis(300),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn an_unreachable_throttle_store_fails_closed_by_default() {
    let db = unreachable_throttle_db();
    let stores = Stores::new(Store::Memory).await.unwrap();
    let app = spawn_app_throttled_on(stores, &[], Some(&db)).await;
    let r = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    r.assert_error(503, "unavailable");
    assert!(r.set_cookie().is_none(), "no session: {:?}", r.headers);
    assert!(!r.body.contains("pw-canary"), "{}", r.body);
    assert_eq!(app.live_sessions().await, 0);
    let (_, checks) = app.hasher.calls();
    assert_eq!(checks, 0, "no password checked while the throttle is down");
}

#[tokio::test]
async fn an_unreachable_throttle_store_admits_uncounted_when_configured_open() {
    let db = unreachable_throttle_db();
    let stores = Stores::new(Store::Memory).await.unwrap();
    let app =
        spawn_app_throttled_on(stores, &[("THROTTLE_STORE_FAILURE", "open")], Some(&db)).await;
    let r = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.refresh_cookie().is_some_and(|c| !c.is_empty()));
    // Uncounted: more failures than the limit are all checked (the price of open).
    let max = app.settings.login_max_failures;
    for _ in 0..=max {
        app.login(DEMO_EMAIL, "wrong-password")
            .await
            .assert_error(401, "invalid_credentials");
    }
}

#[tokio::test]
async fn the_open_policy_counts_what_it_lets_through_and_closed_refuses() {
    let db = unreachable_throttle_db();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_unix(T0)));
    let inner = db
        .login_attempts(ThrottleSettings::default(), clock.clone())
        .unwrap();
    let open = OnStoreFailure::new(inner.clone(), StoreFailure::Open, clock.clone());
    for _ in 0..3 {
        assert!(begin(&open, &email("a@x.io"), "c").await.is_ok());
    }
    assert_eq!(
        open.begin_registration(&client("c")).await.unwrap(),
        ThrottleDecision::Allow
    );
    assert_eq!(open.admitted_uncounted(), 4);
    let closed = OnStoreFailure::new(inner, StoreFailure::Closed, clock);
    let err = closed
        .begin(&email("a@x.io"), &client("c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, jwt_auth::ports::StoreError::Unavailable(_)),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("pw-canary"));
}

#[tokio::test]
async fn the_store_failure_policy_is_closed_or_open() {
    let s = jwt_auth::config::Settings::from_pairs(&[]).unwrap();
    assert_eq!(s.throttle_store_failure, StoreFailure::Closed);
    let err = jwt_auth::config::Settings::from_pairs(&[("THROTTLE_STORE_FAILURE", "ajar")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("throttle_store_failure") || err.contains("THROTTLE_STORE_FAILURE"),
        "{err}"
    );
}

#[tokio::test]
async fn an_app_on_postgres_counts_logins_in_the_database() {
    let Some(app) = spawn_app_on(Store::Postgres).await else {
        return;
    };
    app.login(DEMO_EMAIL, "wrong-password")
        .await
        .assert_error(401, "invalid_credentials");
    let rows = app
        .db
        .as_ref()
        .unwrap()
        .db
        .query_i64("SELECT count(*) FROM login_throttle WHERE kind = 1")
        .await
        .unwrap();
    assert_eq!(rows, 1, "the pair's failure is in the shared table");
}

// ---- Redis ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn an_app_on_redis_counts_logins_under_its_prefix_with_no_email_in_clear() {
    let Some(space) = RedisSpace::new() else {
        return;
    };
    let app = spawn_app_with(&space.overrides()).await;
    app.login(DEMO_EMAIL, "wrong-password")
        .await
        .assert_error(401, "invalid_credentials");
    let keys = space.keys().await;
    // The pair, the account, the client and the two minute rates.
    assert_eq!(keys.len(), 5, "{keys:?}");
    let local = DEMO_EMAIL.split('@').next().unwrap();
    for key in &keys {
        assert!(
            key.starts_with(&format!("{}jwt-auth:throttle:", space.prefix)),
            "{key}"
        );
        assert!(!key.contains(local) && !key.contains("127.0.0.1"), "{key}");
    }
    let mut conn = space.conn().await;
    for key in &keys {
        let v: String = ::redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!v.contains(local), "{key} = {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn two_deployments_with_other_prefixes_on_one_redis_count_apart() {
    let (Some(a), Some(b)) = (RedisSpace::new(), RedisSpace::new()) else {
        return;
    };
    let first = spawn_app_with(&a.overrides()).await;
    let other = spawn_app_with(&b.overrides()).await;
    for _ in 0..first.settings.login_max_failures {
        first
            .login(DEMO_EMAIL, "wrong-password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_eq!(first.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 429);
    let r = other.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(r.status, 200, "another prefix, another budget: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    any(no_redis, no_postgres),
    ignore = "TEST_REDIS_URL or TEST_DATABASE_URL not set"
)]
async fn redis_wins_over_postgres_for_the_throttle() {
    let Some(space) = RedisSpace::new() else {
        return;
    };
    let Some(stores) = Stores::new(Store::Postgres).await else {
        return;
    };
    let app = spawn_app_from(stores, &space.overrides()).await;
    app.login(DEMO_EMAIL, "wrong-password")
        .await
        .assert_error(401, "invalid_credentials");
    let rows = app
        .db
        .as_ref()
        .unwrap()
        .db
        .query_i64("SELECT count(*) FROM login_throttle")
        .await
        .unwrap();
    assert_eq!(rows, 0, "nothing counted in PostgreSQL");
    assert_eq!(space.keys().await.len(), 5, "counted in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn redis_expires_every_key_when_its_counter_stops_holding_anything_back() {
    let settings = ThrottleSettings {
        window_secs: 1,
        lockout_secs: 1,
        max_lockout_secs: 1,
        ..ThrottleSettings::default()
    };
    let Some((s, clock, t)) = setup(Kind::Redis, settings).await else {
        return;
    };
    // One second before the minute ends, so the minute rates expire in a second too.
    clock.advance(59 - clock.now().unix() % 60);
    let t = &*t;
    for i in 0..10 {
        let _ = fail(t, &email(&format!("u{i}@x.io")), "c").await;
    }
    for _ in 0..6 {
        let _ = fail(t, &email("a@x.io"), "c2").await;
    }
    t.begin_registration(&client("c")).await.unwrap();
    assert!(s.rows().await.unwrap() > 10);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(s.rows().await, Some(0), "Redis forgot them on its own");
}

/// A Redis throttle nobody answers for (a closed port).
const UNREACHABLE_REDIS: &str = "redis://:pw-canary@127.0.0.1:1/0";

#[tokio::test]
async fn an_unreachable_redis_fails_closed_by_default() {
    let app = spawn_app_with(&[("REDIS_URL", UNREACHABLE_REDIS)]).await;
    let started = std::time::Instant::now();
    let r = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    r.assert_error(503, "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(r.set_cookie().is_none(), "no session: {:?}", r.headers);
    assert!(!r.body.contains("pw-canary"), "{}", r.body);
    assert_eq!(app.live_sessions().await, 0);
    assert_eq!(app.hasher.calls().1, 0, "no password checked");
}

#[tokio::test]
async fn an_unreachable_redis_admits_uncounted_when_configured_open() {
    let app = spawn_app_with(&[
        ("REDIS_URL", UNREACHABLE_REDIS),
        ("THROTTLE_STORE_FAILURE", "open"),
    ])
    .await;
    let r = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let max = app.settings.login_max_failures;
    for _ in 0..=max {
        app.login(DEMO_EMAIL, "wrong-password")
            .await
            .assert_error(401, "invalid_credentials");
    }
}

#[tokio::test]
async fn a_redis_url_is_checked_without_being_echoed() {
    for bad in [
        "rediss://:pw-canary@example.com/0",
        "http://pw-canary@example.com",
        "pw-canary",
    ] {
        let err = jwt_auth::config::Settings::from_pairs(&[("REDIS_URL", bad)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("REDIS_URL"), "{err}");
        assert!(!err.contains("pw-canary"), "{err}");
    }
    let ok = jwt_auth::config::Settings::from_pairs(&[("REDIS_URL", UNREACHABLE_REDIS)]).unwrap();
    assert!(!format!("{ok:?}").contains("pw-canary"), "{ok:?}");
    let err = jwt_auth::config::Settings::from_pairs(&[("REDIS_KEY_PREFIX", "a b")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("REDIS_KEY_PREFIX"), "{err}");
}

/// A Redis server of this test's own on a free port, so it can be stopped without touching
/// the one other tests share.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/redis.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn redis_stopped_mid_run_fails_closed_or_open_as_configured_and_recovers() {
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start(None);
    let url = redis.url();
    let closed = spawn_app_with(&[("REDIS_URL", &url)]).await;
    let open = spawn_app_with(&[("REDIS_URL", &url), ("THROTTLE_STORE_FAILURE", "open")]).await;
    for app in [&closed, &open] {
        app.login(DEMO_EMAIL, "wrong-password")
            .await
            .assert_error(401, "invalid_credentials");
    }

    redis.stop();
    let started = std::time::Instant::now();
    closed
        .login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(503, "unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "an outage answers promptly: {:?}",
        started.elapsed()
    );
    let checks = closed.hasher.calls().1;
    assert_eq!(checks, 1, "only the check made before the outage");
    let r = open.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(r.status, 200, "open lets it through: {}", r.body);

    // Back on the same port: the next logins are counted again, with no restart of the app.
    let _redis = OwnRedis::start(Some(redis.port));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = closed.login(DEMO_EMAIL, "wrong-password").await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(std::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let keys: Vec<String> = ::redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
        .keys("jwt-auth:throttle:*")
        .await
        .unwrap();
    assert_eq!(keys.len(), 5, "counted in the restarted Redis: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn a_redis_that_hangs_is_an_outage_within_the_timeout_not_a_hung_login() {
    if redis_url().is_none() {
        return;
    }
    let redis = OwnRedis::start(None);
    let app = spawn_app_with(&[("REDIS_URL", &redis.url())]).await;
    app.login(DEMO_EMAIL, "wrong-password")
        .await
        .assert_error(401, "invalid_credentials");
    let pid = libc::pid_t::try_from(redis.child.id()).unwrap();
    // SAFETY: signals a child process this test started and still owns.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = std::time::Instant::now();
    let r = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let took = started.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    r.assert_error(503, "unavailable");
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
    assert_eq!(app.hasher.calls().1, 1, "no check while it hung");
}

/// Many logins at once while Redis hangs: each waits at most the operation bound, queueing
/// behind the others on this instance included, then `open` lets it through uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_redis, ignore = "TEST_REDIS_URL not set")]
async fn concurrent_logins_while_redis_hangs_are_each_bounded_in_open_mode() {
    if redis_url().is_none() {
        return;
    }
    let redis = OwnRedis::start(None);
    let app = spawn_app_with(&[
        ("REDIS_URL", &redis.url()),
        ("THROTTLE_STORE_FAILURE", "open"),
    ])
    .await;
    let app = Arc::new(app);
    app.login(DEMO_EMAIL, "wrong-password")
        .await
        .assert_error(401, "invalid_credentials");
    let pid = libc::pid_t::try_from(redis.child.id()).unwrap();
    // SAFETY: signals a child process this test started and still owns.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = std::time::Instant::now();
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let app = app.clone();
        logins.spawn(async move { app.login(DEMO_EMAIL, "wrong-password").await.status });
    }
    let mut statuses = Vec::new();
    while let Some(s) = logins.join_next().await {
        statuses.push(s.unwrap());
    }
    let took = started.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(
        took < std::time::Duration::from_secs(6),
        "30 logins on one key while Redis hung took {took:?}"
    );
}

//! PostgreSQL's group commit of rotations: refreshes arriving together run as one statement and
//! one commit, each still getting its own outcome. To make a batch certain, the tests hold a lock
//! on every session row while the refreshes arrive: the rotations already sent to the database
//! wait on it and every later one queues, so all of those run as one batch once it is released.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jwt_auth::adapters::outbound::db::{Database, PoolSettings};
use sqlx::{Connection, PgConnection};

use crate::durable::{with_address, Proxy};
use crate::helpers::*;

/// Many logins of the demo account: no throttle, room for every session.
const SETTINGS: &[(&str, &str)] = &[
    ("LOGIN_THROTTLE_ENABLED", "false"),
    ("MAX_SESSIONS_PER_USER", "1000"),
];

async fn app_on_postgres() -> Option<TestApp> {
    let stores = Stores::new(Store::Postgres).await?;
    Some(spawn_app_from(stores, SETTINGS).await)
}

fn url_of(app: &TestApp) -> String {
    app.db.as_ref().expect("a database").url.clone()
}

async fn logins(app: &TestApp, n: usize) -> Vec<Resp> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(app.login_demo().await);
    }
    out
}

/// A transaction holding every session row locked until `release`.
struct Held(PgConnection);

impl Held {
    async fn every_session(url: &str) -> Self {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("SELECT 1 FROM sessions FOR UPDATE")
            .execute(&mut conn)
            .await
            .unwrap();
        Self(conn)
    }

    /// The demo account's sessions, found by index: a test counting the service's table scans
    /// does not count this one.
    async fn demo_sessions(url: &str) -> Self {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query(
            "SELECT 1 FROM sessions \
             WHERE user_id = (SELECT id FROM users WHERE email = $1) FOR UPDATE",
        )
        .bind(DEMO_EMAIL)
        .execute(&mut conn)
        .await
        .unwrap();
        Self(conn)
    }

    /// Returns once `n` other connections wait on a lock, and a little more so that the
    /// refreshes sent after them have queued.
    async fn until_waiting(&mut self, n: i64) {
        for _ in 0..400 {
            // Within a transaction the activity view is a snapshot taken at its first read.
            sqlx::query("SELECT pg_stat_clear_snapshot()")
                .execute(&mut self.0)
                .await
                .unwrap();
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut self.0)
            .await
            .unwrap();
            if waiting >= n {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the rotations never reached the lock");
    }

    async fn release(mut self) {
        sqlx::query("COMMIT").execute(&mut self.0).await.unwrap();
    }
}

/// Sends each cookie as a refresh at once, and returns the answers in the same order.
fn refresh_all(app: &Arc<TestApp>, cookies: &[String]) -> Vec<tokio::task::JoinHandle<Resp>> {
    cookies
        .iter()
        .map(|cookie| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { app.refresh(Some(&cookie)).await })
        })
        .collect()
}

async fn answers(tasks: Vec<tokio::task::JoinHandle<Resp>>) -> Vec<Resp> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn a_batch_of_many_sessions_gives_each_its_own_successor() {
    let Some(app) = app_on_postgres().await else {
        return;
    };
    let app = Arc::new(app);
    let cookies: Vec<String> = logins(&app, 40)
        .await
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    let mut held = Held::every_session(&url_of(&app)).await;
    let tasks = refresh_all(&app, &cookies);
    held.until_waiting(2).await;
    held.release().await;
    let rotated = answers(tasks).await;
    let mut successors = HashSet::new();
    for (resp, old) in rotated.iter().zip(&cookies) {
        assert_eq!(resp.status, 200, "{}", resp.body);
        let new = resp.refresh_cookie().unwrap();
        assert_ne!(&new, old);
        successors.insert(new);
    }
    assert_eq!(successors.len(), 40, "one successor per session");
    assert_eq!(crate::rotation::current_tokens(&app).await, 40);
    assert_eq!(app.live_sessions().await, 40);
    // Each successor is its session's current token: a second batch rotates them all on.
    let next: Vec<String> = rotated
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    for resp in answers(refresh_all(&app, &next)).await {
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    // The first tokens are two generations old now: reuse, which ends that session.
    app.refresh(Some(&cookies[0]))
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(app.live_sessions().await, 39);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn one_token_three_times_in_a_batch_rotates_once_and_all_get_its_successor() {
    let Some(app) = app_on_postgres().await else {
        return;
    };
    let app = Arc::new(app);
    let cookies: Vec<String> = logins(&app, 10)
        .await
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    // Every token three times, interleaved: the batch holds all three copies of most.
    let sent: Vec<String> = (0..3).flat_map(|_| cookies.iter().cloned()).collect();
    let mut held = Held::every_session(&url_of(&app)).await;
    let tasks = refresh_all(&app, &sent);
    held.until_waiting(2).await;
    held.release().await;
    let got = answers(tasks).await;
    for (i, old) in cookies.iter().enumerate() {
        let successors: HashSet<String> = got
            .iter()
            .skip(i)
            .step_by(cookies.len())
            .map(|resp| {
                assert_eq!(resp.status, 200, "every tab stays signed in: {}", resp.body);
                resp.refresh_cookie().unwrap()
            })
            .collect();
        assert_eq!(
            successors.len(),
            1,
            "one successor for {old}: {successors:?}"
        );
    }
    assert_eq!(
        crate::rotation::current_tokens(&app).await,
        10,
        "exactly one current token per session"
    );
    let consumed = app
        .db
        .as_ref()
        .unwrap()
        .db
        .query_i64("SELECT count(*) FROM refresh_tokens WHERE consumed_at IS NOT NULL")
        .await
        .unwrap();
    assert_eq!(consumed, 10, "each first token consumed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn refused_tokens_in_a_batch_are_refused_alone() {
    let Some(app) = app_on_postgres().await else {
        return;
    };
    let app = Arc::new(app);
    let logged_in = logins(&app, 12).await;
    let mut cookies: Vec<String> = logged_in
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    // The first session's token is spent twice over (reuse); one more session is logged out.
    let stale = cookies[0].clone();
    let once = app.refresh(Some(&stale)).await.refresh_cookie().unwrap();
    let twice = app.refresh(Some(&once)).await.refresh_cookie().unwrap();
    assert_eq!(app.logout(Some(&cookies[1])).await.status, 204);
    let unknown = jwt_auth::domain::RefreshToken::generate()
        .as_str()
        .to_owned();
    cookies.push(unknown);
    let mut held = Held::every_session(&url_of(&app)).await;
    let tasks = refresh_all(&app, &cookies);
    held.until_waiting(2).await;
    held.release().await;
    let got = answers(tasks).await;
    got[0].assert_error(401, "invalid_refresh_token");
    got[1].assert_error(401, "invalid_refresh_token");
    got[12].assert_error(401, "invalid_refresh_token");
    for resp in &got[2..12] {
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    // The reuse revoked its own session only.
    app.refresh(Some(&twice))
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(app.live_sessions().await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn a_rotation_that_fails_the_batch_fails_alone() {
    let Some(app) = app_on_postgres().await else {
        return;
    };
    let app = Arc::new(app);
    let logged_in = logins(&app, 12).await;
    let cookies: Vec<String> = logged_in
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    let doomed = payload_of(&logged_in[5].access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = &app.db.as_ref().unwrap().db;
    // The database refuses any new token of one session: the statement holding it fails.
    db.execute(&format!(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.session_id = '{doomed}' THEN RAISE EXCEPTION 'refused'; END IF; \
           RETURN NEW; END $$"
    ))
    .await
    .unwrap();
    db.execute(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON refresh_tokens \
         FOR EACH ROW EXECUTE FUNCTION refuse_one()",
    )
    .await
    .unwrap();
    let mut held = Held::every_session(&url_of(&app)).await;
    let tasks = refresh_all(&app, &cookies);
    held.until_waiting(2).await;
    held.release().await;
    let got = answers(tasks).await;
    for (i, resp) in got.iter().enumerate() {
        if i == 5 {
            assert_eq!(resp.status, 500, "{}", resp.body);
            assert!(resp.set_cookie().is_none(), "the cookie is kept");
        } else {
            assert_eq!(resp.status, 200, "{i}: {}", resp.body);
        }
    }
    db.execute("DROP TRIGGER refuse_one ON refresh_tokens")
        .await
        .unwrap();
    // Nothing of the failed rotation was written: its token is still current.
    let again = app.refresh(Some(&cookies[5])).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(crate::rotation::current_tokens(&app).await, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn an_outage_mid_batch_is_503_for_every_rotation_and_writes_nothing() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    let direct: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let target: SocketAddr = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = Database::connect(
        &with_address(&db.url, &format!("127.0.0.1:{}", proxy.port)),
        PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let url = db.url.clone();
    let app = spawn_app_from(
        Stores {
            users: proxied.users(),
            sessions: proxied.sessions(),
            memory: None,
            db: Some(db),
        },
        SETTINGS,
    )
    .await;
    let app = Arc::new(app);
    let cookies: Vec<String> = logins(&app, 16)
        .await
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    let mut held = Held::every_session(&url).await;
    let tasks = refresh_all(&app, &cookies);
    held.until_waiting(2).await;
    // The database goes away under the waiting batches: no new connection, and the server
    // ends the ones waiting.
    proxy.set_up(false);
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND wait_event_type = 'Lock'",
    )
    .execute(&mut held.0)
    .await
    .unwrap();
    held.release().await;
    for resp in answers(tasks).await {
        resp.assert_error(503, "unavailable");
        assert!(resp.set_cookie().is_none(), "an outage keeps the cookie");
    }
    let db = &app.db.as_ref().unwrap().db;
    let consumed = db
        .query_i64("SELECT count(*) FROM refresh_tokens WHERE consumed_at IS NOT NULL")
        .await
        .unwrap();
    assert_eq!(consumed, 0, "nothing rotated");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM refresh_tokens")
            .await
            .unwrap(),
        16,
        "no successor written"
    );
    proxy.set_up(true);
    // A pooled connection cut while idle is tested before use once idle for a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for cookie in &cookies {
        let mut resp = app.refresh(Some(cookie)).await;
        for _ in 0..4 {
            if resp.status != 503 {
                break;
            }
            resp = app.refresh(Some(cookie)).await;
        }
        assert_eq!(resp.status, 200, "every token still rotates: {}", resp.body);
    }
}

/// Sequential scans of the tables a rotation reads so far, once the backends' counters have
/// been reported (an idle backend that reported less than a second ago reports again 10 s
/// later).
async fn rotation_table_scans(url: &str) -> i64 {
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT sum(seq_scan)::int8 FROM pg_stat_user_tables \
         WHERE relname IN ('refresh_tokens', 'sessions', 'users')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Calls of the batch statement so far (as reported; `rotation_table_scans` waits for that).
async fn batch_calls(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_user_functions \
         WHERE funcname = 'rotate_refresh_tokens'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// One batch of every cookie (held, so they arrive together, `waiting` of them at the lock);
/// the successors, in order.
async fn one_batch(app: &Arc<TestApp>, url: &str, waiting: i64, cookies: &[String]) -> Vec<String> {
    let mut held = Held::demo_sessions(url).await;
    let tasks = refresh_all(app, cookies);
    held.until_waiting(waiting).await;
    held.release().await;
    answers(tasks)
        .await
        .iter()
        .map(|resp| {
            assert_eq!(resp.status, 200, "{}", resp.body);
            resp.refresh_cookie().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn batches_planned_on_a_young_database_never_scan_the_grown_tables() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    let url = db.url.clone();
    // One connection, which keeps one plan for each statement from the first execution on
    // (PostgreSQL settles on such a generic plan by itself after five executions, when it
    // costs no more than planning each time).
    // Function calls are counted too, to show the batches ran as batches.
    let generic = format!(
        "{url}{}options=-c%20plan_cache_mode%3Dforce_generic_plan%20-c%20track_functions%3Dpl",
        if url.contains('?') { '&' } else { '?' }
    );
    let one = Database::connect(
        &generic,
        PoolSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    let stores = Stores {
        users: one.users(),
        sessions: one.sessions(),
        memory: None,
        db: Some(db),
    };
    // No purge run (its scan of the sessions would count) while the test counts.
    let settings = [SETTINGS, &[("SESSION_PURGE_INTERVAL_SECS", "3600")]].concat();
    let app = Arc::new(spawn_app_from(stores, &settings).await);
    // No statistics arrive meanwhile (they would have the plans made again), whatever the
    // server's autovacuum setting.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for table in ["users", "sessions", "refresh_tokens"] {
        sqlx::query(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let mut cookies: Vec<String> = logins(&app, 8)
        .await
        .iter()
        .map(|r| r.refresh_cookie().unwrap())
        .collect();
    // Batches on the near-empty tables; one rotation holds the connection at the lock.
    for _ in 0..8 {
        cookies = one_batch(&app, &url, 1, &cookies).await;
    }
    // The tables grow to what a busy deployment holds: many sessions, one with a long history.
    sqlx::query(
        "WITH other AS ( \
             INSERT INTO users (id, email, password_hash, created_at) \
             VALUES (gen_random_uuid(), 'busy@example.com', 'x', now()) RETURNING id) \
         INSERT INTO sessions (id, user_id, created_at, expires_at) \
         SELECT gen_random_uuid(), other.id, now(), now() + interval '1 day' \
         FROM other, generate_series(1, 20000)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, session_id, issued_at, consumed_at, generation) \
         SELECT sha256(g::text::bytea), \
                (SELECT id FROM sessions ORDER BY created_at DESC, id LIMIT 1), \
                now(), now(), g \
         FROM generate_series(1, 50000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = rotation_table_scans(&url).await;
    let calls_before = batch_calls(&mut conn).await;
    for _ in 0..4 {
        cookies = one_batch(&app, &url, 1, &cookies).await;
    }
    assert_eq!(
        rotation_table_scans(&url).await,
        before,
        "a batch read a whole table instead of looking its rows up"
    );
    // Two workers share eight rotations a round: at most two go alone, the rest as a batch.
    let calls = batch_calls(&mut conn).await - calls_before;
    assert!(calls >= 4, "{calls} batch statements in four rounds");
    assert_eq!(crate::rotation::current_tokens(&app).await, 8);
}

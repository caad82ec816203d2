//! The audit trail, through the real app on every store: every kind of security event the
//! app emits ends in it with its account, session, client and user agent; no row holds a
//! password, token, cookie or email; `jwt-auth audit` lists and filters; retention purges;
//! a store that hangs under a flood of failed logins costs dropped (counted) events, not
//! slow requests or memory; rows on a database survive a restart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jwt_auth::adapters::inbound::cli;
use jwt_auth::adapters::outbound::audit::{AuditTrail, InMemoryAuditLog};
use jwt_auth::domain::{EventKind, Timestamp};
use jwt_auth::ports::{AuditLog, AuditQuery, AuditRecord, SecurityEvents, StoreError};
use jwt_auth::startup::{Adapters, Housekeeping};
use serde_json::{json, Value};

use crate::durable::{jwt_auth, text};
use crate::helpers::*;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
const EMAIL: &str = "audited@example.com";
const PASSWORD: &str = "correct horse battery";

fn trail(app: &TestApp) -> Arc<AuditTrail> {
    app.adapters
        .audit
        .clone()
        .expect("the audit trail is on by default")
}

/// Every row of the trail, newest first, once what is queued is written.
async fn rows(app: &TestApp) -> Vec<AuditRecord> {
    let trail = trail(app);
    trail.flush().await.expect("flush");
    trail
        .log()
        .query(&AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .expect("query")
}

async fn login_as(app: &TestApp, email: &str, password: &str) -> Resp {
    app.post("/auth/login")
        .header("user-agent", UA)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
}

/// Drives the app through every event kind it emits; returns the secrets it saw (password,
/// cookies, tokens) and the account id.
async fn every_kind(app: &TestApp) -> (Vec<String>, String) {
    let mut secrets = vec![PASSWORD.to_owned(), "wrong password".to_owned()];
    let created = app.register(EMAIL, PASSWORD).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();

    let ok = login_as(app, EMAIL, PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let cookie = ok.refresh_cookie().unwrap();
    secrets.push(
        cookie
            .split_once('=')
            .map_or(cookie.as_str(), |(_, v)| v)
            .to_owned(),
    );
    secrets.push(ok.access_token());
    for _ in 0..2 {
        assert_eq!(login_as(app, EMAIL, "wrong password").await.status, 401);
    }
    assert_eq!(login_as(app, EMAIL, PASSWORD).await.status, 429);

    // Reuse: a rotated token presented again after the grace window.
    let rotated = app.refresh(Some(&cookie)).await;
    assert_eq!(rotated.status, 200);
    secrets.push(rotated.access_token());
    app.clock.advance(app.settings.refresh_reuse_grace_secs + 1);
    assert_eq!(app.refresh(Some(&cookie)).await.status, 401);

    // Logout scopes, and a session ended from the list.
    let a = app.login_demo().await;
    let b = app.login_demo().await;
    secrets.push(a.access_token());
    let logout = app
        .post("/auth/logout?scope=local")
        .cookie(&b.refresh_cookie().unwrap())
        .send()
        .await;
    assert_eq!(logout.status, 204);
    let c = app.login_demo().await;
    let sessions = app
        .request(poem::http::Method::GET, "/auth/sessions")
        .header("authorization", format!("Bearer {}", a.access_token()))
        .send()
        .await;
    assert_eq!(sessions.status, 200, "{}", sessions.body);
    let other = sessions.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == json!(false))
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .expect("another session");
    let ended = app
        .request(
            poem::http::Method::DELETE,
            &format!("/auth/sessions/{other}"),
        )
        .header("authorization", format!("Bearer {}", a.access_token()))
        .send()
        .await;
    assert_eq!(ended.status, 204, "{}", ended.body);
    let global = app
        .post("/auth/logout?scope=global")
        .cookie(&a.refresh_cookie().unwrap())
        .send()
        .await;
    assert_eq!(global.status, 204);
    drop(c);
    let d = app.login_demo().await;
    let _e = app.login_demo().await;
    let others = app
        .post("/auth/logout?scope=others")
        .cookie(&d.refresh_cookie().unwrap())
        .send()
        .await;
    assert_eq!(others.status, 204);

    // Disabled, refused, enabled (as `jwt-auth user disable|enable` does it).
    app.set_disabled(DEMO_EMAIL, true).await;
    // Answered as a wrong password would be; the trail says why.
    assert_eq!(login_as(app, DEMO_EMAIL, DEMO_PASSWORD).await.status, 401);
    app.set_disabled(DEMO_EMAIL, false).await;

    // A key rotation: published, then promoted once its lead time passed.
    let lifecycle = app.adapters.key_lifecycle.clone().expect("generated keys");
    lifecycle.rotate().await.expect("rotate");
    app.clock.advance(30 * 86_400);
    lifecycle.tick().await.expect("tick");
    (secrets, id)
}

const EMITTED: [EventKind; 13] = [
    EventKind::AccountCreated,
    EventKind::LoginSucceeded,
    EventKind::NewLogin,
    EventKind::LoginFailed,
    EventKind::AccountLocked,
    EventKind::LoginThrottled,
    EventKind::RefreshReuse,
    EventKind::Logout,
    EventKind::SessionRevoked,
    EventKind::AccountDisabled,
    EventKind::LoginDisabled,
    EventKind::AccountEnabled,
    EventKind::KeyRotated,
];

async fn every_event_kind_ends_in_the_trail(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(
        stores,
        &[("LOGIN_MAX_FAILURES", "2"), ("JWT_ALGORITHM", "EdDSA")],
    )
    .await;
    let (_, id) = every_kind(&app).await;
    let rows = rows(&app).await;
    let kinds: HashSet<EventKind> = rows.iter().map(|r| r.kind).collect();
    for kind in EMITTED {
        assert!(
            kinds.contains(&kind),
            "{} missing: {kinds:?}",
            kind.as_str()
        );
    }
    let scopes: HashSet<_> = rows
        .iter()
        .filter(|r| r.kind == EventKind::Logout)
        .filter_map(|r| r.detail.as_deref())
        .collect();
    assert_eq!(scopes, HashSet::from(["local", "others", "global"]));
    // A login names the account, the session, the client and the user agent.
    let login = rows
        .iter()
        .rfind(|r| r.kind == EventKind::LoginSucceeded)
        .unwrap();
    assert_eq!(login.user.map(|u| u.to_string()), Some(id.clone()));
    assert!(login.session.is_some() && login.client.is_some());
    assert_eq!(login.user_agent.as_deref(), Some(UA));
    // Newest first.
    assert!(rows.windows(2).all(|w| w[0].at >= w[1].at));
    assert_eq!(rows[0].kind, EventKind::KeyRotated);
    assert_eq!(trail(&app).dropped(), 0);

    // The listing filters by account (given by email), kind and time.
    let args = |email: Option<&str>, kind, since| cli::AuditArgs {
        email: email.map(str::to_owned),
        kind,
        since,
        limit: None,
        json: true,
    };
    let list = |args: cli::AuditArgs| {
        let app = &app;
        async move {
            let out = cli::audit(
                trail(app).log().as_ref(),
                app.adapters.users.as_ref(),
                app.adapters.clock.as_ref(),
                &args,
            )
            .await
            .expect("audit");
            serde_json::from_str::<Vec<Value>>(&out).expect("a JSON array")
        }
    };
    let mine = list(args(Some(EMAIL), None, None)).await;
    assert!(mine.len() >= 6, "{mine:?}");
    assert!(mine.iter().all(|r| r["user_id"] == json!(id)));
    let failed = list(args(Some(EMAIL), Some(EventKind::LoginFailed), None)).await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    // Only the key promotion happened in the last day (the clock moved 30 days before it).
    let recent = list(args(None, None, Some(cli::Since::Ago(86_400)))).await;
    assert!(!recent.is_empty());
    assert!(
        recent.iter().all(|r| r["kind"] == "key_rotated"),
        "{recent:?}"
    );
    let unknown = cli::audit(
        trail(&app).log().as_ref(),
        app.adapters.users.as_ref(),
        app.adapters.clock.as_ref(),
        &args(Some("nobody@example.com"), None, None),
    )
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains("no account"), "{unknown}");
    let table = cli::audit_table(&rows);
    assert!(table.starts_with("at\tkind\tuser\tsession\tclient\tuser_agent\tdetail\n"));
    assert_eq!(table.lines().count(), rows.len() + 1);
}

/// No row holds the password, a cookie, a token or the email, in the log or (on a database)
/// in any column of the table.
async fn no_row_holds_a_secret_or_an_email(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(
        stores,
        &[("LOGIN_MAX_FAILURES", "2"), ("JWT_ALGORITHM", "EdDSA")],
    )
    .await;
    let (secrets, _) = every_kind(&app).await;
    let rows = rows(&app).await;
    let all = format!("{rows:?}{}", cli::audit_json(&rows));
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()), "a row shows {secret:?}");
    }
    assert!(
        !all.contains(EMAIL) && !all.contains(DEMO_EMAIL),
        "rows name ids, not emails"
    );
    assert!(!all.contains('@'), "{all}");
    if let Some(db) = &app.db {
        let columns = "coalesce(kind,'') || coalesce(client,'') || coalesce(user_agent,'') \
                       || coalesce(detail,'')";
        let total = db
            .db
            .query_i64("SELECT count(*) FROM audit_events")
            .await
            .unwrap();
        assert_eq!(usize::try_from(total).unwrap(), rows.len());
        let with_at = db
            .db
            .query_i64(&format!(
                "SELECT count(*) FROM audit_events WHERE {columns} LIKE '%@%'"
            ))
            .await
            .unwrap();
        assert_eq!(with_at, 0, "no email in any column");
    }
}

async fn retention_purges_old_events(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[("AUDIT_RETENTION_DAYS", "7")]).await;
    let housekeeping = || Housekeeping {
        sessions: app.adapters.sessions.clone(),
        attempts: app.adapters.attempts.clone(),
        clock: app.adapters.clock.clone(),
        every: Duration::from_secs(3600),
        batch: 1000,
        audit: Some(trail(&app).log()),
        audit_retention_secs: app.settings.audit_retention_days * 86_400,
    };
    for _ in 0..3 {
        assert_eq!(
            login_as(&app, DEMO_EMAIL, "not the password").await.status,
            401
        );
    }
    app.clock.advance(6 * 86_400);
    let _ = login_as(&app, DEMO_EMAIL, DEMO_PASSWORD).await;
    let before = rows(&app).await.len();
    assert!(before >= 4, "{before}");
    housekeeping().run_once().await;
    assert_eq!(rows(&app).await.len(), before, "nothing is 7 days old yet");
    app.clock.advance(2 * 86_400);
    housekeeping().run_once().await;
    let kept = rows(&app).await;
    assert!(
        kept.iter().all(|r| r.kind != EventKind::LoginFailed),
        "the old failures are purged: {kept:?}"
    );
    assert!(kept.iter().any(|r| r.kind == EventKind::LoginSucceeded));
    // 0 keeps everything forever.
    let mut forever = housekeeping();
    forever.audit_retention_secs = 0;
    app.clock.advance(365 * 86_400);
    forever.run_once().await;
    assert_eq!(rows(&app).await.len(), kept.len());
}

/// Rows written through one set of adapters are read by another on the same database, as by
/// a restarted instance.
async fn events_survive_a_restart(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let login = login_as(&app, DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(login.status, 200);
    // Not flushed by hand: closing the adapters writes what is queued.
    app.adapters.close().await;
    let url = app.db.as_ref().unwrap().url.clone();
    let settings = jwt_auth::config::Settings::from_pairs(&[
        ("DATABASE_URL", &url),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ])
    .unwrap();
    let restarted = Adapters::from_settings(&settings).await.expect("restart");
    let rows = restarted
        .audit
        .as_ref()
        .unwrap()
        .log()
        .query(&AuditQuery {
            kind: Some(EventKind::LoginSucceeded),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].user_agent.as_deref(), Some(UA));
    restarted.close().await;
}

/// The operator commands through the binary: their events are written before they exit,
/// `jwt-auth audit` lists and filters them, and bad filters are refused with exit code 2.
async fn the_cli_writes_lists_and_filters(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let db = stores.db.as_ref().unwrap();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ];
    let run = |args: &[&str], stdin: Option<&str>| {
        let out = jwt_auth(args, &env, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    run(&["user", "add", "--email", EMAIL], Some(PASSWORD));
    run(&["user", "disable", "--email", EMAIL], None);
    run(&["user", "enable", "--email", EMAIL], None);
    run(
        &["user", "add", "--email", "other@example.com"],
        Some(PASSWORD),
    );

    let listed: Vec<Value> = serde_json::from_str(&run(&["audit", "--json"], None)).unwrap();
    let kinds: Vec<&str> = listed.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "account_created",
            "account_enabled",
            "account_disabled",
            "account_created"
        ],
        "newest first"
    );
    let mine: Vec<Value> = serde_json::from_str(&run(
        &[
            "audit",
            "--email",
            EMAIL,
            "--kind",
            "account_disabled",
            "--json",
        ],
        None,
    ))
    .unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let limited: Vec<Value> = serde_json::from_str(&run(
        &["audit", "--limit", "2", "--json", "--since", "1h"],
        None,
    ))
    .unwrap();
    assert_eq!(limited.len(), 2);
    let future: Vec<Value> = serde_json::from_str(&run(
        &["audit", "--since", "2999-01-01T00:00:00Z", "--json"],
        None,
    ))
    .unwrap();
    assert!(future.is_empty());
    let table = run(&["audit"], None);
    assert!(table.starts_with("at\tkind\tuser"), "{table}");
    assert_eq!(table.trim_end().lines().count(), 5, "{table}");
    assert!(!table.contains(EMAIL), "{table}");

    for (args, named) in [
        (
            &["audit", "--kind", "LoginFailed"][..],
            "unknown event kind",
        ),
        (&["audit", "--since", "yesterday"][..], "--since"),
        (&["audit", "--since", "7y"][..], "unknown unit"),
        (&["audit", "--limit", "lots"][..], "--limit"),
    ] {
        let out = jwt_auth(args, &env, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let nobody = jwt_auth(&["audit", "--email", "nobody@example.com"], &env, None);
    assert!(!nobody.status.success());
    assert!(
        text(&nobody.stderr).contains("no account"),
        "{}",
        text(&nobody.stderr)
    );
}

/// A throttled login costs its sender nothing (refused before any hashing): a flood of them
/// must not become a row each. One row per client and account a minute, the rest counted.
async fn a_throttled_login_flood_keeps_one_row_a_minute(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(
        stores,
        &[("LOGIN_MAX_FAILURES", "2"), ("LOGIN_LOCKOUT_SECS", "600")],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(login_as(&app, DEMO_EMAIL, "wrong").await.status, 401);
    }
    for _ in 0..200 {
        assert_eq!(login_as(&app, DEMO_EMAIL, DEMO_PASSWORD).await.status, 429);
    }
    let throttled = |rows: &[AuditRecord]| {
        rows.iter()
            .filter(|r| r.kind == EventKind::LoginThrottled)
            .count()
    };
    assert_eq!(throttled(&rows(&app).await), 1);
    assert_eq!(trail(&app).coalesced(), 199);
    // The next minute is kept again: the trail still says when the flood went on.
    app.clock.advance(60);
    assert_eq!(login_as(&app, DEMO_EMAIL, DEMO_PASSWORD).await.status, 429);
    assert_eq!(throttled(&rows(&app).await), 2);
}

on_every_store!(
    every_event_kind_ends_in_the_trail,
    no_row_holds_a_secret_or_an_email,
    retention_purges_old_events,
    a_throttled_login_flood_keeps_one_row_a_minute
);

mod restart {
    on_databases!(events_survive_a_restart, the_cli_writes_lists_and_filters);
    use super::*;
}

/// A store that never answers: every append hangs.
#[derive(Default)]
struct Hung {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl AuditLog for Hung {
    async fn append(&self, _: &[AuditRecord]) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
    async fn query(&self, _: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn purge_before(&self, _: Timestamp, _: usize) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// Attack: a flood of failed logins while the audit store hangs. The requests are answered
/// as fast as without an audit trail, the queue stays at its bound (what does not fit is
/// dropped and counted), and closing the adapters does not hang on the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_store_under_a_login_flood_drops_and_counts_without_slowing_requests() {
    const CAPACITY: usize = 16;
    const FLOOD: usize = 400;
    let app = spawn_app_with(&[("AUDIT_ENABLED", "false")]).await;
    assert!(app.adapters.audit.is_none());
    let hung = Arc::new(Hung::default());
    let trail = AuditTrail::with_capacity(hung.clone(), CAPACITY);
    trail.start();
    app.adapters.events.subscribe(trail.clone());

    let started = Instant::now();
    let flood = async {
        let mut slowest = Duration::ZERO;
        for i in 0..FLOOD {
            let t = Instant::now();
            let email = format!("victim{}@example.com", i % 7);
            let status = login_as(&app, &email, "guessed password").await.status;
            assert!(status == 401 || status == 429, "{status}");
            slowest = slowest.max(t.elapsed());
        }
        slowest
    };
    let slowest = tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the flood is answered although the audit store hangs");
    assert!(
        slowest < Duration::from_secs(2),
        "slowest login {slowest:?}"
    );
    // One event per request: what the queue and the writer's one batch in hand cannot hold
    // is dropped and counted (throttled logins beyond the first of their minute are counted
    // apart, never queued).
    assert!(hung.calls.load(Ordering::SeqCst) >= 1);
    let dropped = usize::try_from(trail.dropped()).unwrap();
    let coalesced = usize::try_from(trail.coalesced()).unwrap();
    assert!(
        dropped + coalesced >= FLOOD - CAPACITY - 256,
        "dropped {dropped}, coalesced {coalesced}"
    );
    assert!(dropped > 0, "the queue filled");
    assert!(
        dropped + coalesced < FLOOD,
        "dropped {dropped}, coalesced {coalesced}"
    );
    // A shutdown waits a bounded time for the store, then gives up (and says so).
    let t = Instant::now();
    trail.close().await;
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    assert_eq!(trail.written(), 0);
    eprintln!(
        "flood of {FLOOD} logins took {:?}; {dropped} events dropped",
        started.elapsed()
    );
}

/// The in-memory trail keeps the newest 10,000 events, whatever a flood sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_ring_stays_bounded() {
    let log = Arc::new(InMemoryAuditLog::new());
    let trail = AuditTrail::new(log.clone());
    for i in 0..25_000u64 {
        trail.record(jwt_auth::domain::SecurityEvent::new(
            EventKind::LoginFailed,
            Timestamp::from_unix(T0 + i),
        ));
        if i % 5_000 == 0 {
            trail.flush().await.unwrap();
        }
    }
    trail.flush().await.unwrap();
    assert_eq!(log.len(), 10_000);
    let newest = log
        .query(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].at, Timestamp::from_unix(T0 + 24_999));
}

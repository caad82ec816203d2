//! Sessions people can live with: the grace window for concurrent tabs, the idle timeout, the
//! per-user cap, the sessions list, ending one session, and scoped logout — each through the
//! real app on the in-memory store, SQLite and PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use poem::http::Method;
use serde_json::Value;

use crate::db::{Store, Stores};
use crate::helpers::*;

/// Runs each case on every store, with its settings.
macro_rules! on_every_store {
    ($($case:ident [$($key:literal = $value:literal),*]),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Store::Memory, &[$(($key, $value)),*], super::$case).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Store::Sqlite, &[$(($key, $value)),*], super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
                async fn $case() {
                    super::run(super::Store::Postgres, &[$(($key, $value)),*], super::$case).await;
                }
            )*
        }
    };
}

async fn run<F, Fut>(store: Store, overrides: &[(&str, &str)], case: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    case(spawn_app_from(stores, overrides).await).await;
}

on_every_store!(
    a_replay_inside_the_window_gets_the_same_cookie_and_after_it_is_reuse [],
    a_token_two_generations_old_is_reuse_even_inside_the_window [],
    a_window_of_zero_is_strict_single_use ["REFRESH_REUSE_GRACE_SECS" = "0"],
    a_session_not_refreshed_for_the_idle_timeout_ends
        ["REFRESH_IDLE_TIMEOUT_DAYS" = "2", "REFRESH_TOKEN_EXPIRES_DAYS" = "3"],
    a_login_beyond_the_cap_ends_the_least_recently_used_session
        ["MAX_SESSIONS_PER_USER" = "3"],
    parallel_logins_never_overshoot_the_cap
        ["MAX_SESSIONS_PER_USER" = "3", "LOGIN_THROTTLE_ENABLED" = "false"],
    the_list_shows_the_callers_live_sessions_and_flags_the_current_one [],
    ending_a_session_by_id_stops_its_tokens_at_once [],
    another_users_session_is_not_found_and_untouched [],
    logout_others_keeps_this_session_and_global_ends_all [],
    a_stale_cookie_cannot_sign_its_owner_out_everywhere [],
    an_ended_sessions_cookie_cannot_sign_its_owner_out_everywhere
        ["REFRESH_TOKEN_EXPIRES_DAYS" = "1"],
    turning_on_the_idle_timeout_reaches_sessions_opened_before [],
    a_secret_rotation_does_not_turn_a_racing_tab_into_reuse [],
);

const DAY: u64 = 86_400;

async fn login_as(app: &TestApp, user_agent: &str) -> Resp {
    let resp = app
        .post("/auth/login")
        .header("user-agent", user_agent)
        .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp
}

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let resp = app
        .request(Method::GET, "/auth/sessions")
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["sessions"].as_array().unwrap().clone()
}

async fn end(app: &TestApp, access: &str, id: &str) -> Resp {
    app.request(Method::DELETE, &format!("/auth/sessions/{id}"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
}

async fn logout_scoped(app: &TestApp, cookie: &str, scope: &str) -> Resp {
    app.post(&format!("/auth/logout?scope={scope}"))
        .cookie(cookie)
        .send()
        .await
}

fn max_age(resp: &Resp) -> u64 {
    resp.cookie_attr("Max-Age").unwrap().parse().unwrap()
}

pub async fn a_replay_inside_the_window_gets_the_same_cookie_and_after_it_is_reuse(app: TestApp) {
    let first = app.login_demo().await.refresh_cookie().unwrap();
    let rotated = app.refresh(Some(&first)).await;
    let second = rotated.refresh_cookie().unwrap();
    // The default window is 5 s: 4 s later the same token gets the same successor.
    app.clock.advance(4);
    let replay = app.refresh(Some(&first)).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(
        replay.refresh_cookie().unwrap(),
        second,
        "the same successor"
    );
    assert_ne!(
        replay.access_token(),
        rotated.access_token(),
        "a fresh access token"
    );
    assert_eq!(app.me(&replay.access_token()).await.status, 200);
    assert_eq!(crate::rotation::current_tokens(&app).await, 1);
    // 5 s after the rotation the window is closed: reuse, the session is revoked.
    app.clock.advance(1);
    app.refresh(Some(&first))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.refresh(Some(&second))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.me(&replay.access_token())
        .await
        .assert_error(401, "invalid_token");
}

pub async fn a_token_two_generations_old_is_reuse_even_inside_the_window(app: TestApp) {
    let first = app.login_demo().await.refresh_cookie().unwrap();
    let second = app.refresh(Some(&first)).await.refresh_cookie().unwrap();
    let third = app.refresh(Some(&second)).await;
    assert_eq!(third.status, 200);
    // No time has passed, yet `first`'s successor is no longer current.
    app.refresh(Some(&first))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.refresh(third.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    app.me(&third.access_token())
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(app.live_sessions().await, 0);
}

pub async fn a_window_of_zero_is_strict_single_use(app: TestApp) {
    let first = app.login_demo().await.refresh_cookie().unwrap();
    let second = app.refresh(Some(&first)).await.refresh_cookie().unwrap();
    app.refresh(Some(&first))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.refresh(Some(&second))
        .await
        .assert_error(401, "invalid_refresh_token");
}

pub async fn a_session_not_refreshed_for_the_idle_timeout_ends(app: TestApp) {
    let login = app.login_demo().await;
    assert_eq!(max_age(&login), 2 * DAY, "the cookie promises the idle end");
    let mut cookie = login.refresh_cookie().unwrap();
    // Refreshed within the timeout, it lives on: the idle end moves with each refresh...
    app.clock.advance(2 * DAY - 1);
    let resp = app.refresh(Some(&cookie)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        max_age(&resp),
        DAY + 1,
        "...but never past the absolute end"
    );
    cookie = resp.refresh_cookie().unwrap();
    let access = resp.access_token();
    let listed = list(&app, &access).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["idle_expires_at"],
        T0 + 3 * DAY,
        "clamped to the end"
    );
    assert_eq!(listed[0]["expires_at"], T0 + 3 * DAY);
    // Absolute end first here; now a fresh login that then sits idle.
    let idle = app.login_demo().await;
    let idle_cookie = idle.refresh_cookie().unwrap();
    app.clock.advance(2 * DAY);
    app.refresh(Some(&idle_cookie))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.me(&idle.access_token())
        .await
        .assert_error(401, "invalid_token");
    // The first one reached its absolute end meanwhile.
    app.refresh(Some(&cookie))
        .await
        .assert_error(401, "invalid_refresh_token");
}

pub async fn a_login_beyond_the_cap_ends_the_least_recently_used_session(app: TestApp) {
    let mut cookies = Vec::new();
    for i in 0..3 {
        cookies.push(
            login_as(&app, &format!("device {i}"))
                .await
                .refresh_cookie()
                .unwrap(),
        );
        app.clock.advance(10);
    }
    // Device 0 is used again, so device 1 is now the least recently used.
    let used = app.refresh(Some(&cookies[0])).await;
    assert_eq!(used.status, 200);
    cookies[0] = used.refresh_cookie().unwrap();
    app.clock.advance(10);
    let fourth = login_as(&app, "device 3").await;
    let listed = list(&app, &fourth.access_token()).await;
    let agents: HashSet<_> = listed
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        agents,
        HashSet::from(["device 0".into(), "device 2".into(), "device 3".into()]),
        "{listed:?}"
    );
    app.refresh(Some(&cookies[1]))
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(app.refresh(Some(&cookies[0])).await.status, 200);
    assert_eq!(app.refresh(Some(&cookies[2])).await.status, 200);
}

pub async fn parallel_logins_never_overshoot_the_cap(app: TestApp) {
    let app = Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let app = app.clone();
        tasks.spawn(async move { app.login_demo().await.access_token() });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(app.live_sessions().await, 3, "the cap holds under a burst");
    let fresh = app.login_demo().await.access_token();
    assert_eq!(list(&app, &fresh).await.len(), 3);
}

pub async fn the_list_shows_the_callers_live_sessions_and_flags_the_current_one(app: TestApp) {
    let phone = login_as(&app, "Phone/1.0").await;
    app.clock.advance(60);
    let laptop = login_as(&app, "Laptop/2.0").await;
    let ended = login_as(&app, "Ended/0").await;
    app.logout(ended.refresh_cookie().as_deref()).await;
    let from_phone = list(&app, &phone.access_token()).await;
    assert_eq!(
        from_phone.len(),
        2,
        "ended sessions are not listed: {from_phone:?}"
    );
    // Most recently used first; `current` marks the asking token's session.
    assert_eq!(from_phone[0]["user_agent"], "Laptop/2.0");
    assert_eq!(from_phone[0]["current"], false);
    assert_eq!(from_phone[1]["user_agent"], "Phone/1.0");
    assert_eq!(from_phone[1]["current"], true);
    let phone_session = &from_phone[1];
    assert_eq!(phone_session["created_at"], T0);
    assert_eq!(phone_session["last_used_at"], T0);
    assert_eq!(phone_session["expires_at"], T0 + 30 * DAY);
    assert!(
        phone_session.get("idle_expires_at").is_none(),
        "absent without a timeout"
    );
    assert!(
        phone_session["client_address"].is_string(),
        "{phone_session}"
    );
    assert_eq!(
        phone_session["id"],
        payload_of(&phone.access_token())["sid"],
        "the id is the access token's sid"
    );
    // A refresh is a use: the phone moves to the top.
    app.clock.advance(60);
    let refreshed = app.refresh(phone.refresh_cookie().as_deref()).await;
    let from_laptop = list(&app, &laptop.access_token()).await;
    assert_eq!(from_laptop[0]["user_agent"], "Phone/1.0");
    assert_eq!(from_laptop[0]["last_used_at"], T0 + 120);
    assert_eq!(from_laptop[1]["current"], true);
    assert_eq!(refreshed.status, 200);
}

pub async fn ending_a_session_by_id_stops_its_tokens_at_once(app: TestApp) {
    let mine = app.login_demo().await;
    let other = app.login_demo().await;
    let listed = list(&app, &mine.access_token()).await;
    let other_id = listed.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = end(&app, &mine.access_token(), &other_id).await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    app.me(&other.access_token())
        .await
        .assert_error(401, "invalid_token");
    app.refresh(other.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(list(&app, &mine.access_token()).await.len(), 1);
    // Once ended it is as unknown as any other id.
    end(&app, &mine.access_token(), &other_id)
        .await
        .assert_error(404, "not_found");
    // Ending one's own session works too, and then its token is worth nothing.
    let own = payload_of(&mine.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(end(&app, &mine.access_token(), &own).await.status, 204);
    app.me(&mine.access_token())
        .await
        .assert_error(401, "invalid_token");
}

pub async fn another_users_session_is_not_found_and_untouched(app: TestApp) {
    app.add_user("mallory@example.com", "mallory-password")
        .await;
    let victim = app.login_demo().await;
    let victim_sid = payload_of(&victim.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mallory = app.login("mallory@example.com", "mallory-password").await;
    let m = mallory.access_token();
    let probe = end(&app, &m, &victim_sid).await;
    probe.assert_error(404, "not_found");
    let unknown = end(&app, &m, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (probe.status, probe.body.clone()),
        "someone else's and an unknown id answer alike"
    );
    end(&app, &m, "not-a-uuid")
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.me(&victim.access_token()).await.status, 200);
    let theirs = list(&app, &m).await;
    assert_eq!(theirs.len(), 1, "only mallory's own: {theirs:?}");
    assert_eq!(theirs[0]["current"], true);
}

pub async fn logout_others_keeps_this_session_and_global_ends_all(app: TestApp) {
    let here = app.login_demo().await;
    let b = app.login_demo().await;
    let c = app.login_demo().await;
    let cookie = here.refresh_cookie().unwrap();
    let resp = logout_scoped(&app, &cookie, "others").await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.set_cookie(), None, "this session's cookie stays");
    for gone in [&b, &c] {
        app.me(&gone.access_token())
            .await
            .assert_error(401, "invalid_token");
        app.refresh(gone.refresh_cookie().as_deref())
            .await
            .assert_error(401, "invalid_refresh_token");
    }
    assert_eq!(app.me(&here.access_token()).await.status, 200);
    let next = app.refresh(Some(&cookie)).await;
    assert_eq!(next.status, 200, "this session lives on");
    let d = app.login_demo().await;
    let resp = logout_scoped(&app, &next.refresh_cookie().unwrap(), "global").await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.refresh_cookie().as_deref(), Some(""), "cleared");
    app.me(&d.access_token())
        .await
        .assert_error(401, "invalid_token");
    app.me(&next.access_token())
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(app.live_sessions().await, 0);
}

pub async fn a_stale_cookie_cannot_sign_its_owner_out_everywhere(app: TestApp) {
    let stolen = app.login_demo().await.refresh_cookie().unwrap();
    let other = app.login_demo().await;
    // The owner rotates; the window passes; the old cookie is stale.
    let current = app.refresh(Some(&stolen)).await.refresh_cookie().unwrap();
    app.clock.advance(10);
    assert_eq!(logout_scoped(&app, &stolen, "global").await.status, 204);
    // It ended its own session only (as a replay would), not the owner's other ones.
    app.refresh(Some(&current))
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(app.me(&other.access_token()).await.status, 200);
}

pub async fn an_ended_sessions_cookie_cannot_sign_its_owner_out_everywhere(app: TestApp) {
    let ended = app.login_demo().await.refresh_cookie().unwrap();
    app.clock.advance(DAY / 2);
    let live = app.login_demo().await;
    app.clock.advance(DAY / 2 + 60);
    // `ended` reached its absolute end; the purge has not run yet.
    assert_eq!(logout_scoped(&app, &ended, "global").await.status, 204);
    assert_eq!(logout_scoped(&app, &ended, "others").await.status, 204);
    assert_eq!(
        app.refresh(live.refresh_cookie().as_deref()).await.status,
        200
    );
}

/// Sessions opened while no idle timeout was configured are brought under one as soon as a
/// service starts with it, not only once refreshed.
pub async fn turning_on_the_idle_timeout_reaches_sessions_opened_before(app: TestApp) {
    let old = app.login_demo().await.refresh_cookie().unwrap();
    let kept = app.login_demo().await.refresh_cookie().unwrap();
    let strict = spawn_second_instance(&app, &[("REFRESH_IDLE_TIMEOUT_DAYS", "1")]).await;
    strict.clock.advance(DAY - 1);
    let resp = strict.refresh(Some(&kept)).await;
    assert_eq!(resp.status, 200, "refreshed in time: {}", resp.body);
    strict.clock.advance(1);
    strict
        .refresh(Some(&old))
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(
        strict
            .refresh(resp.refresh_cookie().as_deref())
            .await
            .status,
        200
    );
}

/// During a secret rotation, tab A refreshes at an instance still on the old secret and tab B
/// presents the same cookie at once to one on the new secret (with the old as
/// `JWT_PREVIOUS_SECRET_KEY`): B gets A's successor, and the session lives on.
pub async fn a_secret_rotation_does_not_turn_a_racing_tab_into_reuse(app: TestApp) {
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    let rotated = spawn_second_instance(
        &app,
        &[
            (
                "JWT_SECRET_KEY",
                "a-new-secret-9876543210-zyxwvutsrqponmlkjihgfedcba",
            ),
            ("JWT_PREVIOUS_SECRET_KEY", TEST_SECRET),
        ],
    )
    .await;
    let on_old = app.refresh(Some(&cookie)).await;
    assert_eq!(on_old.status, 200);
    let on_new = rotated.refresh(Some(&cookie)).await;
    assert_eq!(on_new.status, 200, "{}", on_new.body);
    assert_eq!(
        on_new.refresh_cookie(),
        on_old.refresh_cookie(),
        "A's successor"
    );
    let next = rotated.refresh(on_new.refresh_cookie().as_deref()).await;
    assert_eq!(next.status, 200, "the session lives on");
}

// ---- not per store ----

#[tokio::test]
async fn the_endpoints_need_a_valid_access_token() {
    let app = spawn_app().await;
    let cookie_only = app.login_demo().await;
    for (method, path) in [
        (Method::GET, "/auth/sessions".to_owned()),
        (
            Method::DELETE,
            format!("/auth/sessions/{}", uuid::Uuid::new_v4()),
        ),
    ] {
        for auth in [None, Some("Bearer nonsense"), Some("Basic Zm9vOmJhcg==")] {
            let mut req = app.request(method.clone(), &path);
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let resp = req.send().await;
            resp.assert_error(401, "invalid_token");
            assert!(resp.header("www-authenticate").is_some());
        }
    }
    // A refresh token is not an access token.
    let resp = app
        .request(Method::GET, "/auth/sessions")
        .header(
            "authorization",
            format!("Bearer {}", cookie_only.refresh_cookie().unwrap()),
        )
        .send()
        .await;
    resp.assert_error(401, "invalid_token");
}

#[tokio::test]
async fn a_cross_site_delete_is_refused_and_ends_nothing() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let sid = payload_of(&login.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = app
        .request(Method::DELETE, &format!("/auth/sessions/{sid}"))
        .header("authorization", format!("Bearer {}", login.access_token()))
        .header("origin", "https://evil.example")
        .send()
        .await;
    resp.assert_error(403, "forbidden_origin");
    assert_eq!(app.me(&login.access_token()).await.status, 200);
}

#[tokio::test]
async fn an_unknown_logout_scope_is_400_and_ends_nothing() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let cookie = login.refresh_cookie().unwrap();
    // A repeated scope is refused rather than guessed at: a proxy or a log may read the
    // other one.
    for scope in [
        "everything",
        "GLOBAL",
        "",
        "local&scope=global",
        "global&scope=global",
        "local&%73cope=global",
        "global&sc%6fpe=local",
    ] {
        logout_scoped(&app, &cookie, scope)
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(app.me(&login.access_token()).await.status, 200);
}

#[tokio::test]
async fn a_huge_or_hostile_user_agent_is_stored_bounded_and_inert() {
    let app = spawn_app().await;
    let ua = format!("Evil\t[2J{}", "A".repeat(10_000));
    let login = login_as(&app, &ua).await;
    let listed = list(&app, &login.access_token()).await;
    let stored = listed[0]["user_agent"].as_str().unwrap();
    assert_eq!(stored.chars().count(), 256);
    assert!(
        stored.starts_with("Evil\u{fffd}[2J"),
        "no control characters kept"
    );
    // No user agent at all is fine too.
    let bare = app.login_demo().await;
    let listed = list(&app, &bare.access_token()).await;
    assert!(listed
        .iter()
        .any(|s| s["current"] == true && s.get("user_agent").is_none()));
}

#[tokio::test]
async fn parallel_tabs_refreshing_together_all_stay_signed_in_on_one_cookie() {
    // Two tabs, one cookie, at once: both 200 with one identical new cookie.
    let app = Arc::new(spawn_app().await);
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    let (a, b) = tokio::join!(app.refresh(Some(&cookie)), app.refresh(Some(&cookie)));
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.refresh_cookie(), b.refresh_cookie());
}

/// A database of the previous release (migrations up to 0002) with a live session in it is
/// upgraded in place: the session keeps working, gains a last use, and has no idle end.
async fn an_existing_database_upgrades_in_place(store: Store) {
    use jwt_auth::adapters::outbound::db::DatabaseKind;
    use jwt_auth::domain::RefreshToken;
    let Some(db) = (match store {
        Store::Postgres => crate::db::TestDb::postgres_unmigrated().await,
        _ => Some(crate::db::TestDb::sqlite_unmigrated().await),
    }) else {
        return;
    };
    db.db.migrate_up_to(2).await.unwrap();
    let (user, session) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let token = RefreshToken::generate();
    let hex: String = token
        .hash()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let postgres = db.db.kind() == DatabaseKind::Postgres;
    let time = |secs: u64| {
        if postgres {
            format!("to_timestamp({secs})")
        } else {
            secs.to_string()
        }
    };
    let blob = if postgres {
        format!("decode('{hex}', 'hex')")
    } else {
        format!("X'{hex}'")
    };
    for sql in [
        format!(
            "INSERT INTO users (id, email, password_hash, created_at, disabled) \
             VALUES ('{user}', 'old@example.com', 'x', {}, false)",
            time(T0 - 100)
        ),
        format!(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) \
             VALUES ('{session}', '{user}', {}, {})",
            time(T0 - 50),
            time(T0 + 30 * DAY)
        ),
        format!(
            "INSERT INTO refresh_tokens (hash, session_id, issued_at) \
             VALUES ({blob}, '{session}', {})",
            time(T0 - 50)
        ),
    ] {
        db.db.execute(&sql).await.unwrap();
    }
    db.db.migrate().await.unwrap();
    let count = |sql: &'static str| {
        let db = &db.db;
        async move { db.query_i64(sql).await.unwrap() }
    };
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE last_used_at IS NULL").await,
        0,
        "last use backfilled"
    );
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE idle_expires_at IS NULL").await,
        1
    );
    let stores = Stores {
        users: db.users(),
        sessions: db.sessions(),
        memory: None,
        db: Some(db),
    };
    let app = spawn_app_from(stores, &[]).await;
    let resp = app.refresh(Some(token.as_str())).await;
    assert_eq!(resp.status, 200, "the old session refreshes: {}", resp.body);
    let listed = list(&app, &resp.access_token()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], session.to_string());
    assert_eq!(listed[0]["created_at"], T0 - 50);
    assert_eq!(listed[0]["last_used_at"], T0);
    assert!(listed[0].get("idle_expires_at").is_none());
}

#[tokio::test]
async fn an_existing_sqlite_database_upgrades_in_place() {
    an_existing_database_upgrades_in_place(Store::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn an_existing_postgres_database_upgrades_in_place() {
    an_existing_database_upgrades_in_place(Store::Postgres).await;
}

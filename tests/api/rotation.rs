//! Refresh rotation, reuse detection, the race, and absolute session lifetime (section C).

use std::collections::HashSet;
use std::sync::Arc;

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_and_marks_the_old_token_used() {
    // Checklist case 22.
    refresh_rotates(spawn_app().await).await;
}

pub async fn refresh_rotates(app: TestApp) {
    let login = app.login_demo().await;
    let old = login.refresh_cookie().unwrap();
    let resp = app.refresh(Some(&old)).await;
    assert_eq!(resp.status, 200);
    let new = resp.refresh_cookie().unwrap();
    assert_ne!(new, old);
    assert_ne!(resp.access_token(), login.access_token());
    assert_eq!(app.live_sessions().await, 1, "one session");
    if app.memory.is_some() {
        assert_eq!(
            app.store_counts(),
            (1, 2),
            "one session; old (consumed) and new hash"
        );
    }
}

#[tokio::test]
async fn replay_of_a_rotated_token_revokes_the_whole_family() {
    // Checklist case 23.
    replay_revokes_the_family(spawn_app().await).await;
}

pub async fn replay_revokes_the_family(app: TestApp) {
    let login = app.login_demo().await;
    let first = login.refresh_cookie().unwrap();
    let second = app.refresh(Some(&first)).await.refresh_cookie().unwrap();
    let newest_access = app.refresh(Some(&second)).await;
    let newest = newest_access.refresh_cookie().unwrap();

    let replay = app.refresh(Some(&first)).await;
    replay.assert_error(401, "invalid_refresh_token");
    assert_eq!(
        replay.refresh_cookie().as_deref(),
        Some(""),
        "failed refresh clears the cookie"
    );
    app.refresh(Some(&newest))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.me(&newest_access.access_token())
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_with_one_token_all_get_one_successor() {
    // Checklist case 24, under the grace window: the tabs of one browser share a cookie.
    twenty_parallel_refreshes(spawn_app().await).await;
}

pub async fn twenty_parallel_refreshes(app: TestApp) {
    let app = Arc::new(app);
    let token = app.login_demo().await.refresh_cookie().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let app = app.clone();
        let token = token.clone();
        tasks.spawn(async move { app.refresh(Some(&token)).await });
    }
    let mut cookies = HashSet::new();
    let mut access = HashSet::new();
    while let Some(resp) = tasks.join_next().await {
        let resp = resp.unwrap();
        assert_eq!(resp.status, 200, "every tab stays signed in: {}", resp.body);
        cookies.insert(resp.refresh_cookie().unwrap());
        access.insert(resp.access_token());
    }
    assert_eq!(cookies.len(), 1, "one successor for all: {cookies:?}");
    assert_eq!(access.len(), 24, "each tab its own access token");
    assert_eq!(current_tokens(&app).await, 1, "exactly one current token");
    assert_eq!(app.live_sessions().await, 1);
    // That successor is the session's current token: it rotates on.
    let next = cookies.into_iter().next().unwrap();
    let after = app.refresh(Some(&next)).await;
    assert_eq!(after.status, 200, "{}", after.body);
    // Now the original is two generations old: reuse, and the session is revoked.
    app.refresh(Some(&token))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.refresh(after.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
}

/// Unconsumed refresh tokens in the store, on any store.
pub async fn current_tokens(app: &TestApp) -> i64 {
    match (&app.memory, &app.db) {
        (Some(memory), _) => i64::try_from(memory.current_tokens()).unwrap(),
        (None, Some(db)) => db
            .db
            .query_i64(
                "SELECT count(*) FROM refresh_tokens WHERE consumed_at IS NULL \
                 AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL)",
            )
            .await
            .unwrap(),
        (None, None) => unreachable!(),
    }
}

#[tokio::test]
async fn session_ends_at_30_days_and_rotation_never_extends_it() {
    // Checklist case 25.
    session_ends_at_30_days(spawn_app().await).await;
}

pub async fn session_ends_at_30_days(app: TestApp) {
    let mut cookie = app.login_demo().await.refresh_cookie().unwrap();
    app.clock.advance(29 * 86_400);
    let day29 = app.refresh(Some(&cookie)).await;
    assert_eq!(day29.status, 200);
    assert_eq!(
        day29.cookie_attr("Max-Age").as_deref(),
        Some("86400"),
        "ends on day 30 from login"
    );
    cookie = day29.refresh_cookie().unwrap();
    app.clock.advance(86_400 - 1);
    let last_second = app.refresh(Some(&cookie)).await;
    assert_eq!(last_second.status, 200);
    assert_eq!(last_second.cookie_attr("Max-Age").as_deref(), Some("1"));
    cookie = last_second.refresh_cookie().unwrap();
    app.clock.advance(1);
    let expired = app.refresh(Some(&cookie)).await;
    expired.assert_error(401, "invalid_refresh_token");
    assert_eq!(expired.cookie_attr("Max-Age").as_deref(), Some("0"));
    assert_eq!(
        app.live_sessions().await,
        0,
        "the expired session was revoked"
    );
}

#[tokio::test]
async fn bad_cookie_values_get_401_and_no_new_token() {
    // Checklist case 26.
    let app = spawn_app().await;
    app.login_demo().await;
    let before = app.store_counts();
    let random = b64(&[7u8; 32]);
    let big = "A".repeat(4096);
    for cookie in [
        None,
        Some(""),
        Some(random.as_str()),
        Some(big.as_str()),
        Some("%FF%FE"),
    ] {
        let resp = app.refresh(cookie).await;
        resp.assert_error(401, "invalid_refresh_token");
        assert_eq!(resp.refresh_cookie().as_deref(), Some(""), "{cookie:?}");
    }
    // A raw non-UTF-8 cookie header.
    let resp = app
        .client
        .post("/auth/refresh")
        .header(
            "cookie",
            poem::http::HeaderValue::from_bytes(b"refresh_token=\xff\xfe").unwrap(),
        )
        .send()
        .await;
    let resp = Resp::read(resp.0).await;
    resp.assert_error(401, "invalid_refresh_token");
    assert_eq!(app.store_counts(), before, "nothing changed");
}

#[tokio::test]
async fn access_jwt_in_the_refresh_cookie_and_refresh_token_as_bearer_are_refused() {
    // Checklist case 20.
    let app = spawn_app().await;
    let login = app.login_demo().await;
    app.refresh(Some(&login.access_token()))
        .await
        .assert_error(401, "invalid_refresh_token");
    app.me(&login.refresh_cookie().unwrap())
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn disabling_a_user_revokes_every_family_and_access() {
    // Checklist cases 19 and 29.
    disabling_a_user_revokes_everything(spawn_app().await).await;
}

pub async fn disabling_a_user_revokes_everything(app: TestApp) {
    let a = app.login_demo().await;
    let b = app.login_demo().await;
    // Disabled in the store only: the refresh path itself must notice and revoke.
    app.disable_in_store(DEMO_EMAIL, true).await;
    app.me(&a.access_token())
        .await
        .assert_error(401, "invalid_token");
    app.refresh(a.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(app.live_sessions().await, 0, "both sessions revoked");
    app.disable_in_store(DEMO_EMAIL, false).await;
    app.refresh(b.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
}

#[tokio::test]
async fn purge_forgets_ended_sessions_and_orphaned_tokens() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.login_demo().await;
    }
    let keep = app.login_demo().await.refresh_cookie().unwrap();
    app.refresh(Some(&keep)).await;
    assert_eq!(app.store_counts(), (4, 5));
    app.clock.advance(30 * 86_400);
    assert_eq!(app.purge(2).await, 2, "bounded by the batch size");
    app.purge(100).await;
    assert_eq!(app.store_counts(), (0, 0));
}

#[tokio::test]
async fn a_token_pairing_one_users_session_with_another_user_is_refused() {
    session_is_bound_to_its_user(spawn_app().await).await;
}

/// Finding: `/auth/me` accepted a validly signed token whose `sid` was another user's live
/// session. The session must be live and owned by `sub`.
pub async fn session_is_bound_to_its_user(app: TestApp) {
    app.add_user("mallory@example.com", "a long password").await;
    let victim = payload_of(&app.login_demo().await.access_token());
    let mallory = app.login("mallory@example.com", "a long password").await;
    assert_eq!(mallory.status, 200, "{}", mallory.body);
    let mallory = payload_of(&mallory.access_token());
    let sign = |sub: &serde_json::Value, sid: &serde_json::Value| {
        let claims = good_claims(sub.as_str().unwrap(), sid.as_str().unwrap(), T0);
        sign_hs256(&good_header(), &claims, TEST_SECRET.as_bytes())
    };
    for (sub, sid) in [
        (&victim["sub"], &mallory["sid"]),
        (&mallory["sub"], &victim["sid"]),
    ] {
        app.me(&sign(sub, sid))
            .await
            .assert_error(401, "invalid_token");
    }
    // Each genuine pairing still answers.
    for claims in [&victim, &mallory] {
        let me = app.me(&sign(&claims["sub"], &claims["sid"])).await;
        assert_eq!(me.status, 200, "{}", me.body);
    }
}

#[tokio::test]
async fn a_user_store_outage_during_refresh_never_spends_the_cookie() {
    user_store_outage_never_spends_the_cookie(spawn_app().await).await;
}

/// Finding: the rotation committed before the user look-up, so a user store failing there
/// answered 503 with the cookie already spent, and the client's retry was taken for theft.
/// Whatever a refresh answers while the user store is down, the cookie the client holds
/// afterwards refreshes.
pub async fn user_store_outage_never_spends_the_cookie(app: TestApp) {
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    app.users.set_down(true);
    let during = app.refresh(Some(&cookie)).await;
    app.users.set_down(false);
    let held = match during.status {
        200 => during.refresh_cookie().unwrap(),
        503 => {
            assert!(during.set_cookie().is_none(), "the cookie is kept");
            cookie
        }
        other => panic!("unexpected {other}: {}", during.body),
    };
    let after = app.refresh(Some(&held)).await;
    assert_eq!(
        after.status, 200,
        "the held cookie still works: {}",
        after.body
    );
    assert_eq!(app.live_sessions().await, 1, "the session was not revoked");
}

#[tokio::test]
async fn many_refreshes_of_one_session_keep_its_storage_constant() {
    refreshes_keep_storage_constant(spawn_app().await).await;
}

/// Finding: every refresh kept the consumed token until the session ended. Over HTTP: 60
/// refreshes leave the session's current token and a bounded history; the latest consumed
/// token is still caught as reuse, an older forgotten one is merely refused.
pub async fn refreshes_keep_storage_constant(app: TestApp) {
    use jwt_auth::domain::KEPT_CONSUMED_TOKENS;
    let mut chain = vec![app.login_demo().await.refresh_cookie().unwrap()];
    for _ in 0..60 {
        let resp = app.refresh(chain.last().map(String::as_str)).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        chain.push(resp.refresh_cookie().unwrap());
    }
    let stored = match (&app.memory, &app.db) {
        (Some(memory), _) => i64::try_from(memory.counts().1).unwrap(),
        (None, Some(db)) => db
            .db
            .query_i64("SELECT count(*) FROM refresh_tokens")
            .await
            .unwrap(),
        (None, None) => unreachable!(),
    };
    assert_eq!(stored, i64::try_from(KEPT_CONSUMED_TOKENS).unwrap() + 1);
    // The first token is forgotten: 401 and the cookie cleared, the session unharmed.
    let old = app.refresh(Some(&chain[0])).await;
    old.assert_error(401, "invalid_refresh_token");
    assert_eq!(old.refresh_cookie().as_deref(), Some(""));
    assert_eq!(
        app.live_sessions().await,
        1,
        "a forgotten token harms nothing"
    );
    // The one just consumed, replayed within the grace window, gets the current successor.
    let replay = app.refresh(Some(&chain[chain.len() - 2])).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.refresh_cookie().as_ref(), chain.last());
    // After the window it is reuse: the family is revoked.
    app.clock.advance(5);
    app.refresh(Some(&chain[chain.len() - 2]))
        .await
        .assert_error(401, "invalid_refresh_token");
    assert_eq!(app.live_sessions().await, 0, "reuse revoked the session");
}

/// Two `refresh_token` cookies in one request, in one `Cookie` line (`A; B`) or in two.
async fn send_two_cookies(app: &TestApp, path: &str, a: &str, b: &str, one_line: bool) -> Resp {
    let req = app.post(path);
    let req = if one_line {
        req.header("cookie", format!("refresh_token={a}; refresh_token={b}"))
    } else {
        req.header("cookie", format!("refresh_token={a}"))
            .header("cookie", format!("theme=dark; refresh_token={b}"))
    };
    req.send().await
}

#[tokio::test]
async fn two_refresh_cookies_on_refresh_are_refused_and_rotate_neither() {
    // A cookie planted by a sibling subdomain is sent first by browsers: neither is used.
    let app = spawn_app().await;
    let a = app.login_demo().await.refresh_cookie().unwrap();
    let b = app.login_demo().await.refresh_cookie().unwrap();
    for one_line in [true, false] {
        let resp = send_two_cookies(&app, "/auth/refresh", &a, &b, one_line).await;
        resp.assert_error(401, "invalid_refresh_token");
        assert_eq!(
            resp.refresh_cookie().as_deref(),
            Some(""),
            "the cookie is cleared (one_line={one_line})"
        );
    }
    assert_eq!(app.live_sessions().await, 2);
    // Neither was consumed: each still refreshes alone.
    for t in [&a, &b] {
        assert_eq!(app.refresh(Some(t)).await.status, 200);
    }
}

#[tokio::test]
async fn two_refresh_cookies_on_logout_clear_the_cookie_and_revoke_nothing() {
    let app = spawn_app().await;
    let a = app.login_demo().await.refresh_cookie().unwrap();
    let b = app.login_demo().await.refresh_cookie().unwrap();
    for one_line in [true, false] {
        let resp = send_two_cookies(&app, "/auth/logout", &a, &b, one_line).await;
        assert_eq!(resp.status, 204, "{}", resp.body);
        assert_eq!(resp.refresh_cookie().as_deref(), Some(""));
    }
    assert_eq!(app.live_sessions().await, 2, "both sessions still live");
    for t in [&a, &b] {
        assert_eq!(app.refresh(Some(t)).await.status, 200);
    }
}

//! `POST /auth/password` through the real app: the other sessions end at once (store, access
//! tokens, revocation feed), the login throttle counts wrong current passwords, concurrent
//! changes let at most one win, and bad input is refused before any hashing.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change(
    app: &TestApp,
    token: &str,
    cookie: Option<&str>,
    current: &str,
    new: &str,
) -> Resp {
    let mut req = app
        .post("/auth/password")
        .header("authorization", format!("Bearer {token}"));
    if let Some(c) = cookie {
        req = req.cookie(c);
    }
    req.json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
}

fn sid_of(resp: &Resp) -> String {
    payload_of(&resp.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn revoked_sids(app: &TestApp) -> HashSet<String> {
    let page = app.get("/revocations").await.json();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sid"].as_str().unwrap().to_owned())
        .collect()
}

async fn app_on(store: Store, overrides: &[(&str, &str)]) -> Option<TestApp> {
    Some(spawn_app_from(Stores::new(store).await?, overrides).await)
}

on_every_store!(
    a_change_ends_every_other_session_at_once_and_rotates_this_cookie,
    the_old_password_no_longer_logs_in_and_the_new_one_does,
    without_a_cookie_the_change_answers_204_and_sets_no_cookie,
    wrong_current_passwords_spend_the_login_budget_and_change_nothing,
    concurrent_changes_from_one_password_let_exactly_one_win,
    a_revoked_session_or_a_disabled_account_cannot_change_the_password,
);

pub async fn a_change_ends_every_other_session_at_once_and_rotates_this_cookie(store: Store) {
    let Some(app) = app_on(store, &[]).await else {
        return;
    };
    let this = app.login_demo().await;
    let laptop = app.login_demo().await;
    let phone = app.login_demo().await;
    let cookie = this.refresh_cookie().unwrap();
    let resp = change(
        &app,
        &this.access_token(),
        Some(&cookie),
        DEMO_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let rotated = resp.refresh_cookie().expect("a rotated cookie");
    assert!(!rotated.is_empty() && rotated != cookie, "a new cookie");
    assert_eq!(resp.cookie_attr("HttpOnly"), Some(String::new()));
    assert_eq!(resp.cookie_attr("Path").as_deref(), Some("/auth"));

    // The other sessions: access tokens refused at once, refresh cookies refused, listed on
    // the feed. This one: its token still works, its rotated cookie refreshes.
    for other in [&laptop, &phone] {
        app.me(&other.access_token())
            .await
            .assert_error(401, "invalid_token");
        app.refresh(other.refresh_cookie().as_deref())
            .await
            .assert_error(401, "invalid_refresh_token");
    }
    assert_eq!(app.me(&this.access_token()).await.status, 200);
    let feed = revoked_sids(&app).await;
    assert!(feed.contains(&sid_of(&laptop)) && feed.contains(&sid_of(&phone)));
    assert!(!feed.contains(&sid_of(&this)), "this session stays");
    let refreshed = app.refresh(Some(&rotated)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(sid_of(&refreshed), sid_of(&this), "the same session");
}

pub async fn the_old_password_no_longer_logs_in_and_the_new_one_does(store: Store) {
    let Some(app) = app_on(store, &[]).await else {
        return;
    };
    let login = app.login_demo().await;
    let before = app.hasher.calls();
    let resp = change(
        &app,
        &login.access_token(),
        None,
        DEMO_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let (hashes, verifies) = app.hasher.calls();
    assert_eq!(
        (hashes - before.0, verifies - before.1),
        (1, 1),
        "one check of the current password, one new hash"
    );
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(app.login(DEMO_EMAIL, NEW_PASSWORD).await.status, 200);
    // The old password cannot change it back either.
    change(
        &app,
        &login.access_token(),
        None,
        DEMO_PASSWORD,
        "another passphrase",
    )
    .await
    .assert_error(401, "invalid_credentials");
}

pub async fn without_a_cookie_the_change_answers_204_and_sets_no_cookie(store: Store) {
    let Some(app) = app_on(store, &[]).await else {
        return;
    };
    let this = app.login_demo().await;
    let other = app.login_demo().await;
    let resp = change(
        &app,
        &this.access_token(),
        None,
        DEMO_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert_eq!(resp.set_cookie(), None, "nothing to rotate");
    // The session kept its own cookie, which still refreshes it; the other one is dead.
    let refreshed = app.refresh(this.refresh_cookie().as_deref()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    app.refresh(other.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
}

pub async fn wrong_current_passwords_spend_the_login_budget_and_change_nothing(store: Store) {
    let Some(app) = app_on(store, &[]).await else {
        return;
    };
    let login = app.login_demo().await;
    let other = app.login_demo().await;
    let token = login.access_token();
    for _ in 0..app.settings.login_max_failures {
        change(&app, &token, None, "a wrong guess", NEW_PASSWORD)
            .await
            .assert_error(401, "invalid_credentials");
    }
    // The pair is locked: the change and the login form alike, even with the right password.
    let resp = change(&app, &token, None, DEMO_PASSWORD, NEW_PASSWORD).await;
    resp.assert_error(429, "too_many_requests");
    assert!(resp.header("retry-after").is_some());
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(429, "too_many_requests");
    // Nothing changed: no session ended, and once the lock is over the old password works.
    assert_eq!(app.me(&other.access_token()).await.status, 200);
    app.clock.advance(24 * 3600);
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
}

pub async fn concurrent_changes_from_one_password_let_exactly_one_win(store: Store) {
    let Some(app) = app_on(store, &[("LOGIN_THROTTLE_ENABLED", "false")]).await else {
        return;
    };
    let app = Arc::new(app);
    let mut logins = Vec::new();
    for _ in 0..6 {
        logins.push(app.login_demo().await.access_token());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in logins.iter().enumerate() {
        let (app, token) = (app.clone(), token.clone());
        tasks.spawn(async move {
            let new = format!("{NEW_PASSWORD} {i}");
            let resp = change(&app, &token, None, DEMO_PASSWORD, &new).await;
            (i, resp)
        });
    }
    let mut winners = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, resp) = done.unwrap();
        match resp.status {
            204 => winners.push(i),
            // The loser's check lost to the winner's write, or its session was already ended
            // by it.
            401 => {
                let code = resp.json()["error"].as_str().unwrap().to_owned();
                assert!(
                    code == "invalid_credentials" || code == "invalid_token",
                    "{}",
                    resp.body
                );
            }
            other => panic!("unexpected {other}: {}", resp.body),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one change wins: {winners:?}");
    let winner = winners[0];
    // Only the winner's password logs in; only the winner's session is alive.
    for (i, token) in logins.iter().enumerate() {
        let new = format!("{NEW_PASSWORD} {i}");
        let status = app.login(DEMO_EMAIL, &new).await.status;
        assert_eq!(status == 200, i == winner, "password {i}: {status}");
        let me = app.me(token).await.status;
        assert_eq!(me == 200, i == winner, "session {i}: {me}");
    }
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
}

pub async fn a_revoked_session_or_a_disabled_account_cannot_change_the_password(store: Store) {
    let Some(app) = app_on(store, &[]).await else {
        return;
    };
    let ended = app.login_demo().await;
    app.logout(ended.refresh_cookie().as_deref()).await;
    let resp = change(
        &app,
        &ended.access_token(),
        None,
        DEMO_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    resp.assert_error(401, "invalid_token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );

    let live = app.login_demo().await;
    app.disable_in_store(DEMO_EMAIL, true).await;
    change(
        &app,
        &live.access_token(),
        None,
        DEMO_PASSWORD,
        NEW_PASSWORD,
    )
    .await
    .assert_error(401, "invalid_token");
    app.disable_in_store(DEMO_EMAIL, false).await;
    assert_eq!(
        app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status,
        200,
        "the password did not change"
    );
}

/// Every malformed body, with a valid token, is 400 (or 413 / 415) before any hashing.
#[tokio::test]
async fn bad_input_is_refused_before_any_password_is_checked() {
    let app = spawn_app().await;
    let token = app.login_demo().await.access_token();
    let before = app.hasher.calls();
    let send = |body: Value| {
        let token = token.clone();
        let app = &app;
        async move {
            app.post("/auth/password")
                .header("authorization", format!("Bearer {token}"))
                .json(&body)
                .send()
                .await
        }
    };
    for (body, message) in [
        (json!({ "current_password": DEMO_PASSWORD }), None),
        (json!({ "new_password": NEW_PASSWORD }), None),
        (
            json!({ "current_password": DEMO_PASSWORD, "new_password": "short" }),
            Some("new_password must have at least 8 characters"),
        ),
        (
            json!({ "current_password": "", "new_password": NEW_PASSWORD }),
            Some("current_password must have at least 1 characters"),
        ),
        (
            json!({ "current_password": DEMO_PASSWORD, "new_password": "x".repeat(1025) }),
            Some("new_password must have at most 1024 characters"),
        ),
        (
            json!({ "current_password": DEMO_PASSWORD, "new_password": 12_345_678 }),
            Some("new_password must be a string"),
        ),
        (
            json!({ "current_password": null, "new_password": NEW_PASSWORD }),
            None,
        ),
        (json!([DEMO_PASSWORD, NEW_PASSWORD]), None),
    ] {
        let resp = send(body.clone()).await;
        resp.assert_error(400, "invalid_request");
        if let Some(message) = message {
            assert_eq!(resp.json()["message"], message, "{body}");
        }
        assert!(
            !resp.body.contains(NEW_PASSWORD),
            "never echoed: {}",
            resp.body
        );
    }
    let resp = app
        .post("/auth/password")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"current_password":"{DEMO_PASSWORD}","new_password":"{NEW_PASSWORD}","new_password":"other passphrase"}}"#
        ))
        .send()
        .await;
    resp.assert_error(400, "invalid_request");
    let resp = app
        .post("/auth/password")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body("current_password=test")
        .send()
        .await;
    resp.assert_error(415, "unsupported_media_type");
    let huge = "x".repeat(app.settings.max_body_bytes + 1);
    let resp = send(json!({ "current_password": DEMO_PASSWORD, "new_password": huge })).await;
    resp.assert_error(413, "payload_too_large");
    assert_eq!(app.hasher.calls(), before, "nothing was hashed or verified");
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn without_a_valid_bearer_token_nothing_is_checked_or_counted() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let before = app.hasher.calls();
    let body = json!({ "current_password": DEMO_PASSWORD, "new_password": NEW_PASSWORD });
    // No header; a refresh cookie instead of a token; a forged token; two spaces.
    let no_header = app
        .post("/auth/password")
        .cookie(&login.refresh_cookie().unwrap())
        .json(&body)
        .send()
        .await;
    no_header.assert_error(401, "invalid_token");
    for authorization in [
        "Bearer not.a.token".to_owned(),
        format!("Bearer  {}", login.access_token()),
        format!("Bearer {}", login.refresh_cookie().unwrap()),
    ] {
        let resp = app
            .post("/auth/password")
            .header("authorization", &authorization)
            .json(&body)
            .send()
            .await;
        resp.assert_error(401, "invalid_token");
        assert!(resp.header("www-authenticate").is_some());
    }
    assert_eq!(app.hasher.calls(), before);
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_cross_site_change_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let body = json!({ "current_password": DEMO_PASSWORD, "new_password": NEW_PASSWORD });
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let resp = app
            .post("/auth/password")
            .header("authorization", format!("Bearer {}", login.access_token()))
            .header(name, value)
            .json(&body)
            .send()
            .await;
        resp.assert_error(403, "forbidden_origin");
        assert_eq!(resp.header("cache-control"), Some("no-store"));
    }
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
    assert_eq!(app.me(&login.access_token()).await.status, 200);
}

#[tokio::test]
async fn a_store_outage_is_503_and_changes_nothing() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let other = app.login_demo().await;
    app.sessions.set_down(true);
    let resp = change(
        &app,
        &login.access_token(),
        None,
        DEMO_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    resp.assert_error(503, "unavailable");
    assert!(resp.header("retry-after").is_some());
    app.sessions.set_down(false);
    assert_eq!(app.me(&other.access_token()).await.status, 200);
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
}

// The port: `RefreshStore::change_password` on every store.

mod port {
    use jwt_auth::domain::{
        ClientAddress, Email, PasswordHash, Session, SessionId, SessionOrigin, Timestamp, User,
        UserId,
    };
    use jwt_auth::ports::RefreshStore;

    use super::Arc;
    use crate::helpers::{Store, Stores};

    const T0: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix(secs)
    }

    fn hash(text: &str) -> PasswordHash {
        PasswordHash::new(format!("$2b$04$contract-{text}"))
    }

    async fn account(s: &Stores) -> User {
        let u = User {
            id: UserId::new_random(),
            email: Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4())).unwrap(),
            password_hash: hash("old"),
            disabled: false,
            email_verified: true,
            created_at: at(T0),
        };
        s.users.create(u.clone()).await.unwrap();
        u
    }

    /// A session of `user` from `T0`, ending after `days`.
    async fn session(s: &Stores, user: UserId, days: u64) -> SessionId {
        let session = Session {
            id: SessionId::new_random(),
            user_id: user,
            created_at: at(T0),
            expires_at: at(T0 + days * DAY),
            idle_expires_at: None,
        };
        let origin = SessionOrigin {
            user_agent: None,
            client: ClientAddress::unknown(),
        };
        let first = jwt_auth::domain::RefreshToken::generate().hash();
        assert!(s
            .sessions
            .create_session(&session, first, &origin, 20)
            .await
            .unwrap());
        session.id
    }

    async fn live(s: &Stores, id: SessionId, now: Timestamp) -> bool {
        s.sessions
            .live_session_user(id, now)
            .await
            .unwrap()
            .is_some()
    }

    async fn stored_hash(s: &Stores, id: UserId) -> PasswordHash {
        s.users.find_by_id(id).await.unwrap().unwrap().password_hash
    }

    pub async fn a_change_replaces_the_hash_and_ends_the_other_sessions(store: Store) {
        let Some(s) = Stores::new(store).await else {
            return;
        };
        let u = account(&s).await;
        let theirs = account(&s).await;
        let (kept, other, ended) = (
            session(&s, u.id, 30).await,
            session(&s, u.id, 30).await,
            session(&s, u.id, 1).await,
        );
        let bystander = session(&s, theirs.id, 30).await;
        let now = at(T0 + 2 * DAY);
        let revoked = s
            .sessions
            .change_password(u.id, &hash("old"), &hash("new"), Some(kept), now)
            .await
            .unwrap();
        assert_eq!(
            revoked,
            Some(2),
            "every other unrevoked session, an ended one not yet purged included"
        );
        assert_eq!(stored_hash(&s, u.id).await, hash("new"));
        assert!(live(&s, kept, now).await);
        assert!(!live(&s, other, now).await);
        assert!(
            !live(&s, ended, at(T0)).await,
            "an ended one is revoked too"
        );
        assert!(
            live(&s, bystander, now).await,
            "another account is untouched"
        );
        assert_eq!(stored_hash(&s, theirs.id).await, hash("old"));

        // Without a kept session every session ends.
        let revoked = s
            .sessions
            .change_password(u.id, &hash("new"), &hash("newer"), None, now)
            .await
            .unwrap();
        assert_eq!(revoked, Some(1));
        assert!(!live(&s, kept, now).await);
        assert_eq!(stored_hash(&s, u.id).await, hash("newer"));
    }

    pub async fn nothing_changes_for_a_stale_hash_an_ended_session_or_a_disabled_account(
        store: Store,
    ) {
        let Some(s) = Stores::new(store).await else {
            return;
        };
        let u = account(&s).await;
        let theirs = account(&s).await;
        let kept = session(&s, u.id, 30).await;
        let other = session(&s, u.id, 30).await;
        let short = session(&s, u.id, 1).await;
        let foreign = session(&s, theirs.id, 30).await;
        let now = at(T0 + 60);
        let unchanged = |what: &'static str, got: Option<u64>| {
            assert_eq!(got, None, "{what}");
        };
        let change = |current: PasswordHash, keep: Option<SessionId>, now: Timestamp| {
            let sessions = s.sessions.clone();
            async move {
                sessions
                    .change_password(u.id, &current, &hash("new"), keep, now)
                    .await
                    .unwrap()
            }
        };
        unchanged("stale hash", change(hash("stale"), Some(kept), now).await);
        unchanged(
            "another account's session",
            change(hash("old"), Some(foreign), now).await,
        );
        unchanged(
            "an unknown session",
            change(hash("old"), Some(SessionId::new_random()), now).await,
        );
        unchanged(
            "a session past its end",
            change(hash("old"), Some(short), at(T0 + DAY)).await,
        );
        assert!(s.sessions.revoke_session(u.id, kept, now).await.unwrap());
        unchanged(
            "a revoked session",
            change(hash("old"), Some(kept), now).await,
        );
        s.users.set_disabled(&u.email, true).await.unwrap();
        unchanged("a disabled account", change(hash("old"), None, now).await);
        unchanged(
            "an unknown account",
            s.sessions
                .change_password(UserId::new_random(), &hash("old"), &hash("new"), None, now)
                .await
                .unwrap(),
        );
        s.users.set_disabled(&u.email, false).await.unwrap();
        assert_eq!(stored_hash(&s, u.id).await, hash("old"));
        assert!(live(&s, other, now).await, "nothing was revoked");
        assert!(live(&s, foreign, now).await);
    }

    pub async fn concurrent_changes_from_one_hash_apply_once(store: Store) {
        let Some(s) = Stores::new(store).await else {
            return;
        };
        let u = account(&s).await;
        let mut kept = Vec::new();
        for _ in 0..8 {
            kept.push(session(&s, u.id, 30).await);
        }
        let sessions: Arc<dyn RefreshStore> = s.sessions.clone();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, keep) in kept.iter().copied().enumerate() {
            let sessions = sessions.clone();
            tasks.spawn(async move {
                let out = sessions
                    .change_password(
                        u.id,
                        &hash("old"),
                        &hash(&format!("new-{i}")),
                        Some(keep),
                        at(T0 + 60),
                    )
                    .await
                    .unwrap();
                (i, out)
            });
        }
        let mut winners = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (i, out) = done.unwrap();
            if let Some(revoked) = out {
                assert_eq!(revoked, 7, "the winner ends all seven others");
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let w = winners[0];
        assert_eq!(stored_hash(&s, u.id).await, hash(&format!("new-{w}")));
        for (i, id) in kept.iter().enumerate() {
            assert_eq!(live(&s, *id, at(T0 + 60)).await, i == w, "session {i}");
        }
    }

    on_every_store!(
        a_change_replaces_the_hash_and_ends_the_other_sessions,
        nothing_changes_for_a_stale_hash_an_ended_session_or_a_disabled_account,
        concurrent_changes_from_one_hash_apply_once,
    );
}

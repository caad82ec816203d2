//! Login: enumeration, timing, brute force (section E) and registration.

use jwt_auth::ports::UserRepo;
use jwt_auth::startup::{DEMO_EMAIL, DEMO_PASSWORD};

use crate::helpers::*;

/// Headers that legitimately differ between two responses.
fn stable_headers(resp: &Resp) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = resp
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    h.sort();
    h
}

#[tokio::test]
async fn unknown_email_and_wrong_password_are_byte_identical() {
    // Case 42.
    let app = spawn_app().await;
    let unknown = app.login("nobody@test.com", "test").await;
    let wrong = app.login(DEMO_EMAIL, "wrong").await;
    unknown.assert_error(401, "invalid_credentials");
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(stable_headers(&unknown), stable_headers(&wrong));
    assert!(unknown.set_cookie().is_none());
}

#[tokio::test]
async fn disabled_user_looks_like_a_wrong_password() {
    let app = spawn_app().await;
    app.disable_in_store(DEMO_EMAIL, true).await;
    let disabled = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let unknown = app.login("nobody@test.com", "test").await;
    assert_eq!(disabled.body, unknown.body);
    assert_eq!(disabled.status, 401);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_both_run_one_password_check() {
    // Case 43, counted: the unknown email is checked against a dummy hash of the same cost
    // (the timing itself is measured in tests/timing.rs, a binary of its own).
    let app = spawn_app().await;
    let (_, before) = app.hasher.calls();
    app.login("nobody@test.com", "wrong-password").await;
    let (_, after_unknown) = app.hasher.calls();
    app.login(DEMO_EMAIL, "wrong-password").await;
    let (_, after_wrong) = app.hasher.calls();
    assert_eq!(
        (after_unknown - before, after_wrong - after_unknown),
        (1, 1)
    );
}

#[tokio::test]
async fn lockout_after_five_failures_same_for_unknown_and_known_emails() {
    // Case 44.
    let app = spawn_app().await;
    for email in [DEMO_EMAIL, "ghost@test.com"] {
        for i in 0..5 {
            assert_eq!(
                app.login(email, "wrong").await.status,
                401,
                "{email} attempt {i}"
            );
        }
        let locked = app.login(email, "wrong").await;
        locked.assert_error(429, "too_many_requests");
        assert_eq!(locked.header("retry-after"), Some("60"));
    }
    let correct_during_lockout = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    correct_during_lockout.assert_error(429, "too_many_requests");
    assert!(correct_during_lockout.set_cookie().is_none());
    app.clock.advance(60);
    assert_eq!(
        app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status,
        200,
        "locks end"
    );
}

#[tokio::test]
async fn credential_stuffing_hits_the_per_client_budget() {
    // Case 45, with the client address from a trusted proxy header.
    let app = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "X-Forwarded-For")]).await;
    let from = |ip: &'static str, email: String| {
        app.post("/auth/login")
            .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
            .json(&serde_json::json!({ "email": email, "password": "guess" }))
            .send()
    };
    for i in 0..20 {
        assert_eq!(
            from("198.51.100.1", format!("user{i}@test.com"))
                .await
                .status,
            401
        );
    }
    let blocked = from("198.51.100.1", "fresh@test.com".into()).await;
    blocked.assert_error(429, "too_many_requests");
    assert!(blocked.header("retry-after").is_some());
    let other = from("198.51.100.2", "fresh@test.com".into()).await;
    other.assert_error(401, "invalid_credentials");
    // The demo account itself is not locked by the stuffing run.
    let resp = app
        .post("/auth/login")
        .header("x-forwarded-for", "198.51.100.3")
        .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
        .send()
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn proxy_header_is_ignored_unless_configured() {
    let app = spawn_app().await;
    for i in 0..20 {
        let resp = app
            .client
            .post("/auth/login")
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .body_json(&serde_json::json!({ "email": format!("u{i}@test.com"), "password": "x" }))
            .send()
            .await;
        assert_eq!(resp.0.status(), 401);
    }
    // All 20 counted against the one real peer, whatever the header said.
    app.login("another@test.com", "x")
        .await
        .assert_error(429, "too_many_requests");
}

#[tokio::test]
async fn register_then_login_and_conflicts_ignore_case() {
    let app = spawn_app().await;
    let created = app
        .register("New.User@Example.com", "a long password")
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["email"], "new.user@example.com");
    assert_eq!(
        app.login("new.user@example.com", "a long password")
            .await
            .status,
        200
    );
    let taken = app
        .register("new.user@example.com", "another password")
        .await;
    let taken_upper = app
        .register("NEW.USER@EXAMPLE.COM", "another password")
        .await;
    taken.assert_error(409, "email_taken");
    assert_eq!(taken.body, taken_upper.body);
    let short = app.register("short@example.com", "1234567").await;
    short.assert_error(400, "invalid_request");
    assert!(short.json()["message"]
        .as_str()
        .unwrap()
        .contains("8 characters"));
    app.register("not-an-email", "a long password")
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn registration_is_off_in_prod_by_default() {
    let app = spawn_app_with(&PROD).await;
    app.register("x@example.com", "a long password")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn registration_enabled_false_turns_it_off_in_dev() {
    let app = spawn_app_with(&[("REGISTRATION_ENABLED", "false")]).await;
    app.register("x@example.com", "a long password")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn passwords_longer_than_72_bytes_count_in_full() {
    // Case 53, end to end.
    let app = spawn_app().await;
    let password = format!("{}{}", "p".repeat(72), "-real-tail");
    assert_eq!(
        app.register("long72@example.com", &password).await.status,
        201
    );
    let prefix_attack = format!("{}{}", "p".repeat(72), "-other-tail");
    app.login("long72@example.com", &prefix_attack)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(app.login("long72@example.com", &password).await.status, 200);
}

#[tokio::test]
async fn an_operator_disable_cuts_access_at_once_and_enable_restores_login() {
    let app = spawn_app().await;
    let session = app.login_demo().await;
    app.set_disabled(DEMO_EMAIL, true).await;
    assert_eq!(app.live_sessions().await, 0, "every session revoked");
    app.me(&session.access_token())
        .await
        .assert_error(401, "invalid_token");
    app.refresh(session.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    app.set_disabled(DEMO_EMAIL, false).await;
    app.login_demo().await;
}

/// After `PASSWORD_HASH=argon2id`, a login with a bcrypt hash stores an Argon2id one with the
/// configured parameters; the unknown-account check follows the new policy too.
#[tokio::test]
async fn switching_to_argon2id_upgrades_bcrypt_hashes_at_login() {
    let old = spawn_app().await;
    old.add_user("switch@example.com", "a long passphrase")
        .await;
    let email = jwt_auth::domain::Email::parse("switch@example.com").unwrap();
    let stores = Stores {
        users: old.users.inner.clone(),
        sessions: old.sessions.inner.clone(),
        memory: None,
        db: None,
    };
    let argon = [
        ("PASSWORD_HASH", "argon2id"),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
    ];
    let new = spawn_app_from(stores, &argon).await;
    let stored = || async {
        new.users
            .find_by_email(&email)
            .await
            .unwrap()
            .unwrap()
            .password_hash
    };
    assert!(stored().await.as_str().starts_with("$bcrypt-hmac-sha256$"));
    new.login("switch@example.com", "a long passphrasE")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        new.login("switch@example.com", "a long passphrase")
            .await
            .status,
        200
    );
    let mut now = stored().await;
    for _ in 0..100 {
        if now.as_str().starts_with("$argon2id$") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        now = stored().await;
    }
    assert!(now.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    assert_eq!(
        new.login("switch@example.com", "a long passphrase")
            .await
            .status,
        200
    );
    new.login("nobody@example.com", "a long passphrase")
        .await
        .assert_error(401, "invalid_credentials");
}

/// After `BCRYPT_COST` changes, a successful login replaces the account's older hash (off the
/// request's path), so stored hashes and the unknown-account dummy cost the same again.
#[tokio::test]
async fn a_login_upgrades_a_hash_made_at_an_older_cost() {
    let old = spawn_app().await; // cost 4
    old.add_user("cost@example.com", "a long passphrase").await;
    let email = jwt_auth::domain::Email::parse("cost@example.com").unwrap();
    let stored = |app: &TestApp| {
        let users = app.users.clone();
        let email = email.clone();
        async move {
            users
                .find_by_email(&email)
                .await
                .unwrap()
                .unwrap()
                .password_hash
        }
    };
    assert!(stored(&old)
        .await
        .as_str()
        .starts_with("$bcrypt-hmac-sha256$v=1$r=4$"));
    let stores = Stores {
        users: old.users.inner.clone(),
        sessions: old.sessions.inner.clone(),
        memory: None,
        db: None,
    };
    let new = spawn_app_from(stores, &[("BCRYPT_COST", "5")]).await;
    assert_eq!(
        new.login("cost@example.com", "a long passphrase")
            .await
            .status,
        200
    );
    let mut upgraded = stored(&new).await;
    for _ in 0..100 {
        if upgraded
            .as_str()
            .starts_with("$bcrypt-hmac-sha256$v=1$r=5$")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        upgraded = stored(&new).await;
    }
    assert!(
        upgraded
            .as_str()
            .starts_with("$bcrypt-hmac-sha256$v=1$r=5$"),
        "upgraded to the policy cost"
    );
    assert_eq!(
        new.login("cost@example.com", "a long passphrase")
            .await
            .status,
        200,
        "the new hash verifies"
    );
}

//! Email verification: the mail at sign-up, `POST /auth/verify-email`, `/resend`,
//! `email_verified` on `/auth/me` and `REQUIRE_EMAIL_VERIFICATION`, through the real app with
//! the `dev` folder outbox (the SMTP variant is ignored; `.ci/run` runs it by name).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::reset::{token_in, wait_for_mail};

const VERIFY_URL: &str = "http://localhost:8000/verify";
const RESET_URL: &str = "http://localhost:8000/reset";
const PASSWORD: &str = "a long enough password";

fn outbox() -> PathBuf {
    std::env::temp_dir().join(format!("verify-outbox-{}", uuid::Uuid::new_v4()))
}

fn mail_settings(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("MAIL_OUTBOX_DIR", dir.to_str().unwrap().to_owned()),
        ("MAIL_FROM", "jwt-auth <no-reply@example.com>".to_owned()),
        ("PASSWORD_RESET_URL", RESET_URL.to_owned()),
        ("EMAIL_VERIFICATION_URL", VERIFY_URL.to_owned()),
    ]
}

async fn app_on(store: Store, dir: &Path, more: &[(&str, &str)]) -> Option<TestApp> {
    let owned = mail_settings(dir);
    let mut pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(more);
    Some(spawn_app_from(Stores::new(store).await?, &pairs).await)
}

async fn verify(app: &TestApp, token: &str) -> Resp {
    app.post("/auth/verify-email")
        .json(&json!({ "token": token }))
        .send()
        .await
}

async fn resend(app: &TestApp, email: &str) -> Resp {
    app.post("/auth/verify-email/resend")
        .json(&json!({ "email": email }))
        .send()
        .await
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// The mails sent to `email` with this subject, once there are `n` mails in all.
async fn mails_to(dir: &Path, n: usize, email: &str, subject: &str) -> Vec<String> {
    wait_for_mail(dir, n)
        .await
        .into_iter()
        .filter(|m| m.contains(&format!("To: {email}")) && m.contains(subject))
        .collect()
}

const VERIFY_SUBJECT: &str = "Subject: Confirm your email address";
const RESET_SUBJECT: &str = "Subject: Reset your password";

async fn verified(app: &TestApp, email: &str) -> bool {
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let me = app.me(&login.access_token()).await;
    assert_eq!(me.status, 200, "{}", me.body);
    me.json()["email_verified"]
        .as_bool()
        .expect("email_verified is a bool")
}

on_every_store!(
    a_sign_up_is_mailed_a_link_that_verifies_once,
    concurrent_verifications_with_one_token_let_exactly_one_win,
    reset_and_verification_tokens_never_stand_for_each_other,
    a_token_verifies_only_its_own_account_and_a_newer_one_voids_it,
);

pub async fn a_sign_up_is_mailed_a_link_that_verifies_once(store: Store) {
    let dir = outbox();
    let Some(app) = app_on(store, &dir, &[]).await else {
        return;
    };
    let created = app.register("new@example.com", PASSWORD).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["email_verified"], false);
    let mail = wait_for_mail(&dir, 1).await.remove(0);
    assert!(mail.contains("To: new@example.com"), "{mail}");
    assert!(mail.contains(VERIFY_SUBJECT), "{mail}");
    assert!(mail.contains(&format!("{VERIFY_URL}#token=")), "{mail}");
    assert!(!verified(&app, "new@example.com").await);
    // The demo account (seeded) counts as verified.
    let demo = app.login_demo().await;
    assert_eq!(
        app.me(&demo.access_token()).await.json()["email_verified"],
        true
    );

    let token = token_in(&mail);
    let done = verify(&app, &token).await;
    assert_eq!(done.status, 204, "{}", done.body);
    assert_eq!(done.header("cache-control"), Some("no-store"));
    assert!(verified(&app, "new@example.com").await);
    // One email_verified event in the audit trail, for this account.
    let trail = app.adapters.audit.clone().expect("the audit trail is on");
    trail.flush().await.unwrap();
    let rows = trail
        .log()
        .query(&jwt_auth::ports::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let events: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == jwt_auth::domain::EventKind::EmailVerified)
        .collect();
    assert_eq!(events.len(), 1, "{rows:?}");
    assert_eq!(events[0].user.map(|u| u.to_string()), Some(id));
    assert!(
        !format!("{rows:?}").contains(&token),
        "no token in the trail"
    );
    let again = verify(&app, &token).await;
    again.assert_error(401, "invalid_token");
    assert!(
        again.header("www-authenticate").is_none(),
        "no bearer challenge: no bearer token is involved"
    );
    // A verified account asks for a new link in vain.
    assert_eq!(resend(&app, "new@example.com").await.status, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&dir), 1, "no mail for a verified account");
    let _ = std::fs::remove_dir_all(&dir);
}

pub async fn concurrent_verifications_with_one_token_let_exactly_one_win(store: Store) {
    let dir = outbox();
    let Some(app) = app_on(store, &dir, &[]).await else {
        return;
    };
    assert_eq!(app.register("race@example.com", PASSWORD).await.status, 201);
    let token = token_in(&wait_for_mail(&dir, 1).await[0]);
    let answers = futures_util::future::join_all((0..20).map(|_| verify(&app, &token))).await;
    assert_eq!(
        answers.iter().filter(|r| r.status == 204).count(),
        1,
        "exactly one verification applies"
    );
    for r in answers.iter().filter(|r| r.status != 204) {
        r.assert_error(401, "invalid_token");
    }
    assert!(verified(&app, "race@example.com").await);
    let _ = std::fs::remove_dir_all(&dir);
}

pub async fn reset_and_verification_tokens_never_stand_for_each_other(store: Store) {
    let dir = outbox();
    let Some(app) = app_on(store, &dir, &[]).await else {
        return;
    };
    let email = "cross@example.com";
    assert_eq!(app.register(email, PASSWORD).await.status, 201);
    wait_for_mail(&dir, 1).await;
    let forgot = app
        .post("/auth/password/forgot")
        .json(&json!({ "email": email }))
        .send()
        .await;
    assert_eq!(forgot.status, 202);
    let verification = token_in(&mails_to(&dir, 2, email, VERIFY_SUBJECT).await[0]);
    let reset = token_in(&mails_to(&dir, 2, email, RESET_SUBJECT).await[0]);
    let reset_with = |token: String| {
        app.post("/auth/password/reset")
            .json(&json!({ "token": token, "new_password": "another long passphrase" }))
            .send()
    };
    // Each refused in the other's place...
    verify(&app, &reset)
        .await
        .assert_error(401, "invalid_token");
    reset_with(verification.clone())
        .await
        .assert_error(401, "invalid_token");
    assert!(!verified(&app, email).await);
    // ...and neither spent by the attempt.
    assert_eq!(verify(&app, &verification).await.status, 204);
    assert_eq!(reset_with(reset).await.status, 204);
    let _ = std::fs::remove_dir_all(&dir);
}

pub async fn a_token_verifies_only_its_own_account_and_a_newer_one_voids_it(store: Store) {
    let dir = outbox();
    let Some(app) = app_on(store, &dir, &[]).await else {
        return;
    };
    let (alice, bob) = ("alice@example.com", "bob@example.com");
    assert_eq!(app.register(alice, PASSWORD).await.status, 201);
    assert_eq!(app.register(bob, PASSWORD).await.status, 201);
    let older = token_in(&mails_to(&dir, 2, alice, VERIFY_SUBJECT).await[0]);
    assert_eq!(resend(&app, alice).await.status, 202);
    let newer = mails_to(&dir, 3, alice, VERIFY_SUBJECT)
        .await
        .iter()
        .map(|m| token_in(m))
        .find(|t| *t != older)
        .expect("a second token");
    verify(&app, &older)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(verify(&app, &newer).await.status, 204);
    assert!(verified(&app, alice).await);
    assert!(
        !verified(&app, bob).await,
        "Alice's token verified only Alice"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn resend_answers_alike_for_every_address_and_mails_only_an_unverified_enabled_account() {
    let dir = outbox();
    let app = app_on(Store::Memory, &dir, &[]).await.unwrap();
    assert_eq!(app.register("wait@example.com", PASSWORD).await.status, 201);
    assert_eq!(app.register("off@example.com", PASSWORD).await.status, 201);
    wait_for_mail(&dir, 2).await;
    app.set_disabled("off@example.com", true).await;
    let known = resend(&app, "wait@example.com").await;
    assert_eq!(known.status, 202);
    assert_eq!(known.json(), json!({ "status": "accepted" }));
    for email in [
        "nobody@example.com",
        "off@example.com",
        DEMO_EMAIL,
        "  WAIT@Example.com ",
    ] {
        let other = resend(&app, email).await;
        assert_eq!(
            (other.status, other.json(), other.header("content-length")),
            (known.status, known.json(), known.header("content-length")),
            "{email}"
        );
    }
    wait_for_mail(&dir, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = wait_for_mail(&dir, 4).await;
    assert_eq!(
        mails.len(),
        4,
        "two sign-ups, and two resends to the unverified one"
    );
    assert!(mails[2..]
        .iter()
        .all(|m| m.contains("To: wait@example.com")));
    resend(&app, "not an email")
        .await
        .assert_error(400, "invalid_request");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn resend_shares_the_forgot_rate_of_an_address() {
    let dir = outbox();
    let app = app_on(Store::Memory, &dir, &[]).await.unwrap();
    let email = "rate@example.com";
    assert_eq!(app.register(email, PASSWORD).await.status, 201);
    wait_for_mail(&dir, 1).await;
    // The sign-up's mail, two reset links and three resends: the address gets three mails
    // this hour in all (the sign-up's counts).
    for _ in 0..2 {
        let r = app
            .post("/auth/password/forgot")
            .json(&json!({ "email": email }))
            .send()
            .await;
        assert_eq!(r.status, 202);
    }
    for _ in 0..3 {
        assert_eq!(resend(&app, email).await.status, 202);
    }
    wait_for_mail(&dir, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&dir), 3, "the sign-up's mail and two more");
    app.clock.advance(3600);
    assert_eq!(resend(&app, email).await.status, 202);
    wait_for_mail(&dir, 4).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn resend_is_held_to_the_per_client_rate() {
    let dir = outbox();
    let app = app_on(Store::Memory, &dir, &[]).await.unwrap();
    assert_eq!(
        app.register("victim@example.com", PASSWORD).await.status,
        201
    );
    wait_for_mail(&dir, 1).await;
    // Twenty requests for unknown addresses spend this client's hour...
    for i in 0..20 {
        assert_eq!(
            resend(&app, &format!("spray{i}@example.com")).await.status,
            202
        );
    }
    // ...so a request for a real unverified account is answered alike and sends nothing.
    assert_eq!(resend(&app, "victim@example.com").await.status, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&dir), 1);
    app.clock.advance(3600);
    assert_eq!(resend(&app, "victim@example.com").await.status, 202);
    wait_for_mail(&dir, 2).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Attack: one client signs up `victim+1@`, `victim+2@`, ... (one mailbox, distinct
/// addresses) to have the service mail a stranger. Sign-up mail is held to the per-client mail
/// rate of resend and forgot, not only to the sign-up rate.
#[tokio::test]
async fn sign_up_mail_is_held_to_the_per_client_mail_rate() {
    let dir = outbox();
    let app = app_on(Store::Memory, &dir, &[]).await.unwrap();
    for i in 0..30 {
        if i % 10 == 0 {
            // Past the sign-up rate's minute: every sign-up below is answered 201.
            app.clock.advance(61);
        }
        let created = app
            .register(&format!("victim+{i}@example.com"), PASSWORD)
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    wait_for_mail(&dir, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&dir), 20, "at most 20 mails an hour from one client");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_the_flag_only_the_right_password_of_an_unverified_account_gets_403() {
    let dir = outbox();
    let app = app_on(
        Store::Memory,
        &dir,
        &[("REQUIRE_EMAIL_VERIFICATION", "true")],
    )
    .await
    .unwrap();
    let email = "flag@example.com";
    assert_eq!(app.register(email, PASSWORD).await.status, 201);
    let refused = app.login(email, PASSWORD).await;
    refused.assert_error(403, "email_not_verified");
    assert!(refused.refresh_cookie().is_none(), "no session opened");
    assert_eq!(app.live_sessions().await, 0);
    // A wrong password says nothing about verification.
    app.login(email, "the wrong password")
        .await
        .assert_error(401, "invalid_credentials");
    app.login("nobody@example.com", PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    // A right password settles the attempt as a success (four failures, then it): no lock.
    for _ in 0..3 {
        app.login(email, "the wrong password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login(email, PASSWORD)
        .await
        .assert_error(403, "email_not_verified");
    // Wrong passwords count: five in a row lock the pair, the right password included.
    for _ in 0..5 {
        app.login(email, "the wrong password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login(email, PASSWORD)
        .await
        .assert_error(429, "too_many_requests");
    // The demo account is verified: it logs in.
    assert_eq!(app.login_demo().await.status, 200);
    let token = token_in(&wait_for_mail(&dir, 1).await[0]);
    assert_eq!(verify(&app, &token).await.status, 204);
    app.clock.advance(3600);
    assert_eq!(app.login(email, PASSWORD).await.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_flag_needs_a_mailer_and_a_verification_page() {
    let err = |pairs: &[(&str, &str)]| {
        jwt_auth::config::Settings::from_pairs(pairs)
            .unwrap_err()
            .to_string()
    };
    let flag = ("REQUIRE_EMAIL_VERIFICATION", "true");
    assert!(err(&[flag]).contains("REQUIRE_EMAIL_VERIFICATION"));
    let dir = outbox();
    let owned = mail_settings(&dir);
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .filter(|(k, _)| *k != "EMAIL_VERIFICATION_URL")
        .map(|(k, v)| (*k, v.as_str()))
        .chain([flag])
        .collect();
    assert!(err(&pairs).contains("EMAIL_VERIFICATION_URL"));
    let bad_page = ("EMAIL_VERIFICATION_URL", "https://app.example/verify#x");
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .filter(|(k, _)| *k != "EMAIL_VERIFICATION_URL")
        .map(|(k, v)| (*k, v.as_str()))
        .chain([bad_page])
        .collect();
    assert!(err(&pairs).contains("EMAIL_VERIFICATION_URL"));
    for hours in ["0", "721"] {
        assert!(err(&[("EMAIL_VERIFICATION_EXPIRES_HOURS", hours)])
            .contains("EMAIL_VERIFICATION_EXPIRES_HOURS"));
    }
    assert_eq!(
        jwt_auth::config::Settings::from_pairs(&[])
            .unwrap()
            .email_verification_expires_hours,
        48
    );
}

#[tokio::test]
async fn schema_valid_tokens_are_401_and_only_schema_invalid_bodies_400() {
    let dir = outbox();
    let app = app_on(Store::Memory, &dir, &[]).await.unwrap();
    for token in [
        String::new(),
        "x".to_owned(),
        "not base64 at all !!".to_owned(),
        "+".repeat(43),
        format!("{}=", "A".repeat(42)),
        "A".repeat(44),
        "\u{0}\u{202e}é🙂".to_owned(),
        "A".repeat(1024),
    ] {
        verify(&app, &token)
            .await
            .assert_error(401, "invalid_token");
    }
    verify(&app, &"A".repeat(1025))
        .await
        .assert_error(400, "invalid_request");
    for body in [json!({ "token": 42 }), json!({}), json!({ "token": null })] {
        let resp = app.post("/auth/verify-email").json(&body).send().await;
        resp.assert_error(400, "invalid_request");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_expired_link_or_a_disabled_account_is_refused() {
    let dir = outbox();
    let app = app_on(
        Store::Memory,
        &dir,
        &[("EMAIL_VERIFICATION_EXPIRES_HOURS", "1")],
    )
    .await
    .unwrap();
    assert_eq!(app.register("late@example.com", PASSWORD).await.status, 201);
    assert_eq!(app.register("off@example.com", PASSWORD).await.status, 201);
    let late = token_in(&mails_to(&dir, 2, "late@example.com", VERIFY_SUBJECT).await[0]);
    let off = token_in(&mails_to(&dir, 2, "off@example.com", VERIFY_SUBJECT).await[0]);
    app.set_disabled("off@example.com", true).await;
    verify(&app, &off).await.assert_error(401, "invalid_token");
    app.clock.advance(3600);
    verify(&app, &late).await.assert_error(401, "invalid_token");
    assert!(!verified(&app, "late@example.com").await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_password_reset_proves_the_mailbox() {
    let dir = outbox();
    let app = app_on(Store::Memory, &dir, &[]).await.unwrap();
    let email = "forgetful@example.com";
    assert_eq!(app.register(email, PASSWORD).await.status, 201);
    let forgot = app
        .post("/auth/password/forgot")
        .json(&json!({ "email": email }))
        .send()
        .await;
    assert_eq!(forgot.status, 202);
    let reset = token_in(&mails_to(&dir, 2, email, RESET_SUBJECT).await[0]);
    let done = app
        .post("/auth/password/reset")
        .json(&json!({ "token": reset, "new_password": PASSWORD }))
        .send()
        .await;
    assert_eq!(done.status, 204, "{}", done.body);
    assert!(verified(&app, email).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failing_mailer_neither_delays_nor_changes_the_sign_up() {
    // Nothing listens on this port: the SMTP connection fails after the answer.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&[
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_FROM", "jwt-auth <no-reply@example.com>"),
        ("PASSWORD_RESET_URL", RESET_URL),
        ("EMAIL_VERIFICATION_URL", VERIFY_URL),
    ])
    .await;
    let resp = app.register("nomail@example.com", PASSWORD).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(resp.json()["email"], "nomail@example.com");
    assert_eq!(resp.json()["email_verified"], false);
}

#[tokio::test]
async fn without_a_verification_page_sign_up_and_resend_still_answer() {
    let app = spawn_app().await;
    let resp = app.register("plain@example.com", PASSWORD).await;
    assert_eq!(resp.status, 201);
    let r = resend(&app, "plain@example.com").await;
    assert_eq!((r.status, r.json()), (202, json!({ "status": "accepted" })));
}

/// Verification state, and a token mailed before, survive a restart on SQLite: the second
/// "process" is the service built from settings on the same file.
#[tokio::test]
async fn verification_survives_a_restart_on_sqlite() {
    let dir = outbox();
    let app = app_on(Store::Sqlite, &dir, &[]).await.unwrap();
    assert_eq!(
        app.register("before@example.com", PASSWORD).await.status,
        201
    );
    assert_eq!(
        app.register("after@example.com", PASSWORD).await.status,
        201
    );
    let before = token_in(&mails_to(&dir, 2, "before@example.com", VERIFY_SUBJECT).await[0]);
    let after = token_in(&mails_to(&dir, 2, "after@example.com", VERIFY_SUBJECT).await[0]);
    assert_eq!(verify(&app, &before).await.status, 204);
    let url = app.db.as_ref().unwrap().url.clone();
    let (base, server) =
        crate::durable::serve(crate::durable::socket_settings(&[("DATABASE_URL", &url)])).await;
    let http = reqwest::Client::new();
    let me = |email: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let login: serde_json::Value = http
                .post(format!("{base}/auth/login"))
                .json(&json!({ "email": email, "password": PASSWORD }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let access = login["access_token"].as_str().unwrap().to_owned();
            let me: serde_json::Value = http
                .get(format!("{base}/auth/me"))
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            me["email_verified"].as_bool().unwrap()
        }
    };
    assert!(
        me("before@example.com").await,
        "verified before the restart"
    );
    assert!(!me("after@example.com").await);
    let done = http
        .post(format!("{base}/auth/verify-email"))
        .json(&json!({ "token": after }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        204,
        "a token mailed before the restart works after it"
    );
    assert!(me("after@example.com").await);
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Accounts of a database from before verification (migrations up to 0011) count as
/// verified once migrated; new sign-ups do not.
async fn existing_accounts_are_verified_by_the_migration(store: Store) {
    let Some(db) = (match store {
        Store::Postgres => crate::db::TestDb::postgres_unmigrated().await,
        _ => Some(crate::db::TestDb::sqlite_unmigrated().await),
    }) else {
        return;
    };
    db.db.migrate_up_to(11).await.unwrap();
    let postgres = db.db.kind() == jwt_auth::adapters::outbound::db::DatabaseKind::Postgres;
    let created = if postgres {
        format!("to_timestamp({T0})")
    } else {
        T0.to_string()
    };
    db.db
        .execute(&format!(
            "INSERT INTO users (id, email, password_hash, created_at, disabled) \
             VALUES ('{}', 'old@example.com', 'x', {created}, false)",
            uuid::Uuid::new_v4()
        ))
        .await
        .unwrap();
    db.db.migrate().await.unwrap();
    let users = db.users();
    let old = users
        .find_by_email(&jwt_auth::domain::Email::parse("old@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(old.email_verified);
    if postgres {
        // A sign-up by an instance of the previous version (a rolling deploy) is unverified.
        db.db
            .execute(&format!(
                "INSERT INTO users (id, email, password_hash, created_at, disabled) \
                 VALUES ('{}', 'rolling@example.com', 'x', {created}, false)",
                uuid::Uuid::new_v4()
            ))
            .await
            .unwrap();
        let rolling = users
            .find_by_email(&jwt_auth::domain::Email::parse("rolling@example.com").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(!rolling.email_verified);
    }
}

#[tokio::test]
async fn existing_sqlite_accounts_are_verified_by_the_migration() {
    existing_accounts_are_verified_by_the_migration(Store::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn existing_postgres_accounts_are_verified_by_the_migration() {
    existing_accounts_are_verified_by_the_migration(Store::Postgres).await;
}

/// The whole flow with the SMTP mailer and a real SMTP server (Python's `aiosmtpd`): the
/// sign-up's mail is read from the server and its link followed.
#[tokio::test]
#[ignore = "needs Python's aiosmtpd; .ci/run runs it by name"]
async fn a_verification_link_mailed_over_real_smtp_verifies_the_account() {
    let sink = crate::mail::SmtpSink::start().await;
    let (port, out) = (sink.port, sink.out.clone());
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&[
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_FROM", "jwt-auth <no-reply@example.com>"),
        ("PASSWORD_RESET_URL", RESET_URL),
        ("EMAIL_VERIFICATION_URL", VERIFY_URL),
        ("REQUIRE_EMAIL_VERIFICATION", "true"),
    ])
    .await;
    let email = "smtp-reader@example.com";
    assert_eq!(app.register(email, PASSWORD).await.status, 201);
    app.login(email, PASSWORD)
        .await
        .assert_error(403, "email_not_verified");
    let mut mail = None;
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(out.join("0.eml")) {
            mail = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rcpt = std::fs::read_to_string(out.join("0.rcpt")).unwrap_or_default();
    let _ = sink.stop();
    let mail = mail.expect("the SMTP server received the verification mail");
    assert_eq!(rcpt, email);
    assert!(
        mail.contains("Subject: Confirm your email address"),
        "{mail}"
    );
    // Follow the link: the page reads the fragment and posts the token.
    let text = mail.replace("=\r\n", "").replace("=3D", "=");
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with(VERIFY_URL))
        .expect("a verification link");
    let token = link
        .split_once("#token=")
        .expect("the token in the fragment")
        .1;
    assert_eq!(verify(&app, token).await.status, 204);
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(
        app.me(&login.access_token()).await.json()["email_verified"],
        true
    );
    verify(&app, token).await.assert_error(401, "invalid_token");
}

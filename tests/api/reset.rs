//! Forgotten password: `POST /auth/password/forgot` and `/auth/password/reset`, through the
//! real app with the `dev` folder outbox (the SMTP variant is ignored; `.ci/run` runs it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";
const RESET_URL: &str = "http://localhost:8000/reset";

fn outbox() -> PathBuf {
    std::env::temp_dir().join(format!("reset-outbox-{}", uuid::Uuid::new_v4()))
}

async fn app_with_outbox(store: Store, dir: &Path, more: &[(&str, &str)]) -> Option<TestApp> {
    let dir = dir.to_str().unwrap().to_owned();
    let mut pairs = vec![
        ("MAIL_OUTBOX_DIR", dir.as_str()),
        ("MAIL_FROM", "jwt-auth <no-reply@example.com>"),
        ("PASSWORD_RESET_URL", RESET_URL),
    ];
    pairs.extend_from_slice(more);
    Some(spawn_app_from(Stores::new(store).await?, &pairs).await)
}

async fn forgot(app: &TestApp, email: &str) -> Resp {
    app.post("/auth/password/forgot")
        .json(&json!({ "email": email }))
        .send()
        .await
}

async fn reset(app: &TestApp, token: &str, new: &str) -> Resp {
    app.post("/auth/password/reset")
        .json(&json!({ "token": token, "new_password": new }))
        .send()
        .await
}

/// The messages in the outbox, oldest first, once there are `n` (waits up to 5 s).
pub async fn wait_for_mail(dir: &Path, n: usize) -> Vec<String> {
    for _ in 0..100 {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).collect())
            .unwrap_or_default();
        if files.len() >= n {
            files.sort_by_key(|f| f.metadata().and_then(|m| m.modified()).ok());
            return files
                .iter()
                .map(|f| std::fs::read_to_string(f.path()).unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} messages in the outbox");
}

/// The token of a reset link in a message (plain or quoted-printable).
pub fn token_in(mail: &str) -> String {
    let text = mail.replace("=\r\n", "").replace("=3D", "=");
    let at = text.find("#token=").expect("a reset link") + "#token=".len();
    text[at..at + 43].to_owned()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

on_every_store!(
    a_mailed_link_resets_the_password_and_ends_every_session_once,
    a_newer_link_voids_the_older_one,
    concurrent_resets_with_one_token_let_exactly_one_win,
);

pub async fn a_mailed_link_resets_the_password_and_ends_every_session_once(store: Store) {
    let dir = outbox();
    let Some(app) = app_with_outbox(store, &dir, &[]).await else {
        return;
    };
    let laptop = app.login_demo().await;
    let phone = app.login_demo().await;
    let resp = forgot(&app, DEMO_EMAIL).await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json(), json!({ "status": "accepted" }));
    let mail = wait_for_mail(&dir, 1).await.remove(0);
    assert!(mail.contains(&format!("To: {DEMO_EMAIL}")), "{mail}");
    assert!(mail.contains(&format!("{RESET_URL}#token=")), "{mail}");
    let token = token_in(&mail);

    let done = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(done.status, 204, "{}", done.body);
    for session in [&laptop, &phone] {
        app.me(&session.access_token())
            .await
            .assert_error(401, "invalid_token");
        app.refresh(session.refresh_cookie().as_deref())
            .await
            .assert_error(401, "invalid_refresh_token");
    }
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(app.login(DEMO_EMAIL, NEW_PASSWORD).await.status, 200);
    // Single use.
    reset(&app, &token, "yet another passphrase")
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(app.login(DEMO_EMAIL, NEW_PASSWORD).await.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

pub async fn a_newer_link_voids_the_older_one(store: Store) {
    let dir = outbox();
    let Some(app) = app_with_outbox(store, &dir, &[]).await else {
        return;
    };
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
    let older = token_in(&wait_for_mail(&dir, 1).await[0]);
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
    let mails = wait_for_mail(&dir, 2).await;
    let newer = mails
        .iter()
        .map(|m| token_in(m))
        .find(|t| *t != older)
        .expect("a second token");
    reset(&app, &older, NEW_PASSWORD)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(reset(&app, &newer, NEW_PASSWORD).await.status, 204);
    let _ = std::fs::remove_dir_all(&dir);
}

pub async fn concurrent_resets_with_one_token_let_exactly_one_win(store: Store) {
    let dir = outbox();
    let Some(app) = app_with_outbox(store, &dir, &[]).await else {
        return;
    };
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
    let token = token_in(&wait_for_mail(&dir, 1).await[0]);
    let answers = futures_util::future::join_all((0..20).map(|i| {
        reset(
            &app,
            &token,
            if i % 2 == 0 {
                "even passphrase"
            } else {
                "odd passphrase!"
            },
        )
    }))
    .await;
    let ok = answers.iter().filter(|r| r.status == 204).count();
    assert_eq!(ok, 1, "exactly one reset applies");
    for r in answers.iter().filter(|r| r.status != 204) {
        r.assert_error(401, "invalid_token");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unknown_and_disabled_addresses_get_the_same_202_and_no_mail() {
    let dir = outbox();
    let app = app_with_outbox(Store::Memory, &dir, &[]).await.unwrap();
    app.add_user("off@example.com", "a long enough password")
        .await;
    app.set_disabled("off@example.com", true).await;
    let known = forgot(&app, DEMO_EMAIL).await;
    for email in [
        "nobody@example.com",
        "off@example.com",
        "  NOBODY@Example.com ",
    ] {
        let other = forgot(&app, email).await;
        assert_eq!((other.status, other.json()), (known.status, known.json()));
    }
    wait_for_mail(&dir, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&dir), 1, "only the enabled account got a mail");
    forgot(&app, "not an email")
        .await
        .assert_error(400, "invalid_request");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let dir = outbox();
    let app = app_with_outbox(Store::Memory, &dir, &[("PASSWORD_RESET_EXPIRES_MIN", "5")])
        .await
        .unwrap();
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
    let token = token_in(&wait_for_mail(&dir, 1).await[0]);
    app.clock.advance(5 * 60);
    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_bad_new_password_is_400_and_leaves_the_token_usable() {
    let dir = outbox();
    let app = app_with_outbox(Store::Memory, &dir, &[]).await.unwrap();
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
    let token = token_in(&wait_for_mail(&dir, 1).await[0]);
    reset(&app, &token, "short")
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status, 204);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_tokens_are_4xx_never_500() {
    let dir = outbox();
    let app = app_with_outbox(Store::Memory, &dir, &[]).await.unwrap();
    for token in [
        String::new(),
        "not base64 at all !!".to_owned(),
        "A".repeat(43).replace('A', "+"),
        "A".repeat(44),
        "A".repeat(5000),
    ] {
        let resp = reset(&app, &token, NEW_PASSWORD).await;
        assert!(
            (400..500).contains(&resp.status),
            "{token:.20}: {}",
            resp.status
        );
    }
    let resp = app
        .post("/auth/password/reset")
        .json(&json!({ "token": 42, "new_password": NEW_PASSWORD }))
        .send()
        .await;
    assert_eq!(resp.status, 400);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn past_the_hourly_rate_forgot_still_answers_202_and_sends_nothing() {
    let dir = outbox();
    let app = app_with_outbox(Store::Memory, &dir, &[]).await.unwrap();
    for _ in 0..5 {
        let resp = forgot(&app, DEMO_EMAIL).await;
        assert_eq!(resp.status, 202);
    }
    wait_for_mail(&dir, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&dir), 3, "three mails per address per hour");
    app.clock.advance(3600);
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
    wait_for_mail(&dir, 4).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_a_mailer_forgot_answers_202() {
    let app = spawn_app().await;
    let resp = forgot(&app, DEMO_EMAIL).await;
    assert_eq!(
        (resp.status, resp.json()),
        (202, json!({ "status": "accepted" }))
    );
}

/// The whole flow with the SMTP mailer and a real SMTP server (Python's `aiosmtpd`).
#[tokio::test]
#[ignore = "needs Python's aiosmtpd; .ci/run runs it by name"]
async fn a_reset_link_mailed_over_real_smtp_resets_the_password() {
    let sink = crate::mail::SmtpSink::start().await;
    let (port, out) = (sink.port, sink.out.clone());
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&[
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_FROM", "jwt-auth <no-reply@example.com>"),
        ("PASSWORD_RESET_URL", RESET_URL),
    ])
    .await;
    let session = app.login_demo().await;
    assert_eq!(forgot(&app, DEMO_EMAIL).await.status, 202);
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
    let mail = mail.expect("the SMTP server received the reset mail");
    assert_eq!(rcpt, DEMO_EMAIL);
    let token = token_in(&mail);

    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status, 204);
    app.me(&session.access_token())
        .await
        .assert_error(401, "invalid_token");
    app.refresh(session.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(app.login(DEMO_EMAIL, NEW_PASSWORD).await.status, 200);
    reset(&app, &token, "yet another passphrase")
        .await
        .assert_error(401, "invalid_token");
}

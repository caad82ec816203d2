//! Throttle events name the account by id and the client by its bucket, never the email.
//!
//! A binary of its own, like tests/logs.rs: it installs the global subscriber.

#[path = "api/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

#[path = "support/captured_logs.rs"]
mod captured_logs;

use crate::captured_logs::Captured;
use crate::helpers::*;

#[tokio::test]
async fn throttle_events_carry_the_account_id_and_client_bucket_but_no_email() {
    let captured = Captured::install();

    let app = spawn_app_with(&[
        ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ("REGISTER_CLIENT_MAX_PER_MINUTE", "1"),
    ])
    .await;
    let send = |path: &'static str, email: &'static str, password: &'static str| {
        app.post(path)
            .header("x-forwarded-for", "2001:db8:7:7::42")
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
    };
    let created = send("/auth/register", "watched@example.com", "a long password").await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        send("/auth/register", "second@example.com", "a long password")
            .await
            .status,
        429
    );
    for _ in 0..6 {
        send("/auth/login", "watched@example.com", "wrong guess").await;
    }
    send("/auth/login", "ghost-watched@example.com", "wrong guess").await;

    let logs = captured.text();
    let lines = |event: &str| -> Vec<String> {
        logs.lines()
            .filter(|l| l.contains(event))
            .map(str::to_owned)
            .collect()
    };
    let failed = lines("login_failed");
    assert!(failed.iter().any(|l| l.contains(&id)), "{logs}");
    assert!(
        failed
            .iter()
            .all(|l| l.contains("client=2001:db8:7:7::/64")),
        "{failed:?}"
    );
    assert!(!lines("login_throttled").is_empty(), "{logs}");
    assert!(!lines("register_throttled").is_empty(), "{logs}");
    for l in lines("throttled") {
        assert!(l.contains("client=2001:db8:7:7::/64"), "{l}");
    }
    assert!(!logs.contains("watched@example.com"), "no email: {logs}");
    assert!(!logs.contains("a long password") && !logs.contains("wrong guess"));
}

//! Logs never hold a password, a refresh token or a whole JWT.
//!
//! A binary of its own: it installs the global subscriber, which tracing's per-callsite
//! interest cache needs to see every event reliably while other tests run in parallel.

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
async fn canary_password_and_tokens_never_reach_the_logs() {
    let captured = Captured::install();

    let app = spawn_app().await;
    const CANARY: &str = "Canary-Pa55word-7f3a91";
    assert_eq!(app.register("canary@example.com", CANARY).await.status, 201);
    app.login("canary@example.com", "wrong-Canary-Pa55word-7f3a91")
        .await;
    app.login("nobody@example.com", CANARY).await;
    let login = app.login("canary@example.com", CANARY).await;
    assert_eq!(login.status, 200);
    let refresh_token = login.refresh_cookie().unwrap();
    let access = login.access_token();
    let rotated = app.refresh(Some(&refresh_token)).await;
    app.refresh(Some(&refresh_token)).await; // a replay inside the grace window: logged
    app.clock.advance(5);
    app.refresh(Some(&refresh_token)).await; // reuse: logged as an event
    app.me(&access).await;
    app.me(&format!("{access}x")).await;
    app.logout(rotated.refresh_cookie().as_deref()).await;
    app.login_json(&serde_json::json!({ "email": 1, "password": CANARY }))
        .await;

    let logs = captured.text();
    assert!(logs.contains("login_failed"), "logs were captured: {logs}");
    assert!(logs.contains("refresh_replayed"), "a replay is logged");
    assert!(logs.contains("refresh_token_reuse"), "reuse is logged");
    // ... with what an operator needs to investigate it.
    let reuse = logs
        .lines()
        .find(|l| l.contains("refresh_token_reuse"))
        .unwrap();
    let sid = payload_of(&access)["sid"].as_str().unwrap().to_owned();
    let sub = payload_of(&access)["sub"].as_str().unwrap().to_owned();
    assert!(reuse.contains(&format!("session=\"{sid}\"")), "{reuse}");
    assert!(reuse.contains(&format!("user=\"{sub}\"")), "{reuse}");
    assert!(reuse.contains("client="), "{reuse}");
    for secret in [
        CANARY,
        refresh_token.as_str(),
        access.as_str(),
        rotated.refresh_cookie().unwrap().as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    // Not even the signature part of the JWT on its own.
    let signature = access.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}

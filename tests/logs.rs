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

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn canary_password_and_tokens_never_reach_the_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");

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
    app.refresh(Some(&refresh_token)).await; // reuse: logged as an event
    app.me(&access).await;
    app.me(&format!("{access}x")).await;
    app.logout(rotated.refresh_cookie().as_deref()).await;
    app.login_json(&serde_json::json!({ "email": 1, "password": CANARY }))
        .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("login_failed"), "logs were captured: {logs}");
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

//! Each sign-up costs a password hash: the hashing queue is bounded, and a full one answers at
//! once with 503 `unavailable` and `Retry-After` instead of queueing without end.

use std::time::{Duration, Instant};

use jwt_auth::config::Settings;
use jwt_auth::startup::{Adapters, Application};

use crate::helpers::TEST_SECRET;

#[tokio::test]
async fn a_full_hashing_queue_refuses_at_once_with_503_and_retry_after() {
    // One hashing thread, one queued job; cost 13 keeps a hash running for a while.
    let settings = Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "13"),
        ("LOGIN_CONCURRENCY", "1"),
        ("HASH_QUEUE_MAX", "1"),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ])
    .unwrap();
    let adapters = Adapters::in_memory(&settings).unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let register = |n: u32| {
        let url = format!("{base}/auth/register");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({
                    "email": format!("user{n}@example.com"),
                    "password": "a long passphrase",
                }))
                .send()
                .await
                .unwrap()
        }
    };
    let running = tokio::spawn(register(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = tokio::spawn(register(2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !running.is_finished() && !queued.is_finished(),
        "both still hashing or queued"
    );

    let started = Instant::now();
    let refused = register(3).await;
    let took = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
    assert!(
        took < Duration::from_millis(250),
        "refused at once, took {took:?}"
    );

    assert_eq!(running.await.unwrap().status(), 201);
    assert_eq!(
        queued.await.unwrap().status(),
        201,
        "the queued one still ran"
    );
    assert_eq!(
        register(3).await.status(),
        201,
        "served again once the queue drained"
    );
    server.abort();
}

#[tokio::test]
async fn every_503_says_when_to_retry() {
    let app = crate::helpers::spawn_app().await;
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    app.sessions.set_down(true);
    let resp = app.refresh(Some(&cookie)).await;
    resp.assert_error(503, "unavailable");
    assert_eq!(resp.header("retry-after"), Some("1"));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.header("retry-after"), Some("1"));
}

//! One smoke test over a real socket (port 0).

use jwt_auth::config::Settings;
use jwt_auth::startup::{Adapters, Application};

use crate::helpers::{DEMO_EMAIL, DEMO_PASSWORD, TEST_SECRET};

#[tokio::test]
async fn real_socket_login_me_refresh_logout() {
    let settings = Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ])
    .unwrap();
    let adapters = Adapters::in_memory(&settings).unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let port = app.port();
    assert_ne!(port, 0);
    let server = tokio::spawn(app.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();

    let login = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let me = http
        .get(format!("{base}/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let refreshed = http
        .post(format!("{base}/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        200,
        "the cookie jar carried the refresh cookie"
    );
    let logout = http
        .post(format!("{base}/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let again = http
        .post(format!("{base}/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);

    // Oversized headers get a 4xx and the server keeps serving.
    let huge = "a".repeat(64 * 1024);
    let resp = http
        .get(format!("{base}/auth/me"))
        .header("authorization", format!("Bearer {huge}"))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    // Within hyper's header buffer: the token itself is refused for its length.
    assert_eq!(resp.status(), 401);
    let mut many = reqwest::header::HeaderMap::new();
    for i in 0..200 {
        many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_static("v"),
        );
    }
    let resp = http
        .get(format!("{base}/health/live"))
        .headers(many)
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(resp.status(), 431, "more headers than the server reads");
    let live = http
        .get(format!("{base}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "still serving");
    server.abort();
}

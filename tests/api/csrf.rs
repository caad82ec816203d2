//! Cookies, CSRF and CORS (section D).

use serde_json::json;

use crate::helpers::*;

const EVIL: &str = "https://evil.example";
const ALLOWED: &str = "https://app.example";

async fn post(app: &TestApp, path: &str, headers: &[(&str, &str)], cookie: Option<&str>) -> Resp {
    let mut req = app.post(path);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(c) = cookie {
        req = req.cookie(c);
    }
    if path == "/auth/login" {
        req = req.json(&json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }));
    }
    req.send().await
}

#[tokio::test]
async fn cross_site_refresh_is_refused_and_rotates_nothing() {
    // A cross-site refresh changes nothing: the old cookie still works once.
    let app = spawn_app().await;
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    let before = app.store_counts();
    let resp = post(&app, "/auth/refresh", &[("origin", EVIL)], Some(&cookie)).await;
    resp.assert_error(403, "forbidden_origin");
    assert!(resp.set_cookie().is_none(), "no cookie change");
    assert_eq!(app.store_counts(), before);
    assert_eq!(
        app.refresh(Some(&cookie)).await.status,
        200,
        "the old cookie still refreshes once"
    );
}

#[tokio::test]
async fn sec_fetch_site_cross_site_is_refused_on_every_auth_post() {
    // Fetch metadata and login CSRF.
    let app = spawn_app().await;
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    let before = app.store_counts();
    for path in [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/register",
    ] {
        let resp = post(
            &app,
            path,
            &[("sec-fetch-site", "cross-site")],
            Some(&cookie),
        )
        .await;
        resp.assert_error(403, "forbidden_origin");
        assert!(resp.set_cookie().is_none(), "{path}: no cookie is set");
        let resp = post(&app, path, &[("origin", EVIL)], Some(&cookie)).await;
        resp.assert_error(403, "forbidden_origin");
        let resp = post(&app, path, &[("origin", "null")], Some(&cookie)).await;
        resp.assert_error(403, "forbidden_origin");
    }
    assert_eq!(app.store_counts(), before, "no session created or revoked");
}

#[tokio::test]
async fn same_origin_same_site_and_allow_listed_origins_pass() {
    let app = spawn_app_with(&[("ALLOWED_ORIGINS", ALLOWED)]).await;
    let same = post(
        &app,
        "/auth/login",
        &[
            ("origin", "http://localhost:8000"),
            ("host", "localhost:8000"),
        ],
        None,
    )
    .await;
    assert_eq!(same.status, 200, "same origin: {}", same.body);
    let site = post(
        &app,
        "/auth/login",
        &[("sec-fetch-site", "same-origin")],
        None,
    )
    .await;
    assert_eq!(site.status, 200);
    let listed = post(&app, "/auth/login", &[("origin", ALLOWED)], None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
    let other_port = post(
        &app,
        "/auth/login",
        &[
            ("origin", "http://localhost:9999"),
            ("host", "localhost:8000"),
        ],
        None,
    )
    .await;
    other_port.assert_error(403, "forbidden_origin");
}

#[tokio::test]
async fn simple_content_types_are_refused_on_cookie_posts() {
    // Bodies a cross-site form can send never reach the operations.
    let app = spawn_app().await;
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        for path in ["/auth/refresh", "/auth/logout"] {
            let resp = app
                .post(path)
                .header("content-type", ct)
                .cookie(&cookie)
                .body("x")
                .send()
                .await;
            resp.assert_error(415, "unsupported_media_type");
        }
        let resp = app
            .post("/auth/login")
            .header("content-type", ct)
            .body("email=a&password=b")
            .send()
            .await;
        resp.assert_error(415, "unsupported_media_type");
    }
    assert_eq!(
        app.refresh(Some(&cookie)).await.status,
        200,
        "nothing rotated"
    );
}

#[tokio::test]
async fn safe_methods_on_cookie_endpoints_are_405_without_effect() {
    // Only POST has effects.
    let app = spawn_app().await;
    let cookie = app.login_demo().await.refresh_cookie().unwrap();
    for path in ["/auth/refresh", "/auth/logout", "/auth/login"] {
        for method in [
            poem::http::Method::GET,
            poem::http::Method::HEAD,
            poem::http::Method::OPTIONS,
            poem::http::Method::PUT,
        ] {
            let resp = app
                .client
                .request(method.clone(), path)
                .header("cookie", format!("refresh_token={cookie}"))
                .send()
                .await;
            let resp = Resp::read(resp.0).await;
            assert_eq!(resp.status, 405, "{method} {path}");
            assert!(resp.set_cookie().is_none());
        }
    }
    assert_eq!(app.refresh(Some(&cookie)).await.status, 200, "still unused");
}

#[tokio::test]
async fn cors_preflight_only_for_allow_listed_origins() {
    // CORS answers only allow-listed origins, never a reflected one.
    let app = spawn_app_with(&[("ALLOWED_ORIGINS", ALLOWED)]).await;
    let preflight = |origin: &'static str| {
        app.request(poem::http::Method::OPTIONS, "/auth/refresh")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let evil = preflight(EVIL).await;
    assert!(evil.header("access-control-allow-origin").is_none());
    assert!(evil.header("access-control-allow-credentials").is_none());
    let good = preflight(ALLOWED).await;
    assert_eq!(good.status, 204);
    assert_eq!(good.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(
        good.header("access-control-allow-credentials"),
        Some("true")
    );

    let plain = spawn_app().await;
    let resp = Resp::read(
        plain
            .client
            .get("/auth/me")
            .header("origin", EVIL)
            .header("authorization", "Bearer x")
            .send()
            .await
            .0,
    )
    .await;
    assert!(
        resp.header("access-control-allow-origin").is_none(),
        "never reflected"
    );
}

#[tokio::test]
async fn security_headers_on_every_auth_response() {
    // No caching or sniffing of auth answers (no HSTS: TLS terminates in front of this
    // service; see README).
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let responses = vec![
        login,
        app.login(DEMO_EMAIL, "wrong").await,
        app.refresh(None).await,
        app.logout(None).await,
        app.me("x").await,
        app.get("/auth/nope").await,
    ];
    for resp in responses {
        assert_eq!(
            resp.header("cache-control"),
            Some("no-store"),
            "{} {}",
            resp.status,
            resp.body
        );
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    }
}

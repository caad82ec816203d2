//! DNS rebinding: a page on another name that resolves to us sends its own name in both
//! `Host` and `Origin`. Only our own names are answered, on every path.

use poem::http::Method;

use crate::helpers::{spawn_app, spawn_app_with, DEMO_EMAIL, DEMO_PASSWORD};

const EVIL: &str = "rebind.evil.example:8000";

#[tokio::test]
async fn a_foreign_host_is_refused_on_every_path_before_any_work() {
    let app = spawn_app().await;
    let token = app.login_demo().await.access_token();
    let before = app.hasher.calls();
    let login = app
        .post("/auth/login")
        .header("host", EVIL)
        .header("origin", format!("http://{EVIL}"))
        .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
        .send()
        .await;
    login.assert_error(421, "misdirected_request");
    assert!(
        login.set_cookie().is_none(),
        "no session for a foreign host"
    );
    assert_eq!(app.hasher.calls(), before, "refused before the hasher");
    let me = app
        .request(Method::GET, "/auth/me")
        .header("host", EVIL)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await;
    me.assert_error(421, "misdirected_request");
    assert!(!me.body.contains(DEMO_EMAIL), "the user is never readable");
    for path in ["/health/live", "/openapi.json", "/docs", "/no/such/path"] {
        let resp = app
            .request(Method::GET, path)
            .header("host", EVIL)
            .send()
            .await;
        resp.assert_error(421, "misdirected_request");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    }
    // Two Host lines, or a Host that is no authority, are not ours either.
    let twice = app
        .request(Method::GET, "/health/live")
        .header("host", "localhost:8000")
        .header("host", EVIL)
        .send()
        .await;
    twice.assert_error(421, "misdirected_request");
    let junk = app
        .request(Method::GET, "/health/live")
        .header("host", "localhost:http")
        .send()
        .await;
    junk.assert_error(421, "misdirected_request");
}

#[tokio::test]
async fn loopback_names_on_any_port_are_ours_when_bound_to_loopback() {
    let app = spawn_app().await;
    for host in [
        "localhost:8000",
        "127.0.0.1:1234",
        "[::1]:9",
        "LOCALHOST",
        "127.0.0.1",
    ] {
        let resp = app
            .post("/auth/login")
            .header("host", host)
            .header("origin", format!("http://{host}"))
            .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
            .send()
            .await;
        assert_eq!(resp.status, 200, "{host}: {}", resp.body);
    }
    // No Host at all (HTTP/1.0, or this in-process client): no browser sends that.
    assert_eq!(app.get("/health/live").await.status, 200);
}

#[tokio::test]
async fn bound_to_all_interfaces_only_configured_names_are_ours() {
    let app = spawn_app_with(&[
        ("HOST", "0.0.0.0"),
        ("PUBLIC_URL", "https://auth.example.com"),
        ("ALLOWED_HOSTS", "auth.internal:8000, other.example"),
    ])
    .await;
    for host in [
        "auth.example.com",
        "AUTH.example.com:443",
        "auth.internal:8000",
        "other.example:1",
    ] {
        let resp = app
            .request(Method::GET, "/health/live")
            .header("host", host)
            .send()
            .await;
        assert_eq!(resp.status, 200, "{host}: {}", resp.body);
    }
    for host in ["auth.internal:9000", "localhost:8000", "127.0.0.1", EVIL] {
        let resp = app
            .request(Method::GET, "/health/live")
            .header("host", host)
            .send()
            .await;
        resp.assert_error(421, "misdirected_request");
    }
}

#[tokio::test]
async fn dev_bound_to_all_interfaces_without_names_answers_loopback_only() {
    let app = spawn_app_with(&[("HOST", "0.0.0.0")]).await;
    let local = app
        .request(Method::GET, "/health/live")
        .header("host", "localhost:8000")
        .send()
        .await;
    assert_eq!(local.status, 200, "{}", local.body);
    let evil = app
        .request(Method::GET, "/health/live")
        .header("host", EVIL)
        .send()
        .await;
    evil.assert_error(421, "misdirected_request");
}

#[tokio::test]
async fn over_a_real_socket_a_foreign_host_is_refused_and_no_host_is_answered() {
    use tokio::io::AsyncWriteExt;

    use crate::slow_clients::{read_until_closed, serve};

    let (port, server) = serve(&[]).await;
    let ask = |request: &'static [u8]| async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(request).await.unwrap();
        read_until_closed(&mut stream, std::time::Duration::from_secs(5))
            .await
            .expect("an answer and a close")
    };
    let foreign =
        ask(b"GET /health/live HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n")
            .await;
    assert!(foreign.starts_with("HTTP/1.1 421"), "{foreign}");
    assert!(foreign.contains("misdirected_request"), "{foreign}");
    let absolute = ask(b"GET http://rebind.evil.example/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    assert!(
        absolute.starts_with("HTTP/1.1 421"),
        "the URI's authority counts too: {absolute}"
    );
    let ours =
        ask(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    assert!(ours.starts_with("HTTP/1.1 200"), "{ours}");
    let no_host = ask(b"GET /health/live HTTP/1.0\r\n\r\n").await;
    assert!(
        no_host.starts_with("HTTP/1.0 200") || no_host.starts_with("HTTP/1.1 200"),
        "{no_host}"
    );
    server.abort();
}

//! Input validation and header handling (sections F and G). Every case: the contract's 4xx
//! JSON, nothing echoed, nothing changed, the app keeps serving.

use serde_json::json;

use crate::helpers::*;

async fn raw_login(app: &TestApp, content_type: Option<&str>, body: Vec<u8>) -> Resp {
    let mut req = app.post("/auth/login");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body).send().await
}

#[tokio::test]
async fn malformed_json_arrays_and_null() {
    // Malformed bodies get a generic 400 that echoes nothing.
    let app = spawn_app().await;
    for body in [
        r#"{"email":"#,
        "[]",
        "null",
        "",
        "{}",
        r#"{"email":"a@b.c"}"#,
        "\"str\"",
        "{\"email\":\"a@b.c\",\"password\":\"x\"}}",
    ] {
        let resp = raw_login(&app, Some("application/json"), body.as_bytes().to_vec()).await;
        resp.assert_error(400, "invalid_request");
        assert!(
            !resp.body.contains("serde") && !resp.body.contains("line 1"),
            "{}",
            resp.body
        );
    }
    assert_eq!(app.store_counts().0, 0);
}

#[tokio::test]
async fn wrong_types_missing_fields_and_the_echo_check() {
    // Missing or mistyped fields, and wrong content types.
    let app = spawn_app().await;
    for body in [
        json!({ "email": 123, "password": "x" }),
        json!({ "email": "a@b.c", "password": ["x"] }),
        json!({ "email": "a@b.c" }),
        json!({ "password": "canary-value-xyz" }),
        json!({ "email": null, "password": "x" }),
    ] {
        let resp = app.login_json(&body).await;
        resp.assert_error(400, "invalid_request");
        assert!(!resp.body.contains("canary-value-xyz"), "{}", resp.body);
    }
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    // Missing or mistyped fields, and wrong content types.
    let app = spawn_app().await;
    let body = json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD })
        .to_string()
        .into_bytes();
    raw_login(&app, Some("text/plain"), body.clone())
        .await
        .assert_error(415, "unsupported_media_type");
    raw_login(&app, Some("application/xml"), body.clone())
        .await
        .assert_error(415, "unsupported_media_type");
    raw_login(&app, None, body)
        .await
        .assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_before_parsing() {
    // Oversized bodies are refused before parsing, chunked ones too.
    let app = spawn_app().await;
    let huge =
        json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "pad": "x".repeat(1 << 20) });
    app.login_json(&huge)
        .await
        .assert_error(413, "payload_too_large");
    let resp = app
        .client
        .post("/auth/login")
        .header("content-type", "application/json")
        .body(poem::Body::from_async_read(std::io::Cursor::new(
            vec![b' '; 20_000],
        )))
        .send()
        .await;
    Resp::read(resp.0)
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(app.login_demo().await.status, 200, "still serving");
}

#[tokio::test]
async fn long_passwords_are_refused_before_hashing() {
    // Huge passwords are refused before bcrypt, so no CPU is burnt (counted, not timed).
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "2000000")]).await;
    let before = app.hasher.calls();
    for password in ["x".repeat(1025), "x".repeat(10_000), "x".repeat(1 << 20)] {
        let resp = app.login(DEMO_EMAIL, &password).await;
        resp.assert_error(400, "invalid_request");
        let resp = app.register("long@example.com", &password).await;
        resp.assert_error(400, "invalid_request");
    }
    assert_eq!(
        app.hasher.calls(),
        before,
        "no password was hashed or verified"
    );
    // 64 characters (ASVS 6.2.9) and up to 1024 characters are allowed.
    let resp = app.register("long@example.com", &"é".repeat(1024)).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(
        app.login("long@example.com", &"é".repeat(1024))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn emails_that_cannot_be_addresses() {
    // Malformed emails; a SQL-meta one is just an unknown account.
    let app = spawn_app().await;
    let long = format!("{}@x.io", "a".repeat(10_000));
    for email in [long.as_str(), "no-at-sign", "a\u{7}b@x.io", "a\nb@x.io", ""] {
        app.login(email, "test")
            .await
            .assert_error(400, "invalid_request");
    }
    let sql = app.login("' OR 1=1--@x.io", "test").await;
    let unknown = app.login("nobody@x.io", "test").await;
    sql.assert_error(401, "invalid_credentials");
    assert_eq!(sql.body, unknown.body);
}

#[tokio::test]
async fn nul_byte_password_is_not_a_500() {
    // A NUL in a password is data, not a terminator, and never a 500.
    let app = spawn_app().await;
    app.login(DEMO_EMAIL, "te\u{0}st")
        .await
        .assert_error(401, "invalid_credentials");
    let resp = app.register("nul@example.com", "pass\u{0}word-123").await;
    assert_eq!(resp.status, 201, "{}", resp.body);
}

#[tokio::test]
async fn authorization_header_variants() {
    // Only one strictly formed `Authorization: Bearer` credential counts.
    let app = spawn_app().await;
    let token = app.login_demo().await.access_token();
    assert_eq!(
        app.me_with_header(&format!("bearer {token}")).await.status,
        200,
        "scheme is case-insensitive"
    );
    assert_eq!(
        app.me_with_header(&format!("BEARER {token}")).await.status,
        200
    );
    for value in [
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        &format!("Bearer  {token}"),
        &format!("Token {token}"),
    ] {
        let resp = app.me_with_header(value).await;
        resp.assert_error(401, "invalid_token");
        assert_eq!(
            resp.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
    }
    let missing = app.get("/auth/me").await;
    missing.assert_error(401, "invalid_token");
    assert!(missing.header("www-authenticate").is_some());
    let twice = app
        .client
        .get("/auth/me")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await;
    Resp::read(twice.0).await.assert_error(401, "invalid_token");
}

#[tokio::test]
async fn tokens_outside_the_authorization_header_are_ignored() {
    // A token anywhere but the Authorization header is ignored.
    let app = spawn_app().await;
    let token = app.login_demo().await.access_token();
    app.get(&format!("/auth/me?access_token={token}"))
        .await
        .assert_error(401, "invalid_token");
    let cookie = app
        .client
        .get("/auth/me")
        .header("cookie", format!("access_token={token}"))
        .send()
        .await;
    Resp::read(cookie.0)
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let app = spawn_app().await;
    app.get("/auth/nothing-here")
        .await
        .assert_error(404, "not_found");
}

/// A repeated key means one value to us (serde keeps the last) and maybe another to a proxy,
/// WAF or log reader in front (which may keep the first): refused before anything runs.
#[tokio::test]
async fn a_json_body_that_repeats_a_key_is_refused_before_any_work() {
    let app = spawn_app().await;
    let before = app.hasher.calls(); // the demo account's seeding
    for body in [
        r#"{"email":"nobody@example.com","email":"jywan@test.com","password":"test"}"#,
        r#"{"email":"jywan@test.com","password":"wrong","password":"test"}"#,
    ] {
        let resp = app
            .post("/auth/login")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        resp.assert_error(400, "invalid_request");
        assert!(resp.set_cookie().is_none());
    }
    let resp = app
        .post("/auth/register")
        .header("content-type", "application/json")
        .body(r#"{"email":"a@example.com","password":"long enough","email":"b@example.com"}"#)
        .send()
        .await;
    resp.assert_error(400, "invalid_request");
    assert_eq!(
        app.hasher.calls(),
        before,
        "no password was hashed or checked"
    );
}

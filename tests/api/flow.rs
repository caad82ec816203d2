//! The contract's happy paths and the token body, cookie and claims they return.

use crate::helpers::*;
use jwt_auth::startup::{DEMO_EMAIL, DEMO_PASSWORD};

#[tokio::test]
async fn login_returns_the_token_body_and_a_refresh_cookie() {
    // The token body, the claims and the cookie attributes of a login.
    let app = spawn_app().await;
    let resp = app.login_demo().await;
    let body = resp.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "only the three contract fields: {body}"
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));

    let cookie = resp.set_cookie().expect("Set-Cookie");
    let token = resp.refresh_cookie().unwrap();
    assert!(token.len() >= 43, "256 bits base64url");
    assert!(
        !resp.body.contains(&token),
        "the refresh token is only in the cookie"
    );
    assert!(resp.cookie_attr("HttpOnly").is_some(), "{cookie}");
    assert_eq!(resp.cookie_attr("SameSite").as_deref(), Some("Strict"));
    assert_eq!(resp.cookie_attr("Path").as_deref(), Some("/auth"));
    assert_eq!(resp.cookie_attr("Max-Age").as_deref(), Some("2592000"));
    assert!(resp.cookie_attr("Domain").is_none());
    assert!(
        resp.cookie_attr("Secure").is_none(),
        "dev profile turns Secure off"
    );
}

#[tokio::test]
async fn prod_profile_sets_secure_cookie() {
    // The refresh cookie is Secure unless the configuration turns it off.
    let app = spawn_app_with(&PROD).await;
    app.add_user("ops@example.com", "a long passphrase").await;
    let resp = app.login("ops@example.com", "a long passphrase").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.cookie_attr("Secure").is_some(),
        "{:?}",
        resp.set_cookie()
    );
}

#[tokio::test]
async fn cookie_secure_turns_secure_on_in_dev() {
    let app = spawn_app_with(&[("COOKIE_SECURE", "true")]).await;
    let resp = app.login_demo().await;
    assert!(
        resp.cookie_attr("Secure").is_some(),
        "{:?}",
        resp.set_cookie()
    );
}

#[tokio::test]
async fn access_token_carries_exactly_the_contract_claims() {
    // Exactly the contract's claims: nothing that leaks, nothing missing.
    let app = spawn_app().await;
    let token = app.login_demo().await.access_token();
    let header = header_of(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "at+jwt");
    let claims = payload_of(&token);
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["aud", "exp", "iat", "iss", "jti", "sid", "sub"]);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iat"].as_u64(), Some(T0), "integer NumericDate");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
    let text = claims.to_string();
    assert!(
        !text.contains(DEMO_EMAIL) && !text.contains("$2b$") && !text.contains("$bcrypt"),
        "no email or hash: {text}"
    );
}

#[tokio::test]
async fn full_flow_login_me_refresh_me_logout_refresh() {
    full_flow(spawn_app().await).await;
}

pub async fn full_flow(app: TestApp) {
    let login = app.login_demo().await;
    let me = app.me(&login.access_token()).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], DEMO_EMAIL);
    let user_id = me.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(payload_of(&login.access_token())["sub"], user_id);

    let refreshed = app.refresh(login.refresh_cookie().as_deref()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
    let me2 = app.me(&refreshed.access_token()).await;
    assert_eq!(me2.json()["id"], user_id.as_str());

    let logout = app.logout(refreshed.refresh_cookie().as_deref()).await;
    assert_eq!(logout.status, 204);
    assert_eq!(logout.header("cache-control"), Some("no-store"));
    let after = app.refresh(refreshed.refresh_cookie().as_deref()).await;
    after.assert_error(401, "invalid_refresh_token");
}

#[tokio::test]
async fn logout_clears_the_cookie_and_revokes_server_side() {
    // Logout ends the session at once (refresh and the access token), and clears the cookie.
    logout_revokes_server_side(spawn_app().await).await;
}

pub async fn logout_revokes_server_side(app: TestApp) {
    let login = app.login_demo().await;
    let access = login.access_token();
    let logout = app.logout(login.refresh_cookie().as_deref()).await;
    assert_eq!(logout.status, 204);
    assert_eq!(logout.refresh_cookie().as_deref(), Some(""));
    assert_eq!(logout.cookie_attr("Max-Age").as_deref(), Some("0"));
    assert_eq!(logout.cookie_attr("Path").as_deref(), Some("/auth"));
    app.refresh(login.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    let me = app.me(&access).await;
    me.assert_error(401, "invalid_token");
    assert_eq!(
        app.live_sessions().await,
        0,
        "the session is revoked in the store"
    );
}

#[tokio::test]
async fn logout_is_idempotent_without_or_with_a_bad_cookie() {
    // Logout is idempotent and never fails on a bad cookie.
    logout_is_idempotent(spawn_app().await).await;
}

pub async fn logout_is_idempotent(app: TestApp) {
    let login = app.login_demo().await;
    for cookie in [
        None,
        Some("garbage"),
        Some(""),
        login.refresh_cookie().as_deref(),
        login.refresh_cookie().as_deref(),
    ] {
        let resp = app.logout(cookie).await;
        assert_eq!(resp.status, 204, "{cookie:?}: {}", resp.body);
        assert_eq!(resp.cookie_attr("Max-Age").as_deref(), Some("0"));
    }
}

#[tokio::test]
async fn two_logins_are_independent_families() {
    // Sessions are independent: ending one leaves the other.
    two_logins_are_independent(spawn_app().await).await;
}

pub async fn two_logins_are_independent(app: TestApp) {
    let a = app.login_demo().await;
    let b = app.login_demo().await;
    assert_ne!(
        payload_of(&a.access_token())["sid"],
        payload_of(&b.access_token())["sid"]
    );
    app.logout(a.refresh_cookie().as_deref()).await;
    app.refresh(a.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    let b2 = app.refresh(b.refresh_cookie().as_deref()).await;
    assert_eq!(b2.status, 200, "the other family still works: {}", b2.body);
    assert_eq!(app.me(&b.access_token()).await.status, 200);
}

#[tokio::test]
async fn access_token_expires_at_15_minutes_on_the_manual_clock() {
    // `exp == now` is expired.
    let app = spawn_app().await;
    let token = app.login_demo().await.access_token();
    app.clock.advance(899);
    assert_eq!(app.me(&token).await.status, 200);
    app.clock.advance(1);
    let resp = app.me(&token).await;
    resp.assert_error(401, "invalid_token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health/live").await.json()["status"], "ok");
    assert_eq!(app.get("/health/ready").await.json()["status"], "ok");
    app.sessions.set_down(true);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(app.get("/health/live").await.status, 200);
}

#[tokio::test]
async fn demo_password_login_is_case_insensitive_on_email() {
    // Letter case and spaces never make a second account.
    let app = spawn_app().await;
    for email in ["JYWAN@TEST.COM", "  Jywan@Test.com  "] {
        let resp = app.login(email, DEMO_PASSWORD).await;
        assert_eq!(resp.status, 200, "{email:?}: {}", resp.body);
    }
}

//! Claim validation on `GET /auth/me` (section B), with correctly signed tokens, under HS256
//! and each asymmetric algorithm.

use jwt_auth::domain::SigningAlgorithm;
use serde_json::{json, Value};

use crate::helpers::*;

for_each_algorithm!(
    exp_in_the_past_now_or_missing,
    nbf_in_the_future_and_iat_in_the_future,
    issuer_wrong_or_missing,
    audience_wrong_missing_or_in_an_array,
    numeric_dates_of_the_wrong_type,
    huge_exp_with_a_valid_mac_does_not_panic,
    sub_sid_jti_missing_or_unknown,
    typ_must_be_at_jwt,
    configured_leeway_accepts_slightly_expired_tokens,
);

async fn ids(app: &TestApp) -> (String, String) {
    let claims = payload_of(&app.login_demo().await.access_token());
    (
        claims["sub"].as_str().unwrap().into(),
        claims["sid"].as_str().unwrap().into(),
    )
}

async fn status_with(app: &TestApp, claims: &Value) -> u16 {
    let resp = app.me(&app.sign(&app.token_header(), claims)).await;
    if resp.status == 401 {
        resp.assert_error(401, "invalid_token");
        assert!(resp.header("www-authenticate").is_some());
    }
    resp.status
}

async fn exp_in_the_past_now_or_missing(alg: SigningAlgorithm) {
    // Expiry: from `exp` on (no leeway), and a token without `exp` never.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    let mut c = good_claims(&sub, &sid, T0);
    c["exp"] = json!(T0 - 1);
    assert_eq!(status_with(&app, &c).await, 401, "exp = now - 1");
    c["exp"] = json!(T0);
    assert_eq!(status_with(&app, &c).await, 401, "exp = now");
    c["exp"] = json!(T0 + 1);
    assert_eq!(status_with(&app, &c).await, 200, "exp = now + 1");
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(status_with(&app, &c).await, 401, "exp missing");
}

async fn nbf_in_the_future_and_iat_in_the_future(alg: SigningAlgorithm) {
    // Not before `nbf`.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    let mut c = good_claims(&sub, &sid, T0);
    c["nbf"] = json!(T0 + 60);
    assert_eq!(status_with(&app, &c).await, 401);
    c["nbf"] = json!(T0);
    assert_eq!(status_with(&app, &c).await, 200);
    let mut c = good_claims(&sub, &sid, T0);
    c["iat"] = json!(T0 + 60);
    assert_eq!(status_with(&app, &c).await, 401);
}

async fn issuer_wrong_or_missing(alg: SigningAlgorithm) {
    // Tokens of another issuer.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    let mut c = good_claims(&sub, &sid, T0);
    c["iss"] = json!("https://evil.example");
    assert_eq!(status_with(&app, &c).await, 401);
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(status_with(&app, &c).await, 401);
}

async fn audience_wrong_missing_or_in_an_array(alg: SigningAlgorithm) {
    // Tokens for another audience.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    let mut c = good_claims(&sub, &sid, T0);
    for (aud, want) in [
        (json!("other-api"), 401),
        (json!(["other-api", "more"]), 401),
        (json!(["other-api", AUDIENCE]), 200),
        (json!([]), 401),
        (json!(42), 401),
    ] {
        c["aud"] = aud.clone();
        assert_eq!(status_with(&app, &c).await, want, "aud {aud}");
    }
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(status_with(&app, &c).await, 401, "aud missing");
}

async fn numeric_dates_of_the_wrong_type(alg: SigningAlgorithm) {
    // Numeric dates of the wrong type or out of range.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    for name in ["exp", "nbf", "iat"] {
        for bad in [
            json!("1800000900"),
            json!(1_800_000_900.5),
            json!(-5),
            json!(1e30),
            json!(null),
        ] {
            let mut c = good_claims(&sub, &sid, T0);
            c[name] = bad.clone();
            assert_eq!(status_with(&app, &c).await, 401, "{name} = {bad}");
        }
    }
}

async fn huge_exp_with_a_valid_mac_does_not_panic(alg: SigningAlgorithm) {
    // josekit pitfall 13: exp = u64::MAX must not overflow anywhere.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    let mut c = good_claims(&sub, &sid, T0);
    c["exp"] = json!(u64::MAX);
    assert_eq!(
        status_with(&app, &c).await,
        200,
        "a far-future exp is valid, not a crash"
    );
    assert_eq!(app.get("/health/live").await.status, 200);
}

async fn sub_sid_jti_missing_or_unknown(alg: SigningAlgorithm) {
    // A subject that is gone or disabled.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    for name in ["sub", "sid", "jti"] {
        let mut c = good_claims(&sub, &sid, T0);
        c.as_object_mut().unwrap().remove(name);
        assert_eq!(status_with(&app, &c).await, 401, "{name} missing");
    }
    let stranger = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        status_with(&app, &good_claims(&stranger, &sid, T0)).await,
        401,
        "unknown user"
    );
    assert_eq!(
        status_with(&app, &good_claims(&sub, &stranger, T0)).await,
        401,
        "unknown session"
    );
    assert_eq!(
        status_with(&app, &good_claims("not-a-uuid", &sid, T0)).await,
        401
    );
}

async fn typ_must_be_at_jwt(alg: SigningAlgorithm) {
    // A refresh token is never an access token, nor the reverse.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid) = ids(&app).await;
    let c = good_claims(&sub, &sid, T0);
    for typ in [None, Some("JWT"), Some("rt+jwt"), Some("AT+JWT")] {
        let mut header = app.token_header();
        match typ {
            Some(t) => header["typ"] = json!(t),
            None => {
                header.as_object_mut().unwrap().remove("typ");
            }
        }
        let resp = app.me(&app.sign(&header, &c)).await;
        resp.assert_error(401, "invalid_token");
    }
}

async fn configured_leeway_accepts_slightly_expired_tokens(alg: SigningAlgorithm) {
    let app = spawn_app_alg(alg, &[("JWT_LEEWAY_SECS", "30")]).await;
    let (sub, sid) = ids(&app).await;
    let mut c = good_claims(&sub, &sid, T0);
    c["exp"] = json!(T0 - 10);
    assert_eq!(status_with(&app, &c).await, 200);
    c["exp"] = json!(T0 - 30);
    assert_eq!(status_with(&app, &c).await, 401);
}

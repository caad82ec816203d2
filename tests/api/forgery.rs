//! Token forgery against `GET /auth/me` (section A). Every case: 401 `invalid_token` with
//! `WWW-Authenticate`, never a 500, and no library text in the body.

use serde_json::{json, Value};

use crate::helpers::*;

/// A live session's `sub`/`sid`, so only the forged part can make a token fail.
async fn real_ids(app: &TestApp) -> (String, String, String) {
    let token = app.login_demo().await.access_token();
    let claims = payload_of(&token);
    (
        claims["sub"].as_str().unwrap().into(),
        claims["sid"].as_str().unwrap().into(),
        token,
    )
}

async fn assert_refused(app: &TestApp, token: &str, case: &str) {
    let resp = app.me(token).await;
    assert_eq!(resp.status, 401, "{case}: {}", resp.body);
    resp.assert_error(401, "invalid_token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#),
        "{case}"
    );
}

#[tokio::test]
async fn control_a_correctly_signed_token_is_accepted() {
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let token = sign_hs256(
        &good_header(),
        &good_claims(&sub, &sid, T0),
        TEST_SECRET.as_bytes(),
    );
    assert_eq!(
        app.me(&token).await.status,
        200,
        "the forging helper itself is right"
    );
}

#[tokio::test]
async fn alg_none_in_every_spelling() {
    // `alg: none` in any spelling is an unsigned token.
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({ "alg": alg, "typ": "at+jwt" })
            .to_string()
            .as_bytes());
        let p = b64(good_claims(&sub, &sid, T0).to_string().as_bytes());
        assert_refused(&app, &format!("{h}.{p}."), alg).await;
    }
}

#[tokio::test]
async fn null_flipped_truncated_or_padded_signatures() {
    // An empty, altered, truncated or padded signature is no signature.
    let app = spawn_app().await;
    let (_, _, token) = real_ids(&app).await;
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert_refused(&app, &format!("{input}."), "null signature").await;
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    bytes[0] ^= 1;
    assert_refused(&app, &format!("{input}.{}", b64(&bytes)), "bit flip").await;
    assert_refused(
        &app,
        &format!("{input}.{}", &sig[..sig.len() - 4]),
        "truncated",
    )
    .await;
    assert_refused(&app, &format!("{input}.{sig}="), "padded").await;
}

#[tokio::test]
async fn payload_tampering_with_the_original_signature() {
    // A changed payload under the original signature.
    let app = spawn_app().await;
    let (_, _, token) = real_ids(&app).await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = payload_of(&token);
    claims["sub"] = Value::String(uuid::Uuid::new_v4().to_string());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&app, &forged, "sub changed").await;
    let mut claims = payload_of(&token);
    claims["admin"] = Value::Bool(true);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&app, &forged, "claim added").await;
}

#[tokio::test]
async fn other_hmac_algorithms_and_lowercase_alg() {
    // Algorithm confusion within HMAC: only the exact configured name is allowed.
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    for alg in ["HS384", "HS512", "hs256", "Hs256"] {
        let token = sign_hs256(
            &json!({ "alg": alg, "typ": "at+jwt" }),
            &claims,
            TEST_SECRET.as_bytes(),
        );
        assert_refused(&app, &token, alg).await;
    }
    // Properly HS384-signed with the same secret.
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type("at+jwt");
    let mut payload = josekit::jwt::JwtPayload::new();
    for (k, v) in claims.as_object().unwrap() {
        payload.set_claim(k, Some(v.clone())).unwrap();
    }
    let signer = josekit::jws::HS384
        .signer_from_bytes(format!("{TEST_SECRET}-pad-to-48-bytes"))
        .unwrap();
    let token = josekit::jwt::encode_with_signer(&payload, &header, &signer).unwrap();
    assert_refused(&app, &token, "real HS384").await;
}

#[tokio::test]
async fn asymmetric_algorithms_and_psychic_signature() {
    // Public-key algorithms, and the CVE-2022-21449 r=s=0 ES256 signature.
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let p = b64(claims.to_string().as_bytes());
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let h = b64(json!({ "alg": alg, "typ": "at+jwt" })
            .to_string()
            .as_bytes());
        assert_refused(&app, &format!("{h}.{p}.{}", b64(&[0u8; 64])), alg).await;
    }
    let es = josekit::jws::ES256.generate_key_pair().unwrap();
    let signer = josekit::jws::ES256
        .signer_from_der(es.to_der_private_key())
        .unwrap();
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type("at+jwt");
    let mut payload = josekit::jwt::JwtPayload::new();
    for (k, v) in claims.as_object().unwrap() {
        payload.set_claim(k, Some(v.clone())).unwrap();
    }
    let token = josekit::jwt::encode_with_signer(&payload, &header, &signer).unwrap();
    assert_refused(&app, &token, "real ES256").await;
}

#[tokio::test]
async fn empty_key_and_common_secrets() {
    // Tokens signed with an empty or a commonly guessed secret.
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    for key in [
        "",
        "secret",
        "changeme",
        "password",
        "your-256-bit-secret",
        "jwt-auth",
        "CHANGE_ME",
    ] {
        assert_refused(
            &app,
            &sign_hs256(&good_header(), &claims, key.as_bytes()),
            key,
        )
        .await;
    }
}

#[tokio::test]
async fn embedded_or_remote_keys_in_the_header() {
    // Attacker-supplied keys: jwk, jku, x5u are refused (and never fetched).
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let attacker_key = b"attacker-chosen-key-0123456789abcdef";
    let jwk = json!({ "kty": "oct", "k": b64(attacker_key) });
    for (name, value) in [
        ("jwk", jwk),
        ("jku", json!("http://127.0.0.1:9/jwks.json")),
        ("x5u", json!("http://127.0.0.1:9/x.pem")),
    ] {
        let mut header = good_header();
        header[name] = value;
        assert_refused(&app, &sign_hs256(&header, &claims, attacker_key), name).await;
        // Even with our own key, a header parameter we never issue is refused.
        assert_refused(
            &app,
            &sign_hs256(&header, &claims, TEST_SECRET.as_bytes()),
            name,
        )
        .await;
    }
}

#[tokio::test]
async fn kid_injection() {
    // `kid` is never used for a lookup, so its injection payloads do nothing.
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    for kid in ["../../../../dev/null", "' OR '1'='1", "x; rm -rf /"] {
        let mut header = good_header();
        header["kid"] = json!(kid);
        assert_refused(&app, &sign_hs256(&header, &claims, b""), kid).await;
        assert_refused(
            &app,
            &sign_hs256(&header, &claims, TEST_SECRET.as_bytes()),
            kid,
        )
        .await;
    }
}

#[tokio::test]
async fn crit_header() {
    // `crit` extensions the verifier does not implement.
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    for crit in [json!(["exp"]), json!(["b64"])] {
        let mut header = good_header();
        header["crit"] = crit.clone();
        if crit == json!(["b64"]) {
            header["b64"] = json!(false);
        }
        assert_refused(
            &app,
            &sign_hs256(&header, &claims, TEST_SECRET.as_bytes()),
            &crit.to_string(),
        )
        .await;
    }
}

#[tokio::test]
async fn previous_secret_only_during_the_configured_overlap() {
    // An old signing secret only during the configured overlap.
    let old = "the-old-secret-0123456789-abcdefghijklmnop";
    let app = spawn_app().await;
    let (sub, sid, _) = real_ids(&app).await;
    let token = sign_hs256(&good_header(), &good_claims(&sub, &sid, T0), old.as_bytes());
    assert_refused(&app, &token, "old secret, no overlap configured").await;

    let overlapping = spawn_app_with(&[("JWT_PREVIOUS_SECRET_KEY", old)]).await;
    let (sub, sid, _) = real_ids(&overlapping).await;
    let token = sign_hs256(&good_header(), &good_claims(&sub, &sid, T0), old.as_bytes());
    assert_eq!(
        overlapping.me(&token).await.status,
        200,
        "accepted while JWT_PREVIOUS_SECRET_KEY is set"
    );
    let issued = overlapping.login_demo().await.access_token();
    let wrong = sign_hs256(&good_header(), &payload_of(&issued), old.as_bytes());
    assert_ne!(wrong, issued, "new tokens are signed with the current key");
}

#[tokio::test]
async fn malformed_compact_serializations() {
    // Malformed compact serializations: refused, never a 500.
    let app = spawn_app().await;
    let (_, _, token) = real_ids(&app).await;
    let parts: Vec<&str> = token.split('.').collect();
    let not_object = b64(b"[1,2,3]");
    let cases = [
        format!(
            "{}.{}.{}.{}.{}",
            parts[0], parts[1], parts[2], parts[2], parts[2]
        ),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
        format!("{not_object}.{}.{}", parts[1], parts[2]),
        format!("{}.{not_object}.{}", parts[0], parts[2]),
        sign_hs256(
            &good_header(),
            &json!("just a string"),
            TEST_SECRET.as_bytes(),
        ),
        "....".into(),
        "%%%.%%%.%%%".into(),
        "a".repeat(5000),
    ];
    for (i, token) in cases.iter().enumerate() {
        assert_refused(&app, token, &format!("malformed #{i}")).await;
    }
}

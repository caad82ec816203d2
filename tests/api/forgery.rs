//! Token forgery against `GET /auth/me` (section A). Every case: 401 `invalid_token` with
//! `WWW-Authenticate`, never a 500, and no library text in the body. Each case runs under
//! HS256 and under each asymmetric algorithm (`for_each_algorithm!`).

use jwt_auth::adapters::outbound::signing_keys::SigningKey;
use jwt_auth::domain::SigningAlgorithm;
use serde_json::{json, Value};

use crate::helpers::*;

for_each_algorithm!(
    control_a_correctly_signed_token_is_accepted,
    alg_none_in_every_spelling,
    null_flipped_truncated_or_padded_signatures,
    payload_tampering_with_the_original_signature,
    other_algorithms_and_lowercase_alg,
    hmac_keyed_with_the_public_key,
    zero_and_foreign_signatures,
    empty_key_and_common_secrets,
    embedded_or_remote_keys_in_the_header,
    kid_injection_and_unknown_kids,
    crit_header,
    malformed_compact_serializations,
);

/// The header of the app's tokens with `alg` replaced.
fn with_alg(app: &TestApp, alg: &str) -> Value {
    let mut header = app.token_header();
    header["alg"] = json!(alg);
    header
}

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

async fn control_a_correctly_signed_token_is_accepted(alg: SigningAlgorithm) {
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, issued) = real_ids(&app).await;
    assert_eq!(header_of(&issued)["alg"], alg.name());
    assert_eq!(
        header_of(&issued).get("kid").and_then(Value::as_str),
        app.kid().as_deref(),
        "a kid exactly with a key pair"
    );
    let token = app.sign(&app.token_header(), &good_claims(&sub, &sid, T0));
    assert_eq!(
        app.me(&token).await.status,
        200,
        "the forging helper itself is right"
    );
}

async fn alg_none_in_every_spelling(alg: SigningAlgorithm) {
    // `alg: none` in any spelling is an unsigned token.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(with_alg(&app, alg).to_string().as_bytes());
        let p = b64(good_claims(&sub, &sid, T0).to_string().as_bytes());
        assert_refused(&app, &format!("{h}.{p}."), alg).await;
    }
}

async fn null_flipped_truncated_or_padded_signatures(alg: SigningAlgorithm) {
    // An empty, altered, truncated or padded signature is no signature.
    let app = spawn_app_alg(alg, &[]).await;
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

async fn payload_tampering_with_the_original_signature(alg: SigningAlgorithm) {
    // A changed payload under the original signature.
    let app = spawn_app_alg(alg, &[]).await;
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

async fn other_algorithms_and_lowercase_alg(alg: SigningAlgorithm) {
    // Algorithm confusion: a token signed with our own key whose header names any other
    // algorithm, or ours in another letter case, is refused.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let ours = alg.name();
    let mut names: Vec<String> = SigningAlgorithm::ALL
        .iter()
        .map(|a| a.name().to_owned())
        .filter(|n| n != ours)
        .collect();
    names.extend(["PS256", "ES384", "RS512", "Ed25519"].map(str::to_owned));
    names.push(ours.to_lowercase());
    names.push(format!("{}{}", &ours[..1].to_lowercase(), &ours[1..]));
    for name in names {
        let token = app.sign(&with_alg(&app, &name), &claims);
        assert_refused(&app, &token, &name).await;
    }
    if alg == SigningAlgorithm::HS256 {
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
}

async fn hmac_keyed_with_the_public_key(alg: SigningAlgorithm) {
    // The classic confusion: HS256 "signed" with the published public key, in every form a
    // verifier might feed to HMAC (the JWK JSON, its members, the SPKI PEM); and, under HS256,
    // a real key pair's signature.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for jwk in jwks["keys"].as_array().unwrap() {
        keys.push(jwk.to_string().into_bytes());
        for member in ["x", "y", "n"] {
            if let Some(v) = jwk[member].as_str() {
                keys.push(v.as_bytes().to_vec());
                keys.push(
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v)
                        .unwrap(),
                );
            }
        }
    }
    keys.extend(public_key_files(&app));
    assert_eq!(keys.is_empty(), !alg.is_asymmetric(), "{jwks}");
    for (i, key) in keys.iter().enumerate() {
        for name in ["HS256", "HS384", "HS512"] {
            let token = sign_hs256(&with_alg(&app, name), &claims, key);
            assert_refused(&app, &token, &format!("{name} keyed with public form #{i}")).await;
        }
    }
    if !alg.is_asymmetric() {
        for other in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
            let key = SigningKey::generate(other).unwrap();
            let mut header = app.token_header();
            header["alg"] = json!(other.name());
            header["kid"] = json!(key.kid());
            assert_refused(
                &app,
                &sign_with(key.signer(), &header, &claims),
                other.name(),
            )
            .await;
        }
    }
}

/// The public key as SPKI PEM and DER, the forms a confused verifier reads from a key file.
fn public_key_files(app: &TestApp) -> Vec<Vec<u8>> {
    let Some(ring) = &app.adapters.key_ring else {
        return Vec::new();
    };
    let set = ring.snapshot();
    let private = set.signing().private_pem();
    let pair: Box<dyn josekit::jwk::KeyPair> = match app.algorithm() {
        SigningAlgorithm::EdDSA => {
            Box::new(josekit::jws::EdDSA.key_pair_from_pem(private).unwrap())
        }
        SigningAlgorithm::ES256 => {
            Box::new(josekit::jws::ES256.key_pair_from_pem(private).unwrap())
        }
        _ => Box::new(josekit::jws::RS256.key_pair_from_pem(private).unwrap()),
    };
    vec![pair.to_pem_public_key(), pair.to_der_public_key()]
}

async fn zero_and_foreign_signatures(alg: SigningAlgorithm) {
    // All-zero signatures under every public-key algorithm (for ES256 this is the
    // CVE-2022-21449 r = s = 0 "psychic signature"), and a real signature by a key that is not
    // ours, with and without our kid.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let p = b64(claims.to_string().as_bytes());
    for name in ["RS256", "ES256", "PS256", "EdDSA"] {
        let h = b64(with_alg(&app, name).to_string().as_bytes());
        for len in [64, 256] {
            assert_refused(&app, &format!("{h}.{p}.{}", b64(&vec![0u8; len])), name).await;
        }
    }
    for other in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
    ] {
        let stranger = SigningKey::generate(other).unwrap();
        let mut header = with_alg(&app, other.name());
        assert_refused(
            &app,
            &sign_with(stranger.signer(), &header, &claims),
            "a stranger's key under our kid",
        )
        .await;
        header["kid"] = json!(stranger.kid());
        assert_refused(
            &app,
            &sign_with(stranger.signer(), &header, &claims),
            "a stranger's key under its own kid",
        )
        .await;
        header.as_object_mut().unwrap().remove("kid");
        assert_refused(
            &app,
            &sign_with(stranger.signer(), &header, &claims),
            "a stranger's key without kid",
        )
        .await;
    }
}

async fn empty_key_and_common_secrets(alg: SigningAlgorithm) {
    // Tokens signed with an empty or a commonly guessed secret.
    let app = spawn_app_alg(alg, &[]).await;
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
            &sign_hs256(&with_alg(&app, "HS256"), &claims, key.as_bytes()),
            key,
        )
        .await;
    }
}

async fn embedded_or_remote_keys_in_the_header(alg: SigningAlgorithm) {
    // Attacker-supplied keys: jwk (CVE-2018-0114), jku, x5u are refused (and never fetched),
    // whether the token is signed with the attacker's key or with ours.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let attacker_key = b"attacker-chosen-key-0123456789abcdef";
    let attacker_pair = SigningKey::generate(if alg.is_asymmetric() {
        alg
    } else {
        SigningAlgorithm::ES256
    })
    .unwrap();
    let oct = json!({ "kty": "oct", "k": b64(attacker_key) });
    for (name, value) in [
        ("jwk", oct),
        ("jwk", Value::Object(attacker_pair.public_jwk().clone())),
        ("jku", json!("http://127.0.0.1:9/jwks.json")),
        ("x5u", json!("http://127.0.0.1:9/x.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = app.token_header();
        header[name] = value;
        assert_refused(&app, &sign_hs256(&header, &claims, attacker_key), name).await;
        let mut own = header.clone();
        own["alg"] = json!(attacker_pair.algorithm().name());
        own["kid"] = json!(attacker_pair.kid());
        assert_refused(
            &app,
            &sign_with(attacker_pair.signer(), &own, &claims),
            name,
        )
        .await;
        // Even with our own key, a header parameter we never issue is refused.
        assert_refused(&app, &app.sign(&header, &claims), name).await;
    }
}

async fn kid_injection_and_unknown_kids(alg: SigningAlgorithm) {
    // `kid` is only ever compared with our own keys' ids, so its injection payloads do
    // nothing, and a kid that names no key of ours (or, under HS*, any kid) is refused even
    // over a signature by our own key.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    let unknown = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let mut kids = vec![
        "../../../../dev/null".to_owned(),
        "' OR '1'='1".to_owned(),
        "x; rm -rf /".to_owned(),
        String::new(),
        unknown.kid().to_owned(),
    ];
    if let Some(kid) = app.kid() {
        kids.push(kid.to_lowercase());
        kids.push(format!("{kid} "));
    }
    for kid in &kids {
        let mut header = app.token_header();
        header["kid"] = json!(kid);
        assert_refused(&app, &sign_hs256(&header, &claims, b""), kid).await;
        assert_refused(&app, &app.sign(&header, &claims), kid).await;
    }
    let mut header = app.token_header();
    header["kid"] = json!(42);
    assert_refused(&app, &app.sign(&header, &claims), "numeric kid").await;
    if alg.is_asymmetric() {
        header.as_object_mut().unwrap().remove("kid");
        assert_refused(&app, &app.sign(&header, &claims), "no kid").await;
    }
}

async fn crit_header(alg: SigningAlgorithm) {
    // `crit` extensions the verifier does not implement.
    let app = spawn_app_alg(alg, &[]).await;
    let (sub, sid, _) = real_ids(&app).await;
    let claims = good_claims(&sub, &sid, T0);
    for crit in [json!(["exp"]), json!(["b64"])] {
        let mut header = app.token_header();
        header["crit"] = crit.clone();
        if crit == json!(["b64"]) {
            header["b64"] = json!(false);
        }
        assert_refused(&app, &app.sign(&header, &claims), &crit.to_string()).await;
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

async fn malformed_compact_serializations(alg: SigningAlgorithm) {
    // Malformed compact serializations: refused, never a 500.
    let app = spawn_app_alg(alg, &[]).await;
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
        app.sign(&app.token_header(), &json!("just a string")),
        "....".into(),
        "%%%.%%%.%%%".into(),
        "a".repeat(5000),
    ];
    for (i, token) in cases.iter().enumerate() {
        assert_refused(&app, token, &format!("malformed #{i}")).await;
    }
}

#[tokio::test]
async fn previous_secret_stops_at_its_end_date() {
    // JWT_PREVIOUS_SECRET_KEY_UNTIL ends the overlap; without it (dev) the overlap is one
    // access-token lifetime from start-up, so a forgotten old secret expires by itself.
    let old = "the-old-secret-0123456789-abcdefghijklmnop";
    let until = (T0 + 60).to_string();
    for (overrides, end) in [
        (
            vec![
                ("JWT_PREVIOUS_SECRET_KEY", old),
                ("JWT_PREVIOUS_SECRET_KEY_UNTIL", until.as_str()),
            ],
            T0 + 60,
        ),
        (vec![("JWT_PREVIOUS_SECRET_KEY", old)], T0 + 900),
    ] {
        let app = spawn_app_with(&overrides).await;
        let (sub, sid, _) = real_ids(&app).await;
        let mut claims = good_claims(&sub, &sid, T0);
        claims["exp"] = json!(T0 + 3600);
        let token = sign_hs256(&good_header(), &claims, old.as_bytes());
        assert_eq!(app.me(&token).await.status, 200, "before the end date");
        app.clock.advance(end - 1 - T0);
        assert_eq!(
            app.me(&token).await.status,
            200,
            "cached, before the end date"
        );
        app.clock.advance(1);
        assert_refused(&app, &token, "from the end date on, even once cached").await;
        let mut fresh = good_claims(&sub, &sid, end);
        fresh["exp"] = json!(end + 600);
        let fresh = sign_hs256(&good_header(), &fresh, old.as_bytes());
        assert_refused(&app, &fresh, "a token signed after the end date").await;
        let current = app.login_demo().await.access_token();
        assert_eq!(
            app.me(&current).await.status,
            200,
            "the current secret still works"
        );
    }
}

#[tokio::test]
async fn previous_secret_ends_exactly_at_its_end_date_under_a_leeway_even_once_cached() {
    // The leeway forgives clock skew on `exp`; it must not stretch the end of an old secret.
    // A token verified (and so cached) before the end date was accepted up to one leeway past
    // it.
    let old = "the-old-secret-0123456789-abcdefghijklmnop";
    let until = (T0 + 60).to_string();
    let app = spawn_app_with(&[
        ("JWT_PREVIOUS_SECRET_KEY", old),
        ("JWT_PREVIOUS_SECRET_KEY_UNTIL", until.as_str()),
        ("JWT_LEEWAY_SECS", "30"),
    ])
    .await;
    let (sub, sid, _) = real_ids(&app).await;
    let mut claims = good_claims(&sub, &sid, T0);
    claims["exp"] = json!(T0 + 3600);
    let token = sign_hs256(&good_header(), &claims, old.as_bytes());
    assert_eq!(app.me(&token).await.status, 200, "before the end date");
    app.clock.advance(59);
    assert_eq!(
        app.me(&token).await.status,
        200,
        "cached, one second before"
    );
    app.clock.advance(1);
    assert_refused(&app, &token, "at the end date, though cached").await;
    app.clock.advance(15);
    assert_refused(&app, &token, "within one leeway past the end date").await;
}

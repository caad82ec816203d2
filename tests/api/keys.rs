//! Signing keys: the JWKS and discovery documents, key files, and verification of our tokens
//! with nothing but what the service publishes.

use std::sync::Arc;

use jwt_auth::adapters::outbound::signing_keys::SigningKey;
use jwt_auth::domain::SigningAlgorithm;
use serde_json::{json, Value};

use crate::helpers::*;

const ASYMMETRIC: [SigningAlgorithm; 3] = [
    SigningAlgorithm::EdDSA,
    SigningAlgorithm::ES256,
    SigningAlgorithm::RS256,
];

/// Members a public JWK of each key type may have; anything else (a private parameter above
/// all) fails the test.
fn assert_public_only(jwk: &Value) {
    let allowed: &[&str] = match jwk["kty"].as_str().unwrap() {
        "OKP" => &["kty", "kid", "alg", "use", "crv", "x"],
        "EC" => &["kty", "kid", "alg", "use", "crv", "x", "y"],
        "RSA" => &["kty", "kid", "alg", "use", "n", "e"],
        other => panic!("unexpected kty {other}"),
    };
    for member in jwk.as_object().unwrap().keys() {
        assert!(allowed.contains(&member.as_str()), "{member} in {jwk}");
    }
    assert_eq!(jwk["use"], "sig");
}

/// Verifies `token` with the JWK the JWKS lists under its `kid`, as a third party would.
fn verify_with_jwks(jwks: &Value, token: &str) -> Result<Value, String> {
    let kid = header_of(token)["kid"].as_str().ok_or("no kid")?.to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or("kid not published")?;
    let jwk =
        josekit::jwk::Jwk::from_map(jwk.as_object().unwrap().clone()).map_err(|e| e.to_string())?;
    let verifier: Box<dyn josekit::jws::JwsVerifier> = match jwk.algorithm() {
        Some("EdDSA") => Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jwk).unwrap()),
        Some("ES256") => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
        Some("RS256") => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()),
        other => return Err(format!("alg {other:?}")),
    };
    josekit::jwt::decode_with_verifier(token, verifier.as_ref())
        .map(|(payload, _)| Value::Object(payload.claims_set().clone()))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn jwks_is_empty_under_hmac_and_cacheable() {
    let app = spawn_app().await;
    let resp = app.get("/.well-known/jwks.json").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({ "keys": [] }));
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
    assert!(
        !resp.body.contains(TEST_SECRET),
        "a shared secret is never published"
    );
}

#[tokio::test]
async fn jwks_publishes_the_signing_key_and_tokens_verify_with_it_alone() {
    for alg in ASYMMETRIC {
        let app = spawn_app_alg(alg, &[]).await;
        let resp = app.get("/.well-known/jwks.json").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
        let jwks = resp.json();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{jwks}");
        assert_public_only(&keys[0]);
        assert_eq!(keys[0]["alg"], alg.name());
        assert_eq!(keys[0]["kid"], app.kid().unwrap().as_str());
        let token = app.login_demo().await.access_token();
        let claims = verify_with_jwks(&jwks, &token).unwrap();
        assert_eq!(claims["iss"], ISSUER);
        // The same verifier refuses a token signed by another key under our kid.
        let stranger = SigningKey::generate(alg).unwrap();
        let forged = sign_with(stranger.signer(), &app.token_header(), &payload_of(&token));
        assert!(verify_with_jwks(&jwks, &forged).is_err(), "{alg:?}");
        assert_eq!(app.me(&forged).await.status, 401);
    }
}

#[tokio::test]
async fn discovery_names_the_tokens_issuer_and_an_absolute_jwks_uri() {
    let app = spawn_app_alg(
        SigningAlgorithm::ES256,
        &[("JWT_ISSUER", "http://localhost:8000")],
    )
    .await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let resp = app
            .request(poem::http::Method::GET, path)
            .header("host", "localhost:8000")
            .send()
            .await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
        let meta = resp.json();
        assert_eq!(meta["issuer"], "http://localhost:8000");
        assert_eq!(
            meta["jwks_uri"], "http://localhost:8000/.well-known/jwks.json",
            "the request's own origin"
        );
        assert_eq!(
            meta["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        let token = app.login_demo().await.access_token();
        assert_eq!(payload_of(&token)["iss"], meta["issuer"], "issuer == iss");
    }
    let public = spawn_app_with(&[("PUBLIC_URL", "https://auth.example.com/")]).await;
    let meta = public.get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        meta["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["HS256"])
    );
    // A Host that is not ours never reaches the document (no jwks_uri on a forged origin).
    let resp = public
        .request(poem::http::Method::GET, "/.well-known/openid-configuration")
        .header("host", "evil.example")
        .send()
        .await;
    assert_eq!(resp.status, 421);
}

/// A temporary folder removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "jwt-auth-keys-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn keys_from_a_pem_file_or_a_folder() {
    let dir = TempDir::new("files");
    let alg = SigningAlgorithm::EdDSA;
    let [old, current, next] = [(); 3].map(|()| Arc::new(SigningKey::generate(alg).unwrap()));
    std::fs::write(dir.0.join("2026-01.pem"), old.private_pem()).unwrap();
    std::fs::write(dir.0.join("2026-02.pem"), current.private_pem()).unwrap();
    std::fs::write(dir.0.join("2026-03.next.pem"), next.private_pem()).unwrap();
    std::fs::write(dir.0.join("README.txt"), "not a key").unwrap();
    let folder = dir.0.to_string_lossy().into_owned();
    let app = spawn_app_alg(alg, &[("JWT_PRIVATE_KEY_FILE", &folder)]).await;
    assert_eq!(
        app.kid().as_deref(),
        Some(current.kid()),
        "the last non-next file signs"
    );
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let mut kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    kids.sort_unstable();
    let mut want = vec![old.kid(), current.kid(), next.kid()];
    want.sort_unstable();
    assert_eq!(kids, want, "previous and next are published");
    let (sub, sid) = {
        let c = payload_of(&app.login_demo().await.access_token());
        (
            c["sub"].as_str().unwrap().to_owned(),
            c["sid"].as_str().unwrap().to_owned(),
        )
    };
    for key in [&old, &next] {
        let mut header = app.token_header();
        header["kid"] = json!(key.kid());
        let token = sign_with(key.signer(), &header, &good_claims(&sub, &sid, T0));
        assert_eq!(app.me(&token).await.status, 200, "a published key verifies");
    }

    let file = dir.0.join("2026-02.pem").to_string_lossy().into_owned();
    let single = spawn_app_alg(alg, &[("JWT_PRIVATE_KEY_FILE", &file)]).await;
    assert_eq!(single.kid().as_deref(), Some(current.kid()));
    assert_eq!(
        single.get("/.well-known/jwks.json").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn unusable_key_files_are_refused_at_start_up_without_echoing_them() {
    let dir = TempDir::new("bad");
    let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let path = dir.0.join("key.pem");
    std::fs::write(&path, ed.private_pem()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let settings = jwt_auth::config::Settings::from_pairs(&[
        ("JWT_ALGORITHM", "ES256"),
        ("JWT_PRIVATE_KEY_FILE", &path),
    ])
    .unwrap();
    let err = jwt_auth::startup::Adapters::in_memory(&settings)
        .err()
        .expect("an EdDSA key under ES256 is refused")
        .to_string();
    assert!(
        err.contains("JWT_PRIVATE_KEY_FILE") && err.contains("key.pem"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    let missing = jwt_auth::config::Settings::from_pairs(&[
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
    ])
    .unwrap();
    assert!(jwt_auth::startup::Adapters::in_memory(&missing).is_err());
    let empty = TempDir::new("empty");
    let empty_path = empty.0.to_string_lossy().into_owned();
    let settings = jwt_auth::config::Settings::from_pairs(&[
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", &empty_path),
    ])
    .unwrap();
    assert!(jwt_auth::startup::Adapters::in_memory(&settings).is_err());
    let hs = jwt_auth::config::Settings::from_pairs(&[("JWT_PRIVATE_KEY_FILE", &path)]);
    assert!(hs.unwrap_err().to_string().contains("JWT_PRIVATE_KEY_FILE"));
}

#[tokio::test]
async fn prod_under_a_key_pair_needs_no_shared_secret() {
    let app = spawn_app_alg(
        SigningAlgorithm::EdDSA,
        &[
            ("ENV", "prod"),
            ("BCRYPT_COST", "10"),
            ("JWT_SECRET_KEY", ""),
            ("PUBLIC_URL", "https://auth.example.com"),
        ],
    )
    .await;
    assert_eq!(
        app.get("/.well-known/jwks.json").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn prod_under_a_key_pair_requires_an_https_public_url() {
    // Without PUBLIC_URL, discovery advertises the request's origin, which behind a TLS
    // proxy is http://: verifiers would fetch the keys in clear (or not at all).
    for alg in ["EdDSA", "ES256", "RS256"] {
        for public_url in [
            None,
            Some("http://auth.example.com"),
            Some("auth.example.com"),
        ] {
            let mut pairs = vec![("ENV", "prod"), ("JWT_ALGORITHM", alg)];
            pairs.extend(public_url.map(|u| ("PUBLIC_URL", u)));
            let err = jwt_auth::config::Settings::from_pairs(&pairs)
                .err()
                .unwrap_or_else(|| panic!("{alg} {public_url:?} accepted in prod"))
                .to_string();
            assert!(
                err.contains("PUBLIC_URL") && err.contains("https"),
                "{alg} {public_url:?}: {err}"
            );
        }
    }
    // HS256 publishes no keys; dev keeps the request's origin.
    assert!(jwt_auth::config::Settings::from_pairs(&PROD).is_ok());
    assert!(jwt_auth::config::Settings::from_pairs(&[("JWT_ALGORITHM", "EdDSA")]).is_ok());
    let app = spawn_app_alg(
        SigningAlgorithm::ES256,
        &[
            ("ENV", "prod"),
            ("BCRYPT_COST", "10"),
            ("JWT_SECRET_KEY", ""),
            ("PUBLIC_URL", "https://auth.example.com"),
        ],
    )
    .await;
    let discovery = app.get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        discovery["jwks_uri"], "https://auth.example.com/.well-known/jwks.json",
        "{discovery}"
    );
}

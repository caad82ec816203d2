//! The key lifecycle through the real app: generated keys persisted in the store, rotation
//! without a failed verification (at `/auth/me` of two instances on one database and at a
//! verifier holding a cached JWKS), retirement, and sealing at rest.

use jwt_auth::adapters::outbound::key_lifecycle::KEY_RELOAD_SECS;
use jwt_auth::domain::{KeyAction, SigningAlgorithm, JWKS_MAX_AGE_SECS};
use serde_json::Value;

use crate::helpers::*;

const ALG: SigningAlgorithm = SigningAlgorithm::EdDSA;

fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// Every token still unexpired must pass `/auth/me` on every instance and verify against the
/// cached JWKS; returns the failures.
async fn failures(
    apps: &[&TestApp],
    tokens: &[(String, u64)],
    cached_jwks: &Value,
    now: u64,
) -> usize {
    let mut failed = 0;
    for (token, _) in tokens.iter().filter(|(_, exp)| *exp > now) {
        for app in apps {
            if app.me(token).await.status != 200 {
                failed += 1;
            }
        }
        let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
        if !kids(cached_jwks).contains(&kid) {
            failed += 1;
        }
    }
    failed
}

fn advance(apps: &[&TestApp], secs: u64) {
    for app in apps {
        app.clock.advance(secs);
    }
}

async fn tick(app: &TestApp) -> Vec<KeyAction> {
    app.adapters
        .key_lifecycle
        .as_ref()
        .expect("generated keys")
        .tick()
        .await
        .expect("tick")
}

/// Two instances on one database: both sign with the same key, a rotation publishes the next
/// key everywhere before either signs with it, and no verification fails at any step.
pub async fn rotation_on_two_instances(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    // Every login is the demo account's: the session cap must not end the sessions whose
    // tokens are checked.
    let settings = [
        ("JWT_ALGORITHM", ALG.name()),
        ("MAX_SESSIONS_PER_USER", "1000"),
    ];
    let a = spawn_app_from(stores, &settings).await;
    let b = spawn_second_instance(&a, &settings).await;
    let apps = [&a, &b];
    assert_eq!(
        a.kid(),
        b.kid(),
        "the second instance loads the first one's key"
    );
    let first = a.kid().unwrap();
    let mut now = T0;
    let mut tokens = vec![
        (a.login_demo().await.access_token(), now + 900),
        (b.login_demo().await.access_token(), now + 900),
    ];
    // A verifier's cache, refreshed whenever its max-age has passed.
    let mut cached = b.get("/.well-known/jwks.json").await.json();
    let mut cached_at = now;
    let mut failed = failures(&apps, &tokens, &cached, now).await;

    let said = a
        .adapters
        .key_lifecycle
        .as_ref()
        .unwrap()
        .rotate()
        .await
        .unwrap();
    assert!(said.contains("published next key"), "{said}");
    let published_at = now;
    // Each instance reloads within KEY_RELOAD_SECS; step through the lead time that way.
    let lead = JWKS_MAX_AGE_SECS + 2 * KEY_RELOAD_SECS;
    let mut second = None;
    while now < published_at + lead + 3 * KEY_RELOAD_SECS {
        advance(&apps, KEY_RELOAD_SECS);
        now += KEY_RELOAD_SECS;
        let promoted = tick(&a)
            .await
            .contains(&KeyAction::Promote(second.clone().unwrap_or_default()));
        tick(&b).await;
        let next: Vec<String> = kids(&a.get("/.well-known/jwks.json").await.json())
            .into_iter()
            .filter(|k| *k != first)
            .collect();
        second = next.first().cloned();
        if promoted {
            assert!(now >= published_at + lead, "never before the lead time");
        }
        for app in apps {
            let token = app.login_demo().await.access_token();
            let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();
            if now < published_at + lead {
                assert_eq!(
                    kid, first,
                    "the next key does not sign before its lead time"
                );
            }
            tokens.push((token, now + 900));
        }
        if now - cached_at >= JWKS_MAX_AGE_SECS {
            cached = b.get("/.well-known/jwks.json").await.json();
            cached_at = now;
        }
        failed += failures(&apps, &tokens, &cached, now).await;
    }
    let second = second.expect("a next key was published");
    assert_eq!(
        a.kid().as_deref(),
        Some(second.as_str()),
        "A signs with the new key"
    );
    assert_eq!(
        b.kid().as_deref(),
        Some(second.as_str()),
        "B too, within one reload"
    );
    assert_eq!(failed, 0, "zero failed verifications through the rotation");

    // One access-token lifetime (and a reload) later the old key is retired everywhere.
    advance(&apps, 900 + KEY_RELOAD_SECS);
    tick(&a).await;
    tick(&b).await;
    assert_eq!(
        kids(&b.get("/.well-known/jwks.json").await.json()),
        [second]
    );
}

/// A next key withdrawn by hand (a compromised key) stops verifying at once, cached or not.
pub async fn a_retired_key_stops_verifying(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[("JWT_ALGORITHM", ALG.name())]).await;
    let lifecycle = app.adapters.key_lifecycle.clone().unwrap();
    lifecycle.rotate().await.unwrap();
    tick(&app).await;
    let ring = app.adapters.key_ring.clone().unwrap();
    let set = ring.snapshot();
    let (_, next) = set
        .published()
        .iter()
        .find(|(s, _)| *s == jwt_auth::domain::KeyState::Next)
        .expect("a next key")
        .clone();
    let claims = payload_of(&app.login_demo().await.access_token());
    let mut header = app.token_header();
    header["kid"] = serde_json::json!(next.kid());
    let token = sign_with(next.signer(), &header, &claims);
    assert_eq!(
        app.me(&token).await.status,
        200,
        "a published next key verifies"
    );
    let said = lifecycle.retire(next.kid()).await.unwrap();
    assert!(said.contains("retired"), "{said}");
    assert!(
        lifecycle.retire(&app.kid().unwrap()).await.is_err(),
        "not the current key"
    );
    tick(&app).await;
    assert_eq!(
        app.me(&token).await.status,
        401,
        "refused, though it was cached"
    );
    assert!(!kids(&app.get("/.well-known/jwks.json").await.json()).contains(&next.kid().to_owned()));
    if let Some(db) = &app.db {
        // Its private key went with it: a row set back to `previous` by hand opens nothing.
        let sealed = db
            .db
            .query_i64(
                "SELECT count(*) FROM signing_keys WHERE state = 'retired' AND sealed_key <> ''",
            )
            .await
            .unwrap();
        assert_eq!(sealed, 0, "a retired key keeps no private key");
        db.db
            .execute("UPDATE signing_keys SET state = 'previous' WHERE state = 'retired'")
            .await
            .unwrap();
        tick(&app).await;
        assert_eq!(
            app.adapters.key_ring.as_ref().unwrap().unopenable(),
            1,
            "the revived row does not open"
        );
        assert_eq!(
            app.me(&token).await.status,
            401,
            "a revived row verifies nothing"
        );
    }
}

/// One stored key that does not open (altered sealed text, another KEK, garbage) is skipped
/// and reported; it does not freeze the reloads of every instance.
pub async fn an_unopenable_key_is_skipped_and_reported(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[("JWT_ALGORITHM", ALG.name())]).await;
    let lifecycle = app.adapters.key_lifecycle.clone().unwrap();
    let first = app.kid().unwrap();
    let token = app.login_demo().await.access_token();
    let ready = app.get("/health/ready").await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (200, "ok".into())
    );
    let garbage = jwt_auth::domain::StoredKey {
        kid: "not-a-real-key".into(),
        algorithm: ALG,
        state: jwt_auth::domain::KeyState::Previous,
        created_at: jwt_auth::domain::Timestamp::from_unix(T0),
        activated_at: None,
        deactivated_at: Some(jwt_auth::domain::Timestamp::from_unix(T0)),
        sealed: "eyJhbGciOiJkaXIifQ..garbage.secret-looking-bytes.tag".into(),
    };
    assert!(lifecycle.store().insert(&garbage).await.unwrap());
    tick(&app).await;
    let ready = app.get("/health/ready").await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (200, "degraded".into()),
        "still serving, but it says so"
    );
    assert_eq!(app.adapters.key_ring.as_ref().unwrap().unopenable(), 1);
    assert_eq!(
        app.me(&token).await.status,
        200,
        "the good keys still verify"
    );
    // Reloads go on: a rotation is published and promoted past the bad row.
    lifecycle.rotate().await.unwrap();
    tick(&app).await;
    let jwks = kids(&app.get("/.well-known/jwks.json").await.json());
    assert_eq!(jwks.len(), 2, "the next key is published: {jwks:?}");
    assert!(!jwks.contains(&"not-a-real-key".to_owned()));
    app.clock.advance(JWKS_MAX_AGE_SECS + 2 * KEY_RELOAD_SECS);
    tick(&app).await;
    assert_ne!(app.kid().unwrap(), first, "promoted despite the bad row");
    assert_eq!(app.me(&token).await.status, 200);

    if let Some(db) = &app.db {
        // The current key's row altered: the instance keeps signing with the copy it holds
        // while the store still lists that key, and says it is degraded.
        let current = app.kid().unwrap();
        db.db
            .execute("UPDATE signing_keys SET sealed_key = 'altered' WHERE state = 'current'")
            .await
            .unwrap();
        tick(&app).await;
        assert_eq!(app.kid().unwrap(), current);
        let fresh = app.login_demo().await.access_token();
        assert_eq!(app.me(&fresh).await.status, 200);
        assert_eq!(app.get("/health/ready").await.json()["status"], "degraded");
        // Once the store no longer lists it, it must not sign any more: not ready.
        db.db
            .execute("UPDATE signing_keys SET state = 'retired' WHERE state = 'current'")
            .await
            .unwrap();
        assert!(lifecycle.tick().await.is_err(), "no key to sign with");
        let ready = app.get("/health/ready").await;
        assert_eq!(
            (ready.status, ready.json()["status"].clone()),
            (503, "unavailable".into())
        );
    }
}

/// The schedule (`JWT_KEY_ROTATION_DAYS`) publishes and promotes by itself.
pub async fn the_schedule_rotates(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(
        stores,
        &[
            ("JWT_ALGORITHM", ALG.name()),
            ("JWT_KEY_ROTATION_DAYS", "1"),
        ],
    )
    .await;
    let first = app.kid().unwrap();
    app.clock.advance(86_400 - 320);
    assert_eq!(tick(&app).await, [KeyAction::CreateNext]);
    app.clock.advance(320);
    assert!(matches!(
        tick(&app).await.as_slice(),
        [KeyAction::Promote(_)]
    ));
    assert_ne!(app.kid().unwrap(), first);
}

on_every_store!(
    a_retired_key_stops_verifying,
    the_schedule_rotates,
    an_unopenable_key_is_skipped_and_reported,
);

mod two_instances {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::rotation_on_two_instances(crate::helpers::Store::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
    async fn postgres() {
        super::rotation_on_two_instances(crate::helpers::Store::Postgres).await;
    }
}

#[tokio::test]
async fn keys_are_sealed_at_rest_and_open_only_with_their_kek() {
    let kek = "Zq9xV2mK7pL4wR8tY1uE6iO3aS5dF0gHjK2lM4nB";
    let stores = Stores::new(Store::Sqlite).await.unwrap();
    let app = spawn_app_from(
        stores,
        &[("JWT_ALGORITHM", "ES256"), ("JWT_KEY_ENCRYPTION_KEY", kek)],
    )
    .await;
    let db = &app.db.as_ref().unwrap().db;
    assert_eq!(
        db.query_i64("SELECT count(*) FROM signing_keys")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM signing_keys WHERE sealed_key LIKE '%PRIVATE%' OR sealed_key LIKE '%MII%'")
            .await
            .unwrap(),
        0,
        "no private key in clear"
    );
    // Another instance with another KEK cannot open the key: it refuses to start.
    let settings = jwt_auth::config::Settings::from_pairs(&[
        ("JWT_ALGORITHM", "ES256"),
        (
            "JWT_KEY_ENCRYPTION_KEY",
            "Another-kek-9xV2mK7pL4wR8tY1uE6iO3aS5dF0",
        ),
        ("DATABASE_URL", &app.db.as_ref().unwrap().url),
    ])
    .unwrap();
    let err = jwt_auth::startup::Adapters::from_settings(&settings)
        .await
        .err()
        .expect("a key that does not open stops the start-up")
        .to_string();
    assert!(err.contains("JWT_KEY_ENCRYPTION_KEY"), "{err}");
    assert!(!err.contains(kek), "{err}");
    // prod on a database requires a KEK for generated keys.
    let err = jwt_auth::config::Settings::from_pairs(&[
        ("ENV", "prod"),
        ("JWT_ALGORITHM", "EdDSA"),
        ("DATABASE_URL", "sqlite:///tmp/x.db"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("JWT_KEY_ENCRYPTION_KEY"), "{err}");
}

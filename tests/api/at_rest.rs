//! Checklist case 27: refresh tokens carry 256 bits from the CSPRNG and the database keeps only
//! their SHA-256, so a dump of it yields no usable token.

use sha2::{Digest, Sha256};

use jwt_auth::config::Settings;
use jwt_auth::startup::{Adapters, Application};

use crate::helpers::TEST_SECRET;

fn files_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_database_holds_hashes_never_tokens() {
    let dir = std::env::temp_dir().join(format!("jwt-auth-at-rest-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("auth.db").display());
    let settings = Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("DATABASE_URL", &url),
    ])
    .unwrap();
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();

    let mut tokens = Vec::new();
    for _ in 0..3 {
        let resp = http
            .post(format!("{base}/auth/login"))
            .json(&serde_json::json!({ "email": "jywan@test.com", "password": "test" }))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let token = cookie
            .trim_start_matches("refresh_token=")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        // 43 base64url characters = 256 bits.
        assert_eq!(token.len(), 43);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        tokens.push(token);
    }
    assert_eq!(
        tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );
    server.abort();
    let _ = server.await;

    let dump = files_bytes(&dir);
    for token in &tokens {
        assert!(
            !contains(&dump, token.as_bytes()),
            "a token is stored in clear"
        );
        let hash = Sha256::digest(token.as_bytes());
        assert!(contains(&dump, &hash), "its SHA-256 is what is stored");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

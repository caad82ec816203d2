//! Access-token verification on arbitrary input: never a panic, never an acceptance of
//! anything but a token this issuer signed.
#![no_main]

use std::sync::LazyLock;

use jwt_auth::adapters::outbound::jose_issuer::{IssuerConfig, JoseTokenIssuer};
use jwt_auth::domain::{SigningAlgorithm, Timestamp};
use jwt_auth::ports::TokenIssuer;
use libfuzzer_sys::fuzz_target;

static ISSUER: LazyLock<JoseTokenIssuer> = LazyLock::new(|| {
    JoseTokenIssuer::new(IssuerConfig {
        algorithm: SigningAlgorithm::HS256,
        secret: b"fuzz-secret-0123456789-abcdefghijklmnopqrstuvwxyz".to_vec(),
        previous_secret: None,
        issuer: "jwt-auth".into(),
        audience: "jwt-auth-clients".into(),
        leeway_secs: 0,
    })
    .unwrap()
});

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        // A mutation that keeps a valid MAC is astronomically unlikely; if the fuzzer ever
        // gets an acceptance it must be one of the seed tokens (issued by us), still unexpired.
        if let Ok(claims) = ISSUER.verify_access(token, Timestamp::from_unix(1_800_000_000)) {
            assert!(claims.exp.unix() > 1_800_000_000);
        }
    }
});

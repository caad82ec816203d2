//! A resource server that trusts jwt-auth's access tokens without sharing a secret with it and
//! without asking it per request: `jwt_auth::verifier` holds the JWKS and the revocation feed.
//!
//! ```sh
//! JWT_ALGORITHM=EdDSA cargo run                          # the auth service on :8000
//! AUTH_URL=http://127.0.0.1:8000 JWT_ALGORITHM=EdDSA cargo run --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8100/hello
//! ```
//! Settings: `AUTH_URL`, `JWT_ALGORITHM` (EdDSA, ES256, RS256), `JWT_ISSUER`, `JWT_AUDIENCE`
//! (the auth service's defaults otherwise), `PORT` (8100), `REVOCATION_POLL_MS` (250), `REVOCATION_PUSH` (true: listen to `/revocations/stream`).
//! `AUTH_URL` is `https://…` across a network (`AUTH_CA_PEM`: a PEM file of the private CA
//! that issued the auth service's certificate, trusted instead of the webpki roots), or
//! `http://` to loopback; plain `http://` to another host is refused unless
//! `AUTH_ALLOW_PLAIN_HTTP=true` (a network already authenticated and encrypted).
//! `AUTH_MAX_STALE_SECS` (900; 0 = never): after that long without reaching the auth service,
//! every request is answered 503 until it is reached again.

use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, EndpointExt, Request, Response, Route, Server};

use jwt_auth::domain::SigningAlgorithm;
use jwt_auth::verifier::{Verifier, VerifierConfig, VerifyError};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[handler]
fn hello(req: &Request, Data(verifier): Data<&Verifier>) -> Response {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    match verifier.verify(token) {
        Ok(claims) => Response::builder()
            .content_type("application/json")
            .body(format!(r#"{{"hello":"{}"}}"#, claims.sub)),
        // Not the token's fault: the auth service has been out of reach too long.
        Err(e @ VerifyError::Stale) => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(e.to_string()),
        Err(e) => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", r#"Bearer error="invalid_token""#)
            .body(e.to_string()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let algorithm = SigningAlgorithm::from_name(&env("JWT_ALGORITHM", "EdDSA"))
        .filter(|a| a.is_asymmetric())
        .ok_or_else(|| anyhow::anyhow!("JWT_ALGORITHM must be EdDSA, ES256 or RS256"))?;
    let extra_root_pem = match std::env::var("AUTH_CA_PEM") {
        Ok(path) => {
            Some(std::fs::read(&path).map_err(|e| anyhow::anyhow!("AUTH_CA_PEM {path}: {e}"))?)
        }
        Err(_) => None,
    };
    let verifier = Verifier::start(VerifierConfig {
        base_url: env("AUTH_URL", "http://127.0.0.1:8000"),
        issuer: env("JWT_ISSUER", "jwt-auth"),
        audience: env("JWT_AUDIENCE", "jwt-auth-clients"),
        algorithm,
        poll_interval: Duration::from_millis(env("REVOCATION_POLL_MS", "250").parse()?),
        push: env("REVOCATION_PUSH", "true") != "false",
        extra_root_pem,
        allow_plain_http: env("AUTH_ALLOW_PLAIN_HTTP", "false") == "true",
        max_stale: match env("AUTH_MAX_STALE_SECS", "900").parse()? {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        },
    })
    .await?;
    let addr = format!("127.0.0.1:{}", env("PORT", "8100"));
    println!("resource server on http://{addr}/hello");
    Server::new(poem::listener::TcpListener::bind(addr))
        .run(Route::new().at("/hello", get(hello)).data(verifier))
        .await?;
    Ok(())
}

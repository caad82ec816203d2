//! A verifier of this service's access tokens for other Rust services: it holds the published
//! keys (`/.well-known/jwks.json`) and the revocation feed (`/revocations`), verifies tokens
//! locally with the same rules as `/auth/me` (one algorithm, our `kid`s only, `typ`, `iss`,
//! `aud`, `exp`, `nbf`, `iat`), and refuses a token of a revoked session. It polls the feed
//! every `poll_interval`, so a revocation is honoured within one interval; when the auth
//! service is down it keeps verifying with what it has and catches up from its cursor once the
//! service answers again.
//!
//! The bundled HTTP client speaks plain HTTP/1.1 only, and a party on the path between the
//! verifier and the auth service could serve its own keys: use it on loopback or a network
//! already authenticated and encrypted (a sidecar, a service mesh with mTLS, a local TLS
//! proxy), never across an untrusted one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsVerifier, ES256, RS256};
use serde_json::Value;

use crate::domain::SigningAlgorithm;

/// Feed pages read in one poll at most; the rest waits for the next poll.
const MAX_PAGES_PER_POLL: usize = 16;

/// What the verifier checks against, and where it reads keys and revocations.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The auth service's origin, e.g. `http://auth.internal:8000`.
    pub base_url: String,
    pub issuer: String,
    pub audience: String,
    /// The one algorithm accepted (the service's `JWT_ALGORITHM`).
    pub algorithm: SigningAlgorithm,
    /// How often the feed is polled; the bound on how late a revocation is honoured.
    pub poll_interval: Duration,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("the token's session was revoked")]
    Revoked,
}

/// The claims a resource server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub exp: u64,
}

struct Inner {
    config: VerifierConfig,
    keys: RwLock<Vec<Box<dyn JwsVerifier>>>,
    /// sid → until (Unix seconds).
    revoked: RwLock<HashMap<String, u64>>,
    cursor: Mutex<Option<u64>>,
}

/// Verifies access tokens with the published keys and the revocation feed; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// Fetches the keys and the feed once, then polls in the background until dropped (the
    /// task holds only a weak handle).
    ///
    /// # Errors
    /// When the keys cannot be fetched at start: without them nothing can be verified.
    pub async fn start(config: VerifierConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.algorithm.is_asymmetric(),
            "a verifier needs a key-pair algorithm (EdDSA, ES256, RS256)"
        );
        let verifier = Self {
            inner: Arc::new(Inner {
                config,
                keys: RwLock::default(),
                revoked: RwLock::default(),
                cursor: Mutex::default(),
            }),
        };
        verifier.refresh_keys().await?;
        let _ = verifier.poll_feed().await;
        let weak = Arc::downgrade(&verifier.inner);
        // tokio's interval refuses a zero period.
        let every = verifier
            .inner
            .config
            .poll_interval
            .max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut polls = 0u64;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let verifier = Self { inner };
                if verifier.poll_feed().await.is_err() {
                    tracing::debug!("revocation feed unreachable; keeping what is known");
                }
                // Keys change rarely and are published ahead of use: every ~minute.
                polls += 1;
                if every.as_secs_f64() * polls as f64 >= 60.0 {
                    polls = 0;
                    let _ = verifier.refresh_keys().await;
                }
            }
        });
        Ok(verifier)
    }

    /// Fetches the JWKS and replaces the keys held.
    ///
    /// # Errors
    /// When the service does not answer or the JWKS holds no usable key.
    pub async fn refresh_keys(&self) -> anyhow::Result<()> {
        let jwks = get_json(&format!("{}/.well-known/jwks.json", self.base())).await?;
        let alg = self.inner.config.algorithm;
        let mut keys: Vec<Box<dyn JwsVerifier>> = Vec::new();
        for jwk in jwks["keys"].as_array().into_iter().flatten() {
            let Some(map) = jwk.as_object() else { continue };
            let Ok(jwk) = Jwk::from_map(map.clone()) else {
                continue;
            };
            if jwk.algorithm() != Some(alg.name()) || jwk.key_id().is_none() {
                continue;
            }
            let verifier: Option<Box<dyn JwsVerifier>> = match alg {
                SigningAlgorithm::EdDSA => {
                    EdDSA.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _)
                }
                SigningAlgorithm::ES256 => {
                    ES256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _)
                }
                _ => RS256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _),
            };
            keys.extend(verifier);
        }
        anyhow::ensure!(!keys.is_empty(), "the JWKS holds no {} key", alg.name());
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// Reads the feed from the cursor and remembers the revoked sessions until their `until`.
    ///
    /// # Errors
    /// When the service does not answer; what is known stays.
    pub async fn poll_feed(&self) -> anyhow::Result<()> {
        // A bounded number of pages per poll, so a flood of revocations cannot keep this loop
        // (and the key refresh after it) from finishing.
        for _ in 0..MAX_PAGES_PER_POLL {
            let since = *self
                .inner
                .cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let url = match since {
                Some(c) => format!("{}/revocations?since={c}", self.base()),
                None => format!("{}/revocations", self.base()),
            };
            let page = get_json(&url).await?;
            let now = now();
            {
                let mut revoked = self
                    .inner
                    .revoked
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                revoked.retain(|_, until| *until > now);
                for e in page["entries"].as_array().into_iter().flatten() {
                    if let (Some(sid), Some(until)) = (e["sid"].as_str(), e["until"].as_u64()) {
                        revoked.insert(sid.to_owned(), until);
                    }
                }
            }
            let cursor = page["cursor"].as_u64();
            if let Some(cursor) = cursor {
                *self
                    .inner
                    .cursor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(cursor);
            }
            // No progress (a page full of one second's entries): ask again at the next poll.
            if page["more"] != Value::Bool(true) || cursor == since {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sessions known to be revoked now.
    pub fn revoked_sessions(&self) -> usize {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn base(&self) -> &str {
        self.inner.config.base_url.trim_end_matches('/')
    }

    /// Verifies `token` locally.
    ///
    /// # Errors
    /// `Invalid` for any token that is not a currently valid access token of the service;
    /// `Revoked` for one whose session the feed lists.
    pub fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        if token.len() > 4096 {
            return Err(VerifyError::Invalid("too long"));
        }
        let keys = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // Each key in turn: josekit refuses a key whose kid or alg differs before it checks a
        // signature, so the token never picks a key.
        let (payload, header) = keys
            .iter()
            .find_map(|k| josekit::jwt::decode_with_verifier(token, k.as_ref()).ok())
            .ok_or(VerifyError::Invalid("no key of the service verifies it"))?;
        drop(keys);
        if header.token_type() != Some("at+jwt") {
            return Err(VerifyError::Invalid("wrong typ"));
        }
        if header
            .claims_set()
            .keys()
            .any(|k| !["alg", "typ", "kid"].contains(&k.as_str()))
        {
            return Err(VerifyError::Invalid("unexpected header parameter"));
        }
        let claim = |n: &str| payload.claim(n);
        let number = |n: &str| claim(n).and_then(Value::as_u64);
        let now = now();
        let exp = number("exp").ok_or(VerifyError::Invalid("exp"))?;
        let iat = number("iat").ok_or(VerifyError::Invalid("iat"))?;
        if now >= exp
            || iat > now
            || claim("nbf").is_some_and(|_| number("nbf").is_none_or(|nbf| nbf > now))
        {
            return Err(VerifyError::Invalid("expired or not yet valid"));
        }
        if claim("iss").and_then(Value::as_str) != Some(self.inner.config.issuer.as_str()) {
            return Err(VerifyError::Invalid("wrong issuer"));
        }
        let audience = self.inner.config.audience.as_str();
        let aud_ok = match claim("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(VerifyError::Invalid("wrong audience"));
        }
        let text = |n: &str| claim(n).and_then(Value::as_str).map(str::to_owned);
        let (Some(sub), Some(sid)) = (text("sub"), text("sid")) else {
            return Err(VerifyError::Invalid("sub or sid missing"));
        };
        let revoked = self
            .inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if revoked.get(&sid).is_some_and(|until| *until > now) {
            return Err(VerifyError::Revoked);
        }
        Ok(Verified { sub, sid, exp })
    }
}

/// GET `url` (plain HTTP/1.1) as JSON, within 5 s.
async fn get_json(url: &str) -> anyhow::Result<Value> {
    let uri: hyper::Uri = url.parse()?;
    anyhow::ensure!(uri.scheme_str() == Some("http"), "only http:// URLs: {url}");
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let fetch = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>(serde_json::from_slice(&body)?)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within 5 s"))?
}

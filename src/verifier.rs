//! A verifier of this service's access tokens for other Rust services: it holds the published
//! keys (`/.well-known/jwks.json`) and the revocation feed (`/revocations`), verifies tokens
//! locally with the same rules as `/auth/me` (one algorithm, our `kid`s only, `typ`, `iss`,
//! `aud`, `exp`, `nbf`, `iat`), and refuses a token of a revoked session. With `push` it
//! listens to `/revocations/stream` (Server-Sent Events), so a revocation is honoured within
//! tens of milliseconds, and still polls the feed every `SAFETY_NET_POLL` in case a push was
//! lost; while the stream is down (or the service offers none) it polls every
//! `poll_interval` and reconnects with backoff, resuming from its cursor. When the auth
//! service is down it keeps verifying with what it has and catches up from its cursor once the
//! service answers again.
//!
//! Keys are only as good as the channel they come by: whoever can answer for the auth service
//! can serve their own keys. So `base_url` must be `https://` (TLS 1.2 or later, by rustls,
//! verified against the webpki roots, or only against `extra_root_pem` for a private CA) or
//! `http://` to a loopback host (`127.0.0.0/8`, `::1`, `localhost`, which is never looked up),
//! with no credentials in the URL; plain `http://` to any other host is refused by `Verifier::start`
//! unless `allow_plain_http` says the network is already authenticated and encrypted (a
//! sidecar, a service mesh with mTLS). Redirects are not followed (another host could serve
//! other keys), no `HTTP(S)_PROXY` is used, connecting and each JSON fetch are bounded by 5 s
//! and a stream read by its silence bound, and a JWKS or feed answer over its size bound is
//! refused, by its `Content-Length` or as soon as the bytes read pass it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsVerifier, ES256, RS256};
use serde_json::Value;

use crate::domain::{FeedPosition, SigningAlgorithm};

/// Feed pages read in one poll at most; the rest waits for the next poll.
const MAX_PAGES_PER_POLL: usize = 16;
/// While the stream is live the feed is still read this often: a safety net, not the path.
pub const SAFETY_NET_POLL: Duration = Duration::from_secs(30);
/// A stream silent for this long (the service sends a comment every 15 s) is taken for dead.
const STREAM_SILENCE: Duration = Duration::from_secs(35);
/// Reconnect backoff of the stream: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));
/// How long to wait before trying again a service that answered the stream with an error (an
/// older service without it: 404).
const NO_STREAM_RETRY: Duration = Duration::from_secs(60);
/// Connecting, a JSON fetch whole and a stream's answer head, each within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the JWKS is read again (keys are published ahead of use).
const KEY_REFRESH: Duration = Duration::from_secs(60);
/// A JWKS answer read at most: ours holds a few keys (an RSA one is about 0.5 KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// A feed page read at most: a full one (10,000 entries) is 1.1 MB even with every number at
/// its longest.
pub const MAX_FEED_BYTES: usize = 4 * 1024 * 1024;
/// Revoked sessions kept at most. A feed can list no more than its window's revocations, but
/// a hostile or broken one could list without end: past this the entries that expire soonest
/// are forgotten first (and it is logged), rather than memory growing.
pub const MAX_REVOKED: usize = 1_000_000;
/// The longest `window_secs` believed from a feed (a day): no access token of the service
/// lives that long, and an entry is never kept longer than the window from now.
const MAX_WINDOW_SECS: u64 = 86_400;
/// How far the feed's clock may run ahead of this process's: on `until`, on the cursor.
const CLOCK_SLACK_SECS: u64 = 60;
/// A session id longer than this is not one of the service's (a UUID is 36 characters).
const MAX_SID_LEN: usize = 64;

/// What the verifier checks against, and where it reads keys and revocations.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The auth service's origin, e.g. `http://auth.internal:8000`.
    pub base_url: String,
    pub issuer: String,
    pub audience: String,
    /// The one algorithm accepted (the service's `JWT_ALGORITHM`).
    pub algorithm: SigningAlgorithm,
    /// How often the feed is polled while no stream is live; without `push`, the bound on
    /// how late a revocation is honoured.
    pub poll_interval: Duration,
    /// Listen to `/revocations/stream` for revocations pushed as they happen.
    pub push: bool,
    /// PEM certificates trusted as the only roots (the webpki ones are then not), for an
    /// auth service whose certificate a private CA issued.
    pub extra_root_pem: Option<Vec<u8>>,
    /// Allow `http://` to a host other than loopback: only on a network that is already
    /// authenticated and encrypted. Off by default.
    pub allow_plain_http: bool,
    /// How long the verifier keeps verifying without reaching the auth service (its keys or
    /// its feed): past this every token is refused (`VerifyError::Stale`) until it reaches it
    /// again. Whoever can cut the verifier off must not keep a withdrawn key or an unseen
    /// revocation valid for good. `None`: for ever. Default 15 minutes, about the access
    /// tokens' lifetime; raised to the polling period plus 5 s if shorter (with `push`, the
    /// polling period is 30 s).
    pub max_stale: Option<Duration>,
}

impl VerifierConfig {
    /// A configuration with the defaults: poll every 250 ms, push on, the webpki roots only,
    /// plain HTTP to loopback only.
    pub fn new(
        base_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithm: SigningAlgorithm,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            algorithm,
            poll_interval: Duration::from_millis(250),
            push: true,
            extra_root_pem: None,
            allow_plain_http: false,
            max_stale: Some(DEFAULT_MAX_STALE),
        }
    }
}

/// `VerifierConfig::max_stale` by default.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(15 * 60);

/// When the verifier last reached one of the service's documents, and whether it is failing
/// now (so that an outage is said once at `warn`, not at every poll).
struct Synced {
    at: Mutex<Instant>,
    failing: AtomicBool,
}

impl Synced {
    fn new() -> Self {
        Self {
            at: Mutex::new(Instant::now()),
            failing: AtomicBool::new(false),
        }
    }

    fn note<T>(&self, what: &str, result: &anyhow::Result<T>) {
        match result {
            Ok(_) => {
                *self.at.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("{what}: reached again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "{what}: unreachable; keeping what is known");
                }
            }
        }
    }

    fn since(&self) -> Duration {
        self.at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("the token's session was revoked")]
    Revoked,
    /// The auth service was not reached for longer than `max_stale`: nothing is accepted
    /// until it is.
    #[error("the auth service has not been reached for too long")]
    Stale,
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
    /// https with the configured roots, no redirects, no proxy, no kept-alive connections.
    client: reqwest::Client,
    keys: RwLock<Vec<Box<dyn JwsVerifier>>>,
    revoked: RwLock<Revoked>,
    cursor: Mutex<Option<u64>>,
    /// The feed's last `window_secs` (bounded): how long a pushed entry may be kept.
    window_secs: AtomicU64,
    /// A stream is open and has answered: polling slows to `SAFETY_NET_POLL`.
    stream_live: AtomicBool,
    keys_synced: Synced,
    feed_synced: Synced,
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
    /// When `base_url` is not `https://` or loopback `http://` (see the module doc), when
    /// `extra_root_pem` holds no usable certificate, or when the keys cannot be fetched at
    /// start (a certificate that does not verify among them): without keys nothing can be
    /// verified.
    pub async fn start(config: VerifierConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.algorithm.is_asymmetric(),
            "a verifier needs a key-pair algorithm (EdDSA, ES256, RS256)"
        );
        check_origin(&config.base_url, config.allow_plain_http)?;
        let mut config = config;
        // Never shorter than a poll and its timeout, or a reachable service would look stale
        // between two polls.
        let period = if config.push {
            config.poll_interval.max(SAFETY_NET_POLL)
        } else {
            config.poll_interval
        };
        config.max_stale = config.max_stale.map(|max| max.max(period + FETCH_TIMEOUT));
        let client = client(&config)?;
        let verifier = Self {
            inner: Arc::new(Inner {
                config,
                client,
                keys: RwLock::default(),
                revoked: RwLock::default(),
                cursor: Mutex::default(),
                window_secs: AtomicU64::new(MAX_WINDOW_SECS),
                stream_live: AtomicBool::new(false),
                keys_synced: Synced::new(),
                feed_synced: Synced::new(),
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
        if verifier.inner.config.push {
            tokio::spawn(listen(Arc::downgrade(&verifier.inner)));
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut polls = 0u64;
            let mut last_poll = Instant::now();
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let verifier = Self { inner };
                let live = verifier.inner.stream_live.load(Ordering::Acquire);
                if !live || last_poll.elapsed() >= SAFETY_NET_POLL {
                    last_poll = Instant::now();
                    let _ = verifier.poll_feed().await;
                }
                // Keys change rarely and are published ahead of use: every ~minute.
                polls += 1;
                if every.as_secs_f64() * polls as f64 >= KEY_REFRESH.as_secs_f64() {
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
        let result = self.fetch_keys().await;
        self.inner.keys_synced.note("the JWKS", &result);
        result
    }

    async fn fetch_keys(&self) -> anyhow::Result<()> {
        let url = format!("{}/.well-known/jwks.json", self.base());
        let jwks = get_json(&self.inner.client, &url, MAX_JWKS_BYTES).await?;
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
        let result = self.read_feed().await;
        self.inner.feed_synced.note("the revocation feed", &result);
        result
    }

    /// How long the verifier has gone without reaching the auth service: since its last feed
    /// read, or since its last JWKS read beyond the once-a-minute refresh.
    pub fn stale_for(&self) -> Duration {
        let keys = self
            .inner
            .keys_synced
            .since()
            .saturating_sub(KEY_REFRESH + FETCH_TIMEOUT);
        keys.max(self.inner.feed_synced.since())
    }

    async fn read_feed(&self) -> anyhow::Result<()> {
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
            let page = get_json(&self.inner.client, &url, MAX_FEED_BYTES).await?;
            if let Some(window) = page["window_secs"].as_u64() {
                self.inner
                    .window_secs
                    .store(window.min(MAX_WINDOW_SECS), Ordering::Release);
            }
            self.inner
                .remember(page["entries"].as_array().into_iter().flatten());
            let Some(cursor) = page["cursor"].as_u64() else {
                tracing::warn!("revocation feed: an answer without a cursor; kept the last one");
                return Ok(());
            };
            if steps_far_back(since, cursor) {
                // The feed's clock stepped back (a failover, a correction) or the feed is
                // broken: a kept cursor would now be ahead of it and skip what it revokes
                // next, so the next poll reads the whole window again instead.
                tracing::warn!(
                    "revocation feed: the cursor moved far back; reading the whole window again"
                );
                *self
                    .inner
                    .cursor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                return Ok(());
            }
            self.inner.advance_from(since, cursor);
            // No progress (a broken feed): ask again at the next poll.
            let progress = since.is_none_or(|s| position(cursor) > position(s));
            if page["more"] != Value::Bool(true) || !progress {
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
            .until
            .len()
    }

    /// Whether the session `sid` is known to be revoked now.
    pub fn is_revoked(&self, sid: &str) -> bool {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_revoked(sid, now())
    }

    fn base(&self) -> &str {
        self.inner.config.base_url.trim_end_matches('/')
    }

    /// Verifies `token` locally.
    ///
    /// # Errors
    /// `Invalid` for any token that is not a currently valid access token of the service;
    /// `Revoked` for one whose session the feed lists; `Stale` for every token once the auth
    /// service has not been reached for longer than `max_stale`.
    pub fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        if self
            .inner
            .config
            .max_stale
            .is_some_and(|max| self.stale_for() > max)
        {
            return Err(VerifyError::Stale);
        }
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
        if revoked.is_revoked(&sid, now) {
            return Err(VerifyError::Revoked);
        }
        Ok(Verified { sub, sid, exp })
    }
}

/// The revoked sessions, with an index by expiry so that forgetting the expired ones costs
/// only what is forgotten (never a scan of all of them per entry).
#[derive(Default)]
struct Revoked {
    /// sid → until (Unix seconds).
    until: HashMap<Arc<str>, u64>,
    /// The same, ordered by until.
    by_until: BTreeSet<(u64, Arc<str>)>,
    /// `MAX_REVOKED` was reached since the count last fell below it (logged once).
    full: bool,
}

impl Revoked {
    fn is_revoked(&self, sid: &str, now: u64) -> bool {
        self.until.get(sid).is_some_and(|until| *until > now)
    }

    /// Forgets the entries whose `until` has passed.
    fn prune(&mut self, now: u64) {
        while self
            .by_until
            .first()
            .is_some_and(|(until, _)| *until <= now)
        {
            if let Some((_, sid)) = self.by_until.pop_first() {
                self.until.remove(&sid);
            }
        }
        if self.until.len() < MAX_REVOKED {
            self.full = false;
        }
    }

    /// Keeps `sid` until `until`, or longer if already kept longer.
    fn insert(&mut self, sid: &str, until: u64) {
        if let Some((key, held)) = self.until.get_key_value(sid) {
            let (key, held) = (key.clone(), *held);
            if held < until {
                self.by_until.remove(&(held, key.clone()));
                self.by_until.insert((until, key.clone()));
                self.until.insert(key, until);
            }
            return;
        }
        if self.until.len() >= MAX_REVOKED {
            if !self.full {
                self.full = true;
                tracing::error!(
                    kept = MAX_REVOKED,
                    "revocation feed: more revoked sessions than can be kept; forgetting \
                     those that expire soonest"
                );
            }
            if let Some((_, sid)) = self.by_until.pop_first() {
                self.until.remove(&sid);
            }
        }
        let key: Arc<str> = Arc::from(sid);
        self.by_until.insert((until, key.clone()));
        self.until.insert(key, until);
    }
}

/// A cursor's place in the feed's order (plain seconds and positions compare alike).
fn position(cursor: u64) -> FeedPosition {
    FeedPosition::from_cursor(cursor)
}

/// Whether the feed's cursor after `since` went back further than its short overlap: its
/// clock stepped back, or it is broken. Only relative to `since`: the feed's clock is its own
/// time base, and this process's clock may be off from it either way.
fn steps_far_back(since: Option<u64>, cursor: u64) -> bool {
    since.is_some_and(|s| {
        position(cursor).second.saturating_add(CLOCK_SLACK_SECS) < position(s).second
    })
}

/// Whether a stream event's id is past this clock by more than the slack. The stream only
/// moves the cursor forward, so such an id (a broken stream) would stick and make the polls
/// skip every entry until then; the polls' own cursors are taken as sent.
fn ahead_of(cursor: u64, now: u64) -> bool {
    position(cursor).second > now.saturating_add(CLOCK_SLACK_SECS)
}

impl Inner {
    /// Remembers the revoked sessions of these feed entries until their `until`, but never
    /// longer than the feed's window from now: a feed cannot make an entry stay for good.
    fn remember<'a>(&self, entries: impl IntoIterator<Item = &'a Value>) {
        let now = now();
        let window = self.window_secs.load(Ordering::Acquire);
        let latest = now.saturating_add(window).saturating_add(CLOCK_SLACK_SECS);
        let mut revoked = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
        revoked.prune(now);
        for e in entries {
            if let (Some(sid), Some(until)) = (e["sid"].as_str(), e["until"].as_u64()) {
                if until > now && sid.len() <= MAX_SID_LEN {
                    revoked.insert(sid, until.min(latest));
                }
            }
        }
    }

    /// Moves the cursor forward, in the feed's order (the stream moves it; never back).
    fn advance(&self, cursor: u64) {
        let mut held = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        *held = Some(held.map_or(cursor, |c| {
            if position(cursor) > position(c) {
                cursor
            } else {
                c
            }
        }));
    }

    /// Takes the cursor of a page read from `since`: as sent, overlap step back included,
    /// unless the stream moved the cursor meanwhile (then only forward).
    fn advance_from(&self, since: Option<u64>, cursor: u64) {
        let mut held = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        if *held == since {
            *held = Some(cursor);
        } else {
            drop(held);
            self.advance(cursor);
        }
    }

    fn cursor(&self) -> Option<u64> {
        *self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Listens to `/revocations/stream` until the verifier is dropped: reconnects with backoff
/// from its cursor when the stream ends or fails, and marks it live while it answers.
async fn listen(weak: Weak<Inner>) {
    let mut backoff = BACKOFF.0;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let url = format!(
            "{}/revocations/stream",
            inner.config.base_url.trim_end_matches('/')
        );
        let since = inner.cursor();
        let client = inner.client.clone();
        drop(inner);
        match read_stream(&client, &url, since, &weak).await {
            Ok(Stream::Read) => backoff = BACKOFF.0,
            Ok(Stream::Refused) => backoff = NO_STREAM_RETRY,
            Err(e) => tracing::debug!(error = %e, "revocation stream unreachable; polling"),
        }
        if let Some(inner) = weak.upgrade() {
            inner.stream_live.store(false, Ordering::Release);
        }
        tokio::time::sleep(backoff).await;
        if backoff < NO_STREAM_RETRY {
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }
}

/// How a stream ended.
enum Stream {
    /// It was open and answered (ended by the service, silence or the verifier's drop).
    Read,
    /// The service answered with an error status (no stream there, or a cap reached).
    Refused,
}

/// Reads one stream connection to its end, remembering each event's entry and cursor.
async fn read_stream(
    client: &reqwest::Client,
    url: &str,
    since: Option<u64>,
    weak: &Weak<Inner>,
) -> anyhow::Result<Stream> {
    let mut req = client
        .get(url)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(c) = since {
        req = req.header("last-event-id", c.to_string());
    }
    let mut resp = tokio::time::timeout(FETCH_TIMEOUT, req.send())
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within 5 s"))??;
    // A redirect too: the stream is read only where the keys came from.
    if !resp.status().is_success() {
        return Ok(Stream::Refused);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut silent = Duration::ZERO;
    // Checked every second, so a dropped verifier does not keep its stream open.
    let step = Duration::from_secs(1);
    loop {
        let Some(inner) = weak.upgrade() else {
            return Ok(Stream::Read);
        };
        inner.stream_live.store(true, Ordering::Release);
        drop(inner);
        let data = match tokio::time::timeout(step, resp.chunk()).await {
            Err(_) => {
                silent += step;
                if silent >= STREAM_SILENCE {
                    return Ok(Stream::Read);
                }
                continue;
            }
            Ok(chunk) => match chunk? {
                None => return Ok(Stream::Read),
                Some(data) => data,
            },
        };
        silent = Duration::ZERO;
        buf.extend_from_slice(&data);
        // An event too long to be one of ours: drop the stream rather than grow.
        anyhow::ensure!(buf.len() <= 64 * 1024, "{url}: an event over 64 KiB");
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let Some(inner) = weak.upgrade() else {
                return Ok(Stream::Read);
            };
            event(&inner, &String::from_utf8_lossy(&block));
        }
    }
}

/// One event block: remembers its entry, then moves the cursor to its `id`.
fn event(inner: &Inner, block: &str) {
    let (mut id, mut data) = (None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse::<u64>().ok();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = serde_json::from_str::<Value>(v.trim()).ok();
        }
    }
    if let Some(entry) = data {
        inner.remember([&entry]);
        if let Some(id) = id.filter(|id| !ahead_of(*id, now())) {
            inner.advance(id);
        }
    }
}

/// Refuses a `base_url` whose answers anyone on the path could forge: `https://` always,
/// `http://` only to a loopback host or with `allow_plain_http`.
fn check_origin(base_url: &str, allow_plain_http: bool) -> anyhow::Result<()> {
    // Not echoed: a URL that does not parse may still hold credentials.
    let url = reqwest::Url::parse(base_url).context("base_url is not a URL")?;
    anyhow::ensure!(url.has_host(), "base_url {base_url:?}: no host");
    // Userinfo would be sent as Basic credentials (over plain http to loopback too) and printed
    // wherever the URL is: the auth service's public documents need none.
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "base_url: credentials in the URL are not accepted"
    );
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http || is_loopback(&url) => Ok(()),
        "http" => anyhow::bail!(
            "base_url {base_url:?}: plain http:// to a host other than loopback could be \
             answered with other keys; use https:// (or allow_plain_http on a network that \
             is already authenticated and encrypted)"
        ),
        other => anyhow::bail!("base_url {base_url:?}: https:// or http://, not {other}://"),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // An IPv6 host comes in brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The HTTP client of one verifier.
fn client(config: &VerifierConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(FETCH_TIMEOUT)
        // Each read of an answer; a JSON fetch is bounded whole by `FETCH_TIMEOUT` as well.
        .read_timeout(STREAM_SILENCE)
        // A redirect is an error answer: keys are read only from `base_url`.
        .redirect(reqwest::redirect::Policy::none())
        // Straight to `base_url`, not through an ambient HTTP(S)_PROXY.
        .no_proxy()
        // A fresh connection for each fetch, as a kept-alive one would pin the verifier to one
        // instance behind a balancer, even one taken out; TLS resumes the session cheaply.
        .pool_max_idle_per_host(0)
        // rustls whatever TLS features a crate using this one turns on in reqwest (feature
        // unification could otherwise pick native-tls, its roots and its older TLS versions).
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .https_only(config.base_url.starts_with("https:"))
        // `localhost` is trusted as loopback by name: it must not go to DNS or a search domain.
        .resolve_to_addrs(
            "localhost",
            &[
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            ],
        )
        .user_agent(concat!("jwt-auth-verifier/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &config.extra_root_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem).context("extra_root_pem")?;
        anyhow::ensure!(!roots.is_empty(), "extra_root_pem holds no certificate");
        // A private CA replaces the public roots: a public CA's certificate for the auth
        // service's name (mis-issued or coerced) is not trusted beside it.
        builder = builder.tls_built_in_root_certs(false);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().context("the verifier's HTTP client")
}

/// GET `url` as JSON within `FETCH_TIMEOUT`, refusing an answer over `max` bytes.
async fn get_json(client: &reqwest::Client, url: &str, max: usize) -> anyhow::Result<Value> {
    let fetch = async {
        let mut resp = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = resp.status();
        anyhow::ensure!(
            status.is_success(),
            "{url}: answered {status}{}",
            if status.is_redirection() {
                " (redirects are not followed)"
            } else {
                ""
            }
        );
        if let Some(len) = resp.content_length() {
            anyhow::ensure!(
                len <= max as u64,
                "{url}: an answer of {len} bytes, over {max}"
            );
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            // Stops at the bound: the rest is never read (the connection is dropped).
            anyhow::ensure!(
                body.len() + chunk.len() <= max,
                "{url}: an answer over {max} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        Ok::<_, anyhow::Error>(serde_json::from_slice(&body)?)
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within 5 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Inner {
        let mut config =
            VerifierConfig::new("http://127.0.0.1:1", "i", "a", SigningAlgorithm::EdDSA);
        config.poll_interval = Duration::from_secs(1);
        config.push = false;
        Inner {
            client: client(&config).unwrap(),
            config,
            keys: RwLock::default(),
            revoked: RwLock::default(),
            cursor: Mutex::default(),
            window_secs: AtomicU64::new(900),
            stream_live: AtomicBool::new(false),
            keys_synced: Synced::new(),
            feed_synced: Synced::new(),
        }
    }

    #[test]
    fn a_hostile_feed_cannot_make_an_entry_stay_or_the_set_grow_without_bound() {
        let inner = inner();
        let now = now();
        inner.remember(&[
            serde_json::json!({ "sid": "forever", "until": u64::MAX }),
            serde_json::json!({ "sid": "past", "until": now - 1 }),
            serde_json::json!({ "sid": "x".repeat(1000), "until": now + 10 }),
        ]);
        let revoked = inner.revoked.read().unwrap();
        assert_eq!(
            revoked.until.get("forever").copied(),
            Some(now + 900 + CLOCK_SLACK_SECS),
            "capped at now + window"
        );
        assert!(
            !revoked.until.contains_key("past"),
            "an expired entry is not kept"
        );
        assert_eq!(revoked.until.len(), 1, "an oversized sid is not kept");
        drop(revoked);

        let mut r = Revoked::default();
        for i in 0..MAX_REVOKED as u64 + 5 {
            r.insert(&format!("s{i}"), now + 100 + i);
        }
        assert_eq!(r.until.len(), MAX_REVOKED, "bounded");
        assert_eq!(r.by_until.len(), MAX_REVOKED, "the index too");
        assert!(
            !r.until.contains_key("s0"),
            "the soonest to expire went first"
        );
        assert!(r.full, "and it was logged");
        // Keeping an entry longer moves it in the index; pruning costs what it removes.
        r.insert("s10", now + 10_000_000);
        r.prune(now + 200);
        assert!(r.is_revoked("s10", now + 200));
        assert!(!r.is_revoked("s20", now + 200));
        assert_eq!(r.until.len(), r.by_until.len());
    }

    #[test]
    fn a_stream_id_far_ahead_is_refused_and_a_feed_stepping_back_is_read_again() {
        let now = 1_800_000_000;
        let within = FeedPosition {
            second: now - 5,
            skip: 10_000,
        }
        .cursor();
        assert!(!steps_far_back(None, now - 10));
        assert!(
            !steps_far_back(Some(within), now - 10),
            "the overlap steps back"
        );
        assert!(!steps_far_back(Some(now - 10), within));
        assert!(
            steps_far_back(Some(now), now - 3600),
            "a clock stepped back: read the window again"
        );
        assert!(!ahead_of(within, now));
        assert!(ahead_of(now + 3600, now), "a stream id far ahead");
        assert!(ahead_of((1 << 53) - 1, now));
        let inner = inner();
        inner.advance_from(None, within);
        inner.advance_from(Some(within), now - 10);
        assert_eq!(
            inner.cursor(),
            Some(now - 10),
            "a page's cursor is taken as sent"
        );
        inner.advance(within);
        inner.advance(now - 20);
        assert_eq!(
            inner.cursor(),
            Some(within),
            "the stream moves it forward only"
        );
    }

    #[test]
    fn plain_http_is_for_loopback_unless_allowed() {
        for url in [
            "https://auth.example",
            "https://10.0.0.7:8443/",
            "http://127.0.0.1:8000",
            "http://127.1.2.3",
            "http://localhost:8000",
            "http://LOCALHOST",
            "http://[::1]:8000",
            "http://[::ffff:127.0.0.1]:8000",
        ] {
            assert!(check_origin(url, false).is_ok(), "{url}");
        }
        for url in [
            "http://auth.example",
            "http://10.0.0.7",
            "http://0.0.0.0:8000",
            "http://[::]:8000",
            "http://[::ffff:10.0.0.7]",
            "http://localhost.auth.example",
        ] {
            let e = check_origin(url, false).unwrap_err().to_string();
            assert!(e.contains("plain http"), "{url}: {e}");
            assert!(check_origin(url, true).is_ok(), "{url} allowed");
        }
        // Allowing plain HTTP allows no other scheme.
        for url in ["ftp://127.0.0.1", "ws://auth.example", "file:///tmp/jwks"] {
            assert!(check_origin(url, true).is_err(), "{url}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_not_echoed() {
        for url in [
            "https://user:hunter2@auth.example",
            "https://user@auth.example",
            "http://:hunter2@127.0.0.1:8000",
            // Looks like loopback, is another host: refused either way.
            "http://127.0.0.1:hunter2@auth.example",
        ] {
            let e = check_origin(url, true).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }
}

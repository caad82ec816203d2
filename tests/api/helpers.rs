//! `spawn_app` and the `TestApp` with one method per endpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use poem::endpoint::BoxEndpoint;
use poem::http::HeaderMap;
use poem::http::Method;
use poem::test::{TestClient, TestRequestBuilder};
use poem::{EndpointExt, Response};
use serde_json::{json, Value};
use sha2::Sha256;

use jwt_auth::adapters::inbound::http::{build_app, AppState};
use jwt_auth::adapters::outbound::audit::{AuditTrail, InMemoryAuditLog};
use jwt_auth::adapters::outbound::clock::ManualClock;
use jwt_auth::adapters::outbound::db::Database;
use jwt_auth::adapters::outbound::memory::InMemoryRefreshStore;
use jwt_auth::adapters::outbound::password_hasher::PolicyHasher;
use jwt_auth::adapters::outbound::webhooks::InMemoryWebhookOutbox;
use jwt_auth::config::Settings;
use jwt_auth::domain::{
    Email, LogoutScope, Password, PasswordHash, RefreshTokenHash, Session, SessionId, SessionInfo,
    SessionOrigin, SigningAlgorithm, Timestamp, User, UserId,
};
use jwt_auth::ports::{
    Clock, CreateUserError, HashError, PasswordHasher, RefreshStore, RotateError, Rotated,
    Rotation, StoreError, UserRepo, WebhookOutbox,
};
use jwt_auth::startup::{Adapters, UseCases};
pub use jwt_auth::startup::{DEMO_EMAIL, DEMO_PASSWORD};

pub use crate::db::{Store, Stores, TestDb};

pub const TEST_SECRET: &str = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const ISSUER: &str = "jwt-auth";
pub const AUDIENCE: &str = "jwt-auth-clients";
/// A signing secret that passes the `prod` checks.
pub const PROD_SECRET: &str = "q0Zr3m9Xc1T7bN2vK8sL4pW6yH5dJ0aE3fG7uR1iO9kM2nB4xC8zV6tY5wQ1eP3";
/// Overrides for the `prod` profile (with its minimum bcrypt cost).
pub const PROD: [(&str, &str); 3] = [
    ("ENV", "prod"),
    ("BCRYPT_COST", "10"),
    ("JWT_SECRET_KEY", PROD_SECRET),
];
/// A fixed start so expiry arithmetic in tests is exact.
pub const T0: u64 = 1_800_000_000;

static TRACING: Once = Once::new();

/// Logs go to the test output only when `TEST_LOG` is set.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub async fn read(resp: Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().into_string().await.unwrap_or_default();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Set-Cookie` for the refresh cookie, if any.
    pub fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("refresh_token="))
            .map(str::to_owned)
    }

    /// The refresh token value set by this response (empty when cleared).
    pub fn refresh_cookie(&self) -> Option<String> {
        self.set_cookie().map(|c| {
            c.trim_start_matches("refresh_token=")
                .split(';')
                .next()
                .unwrap_or("")
                .to_owned()
        })
    }

    pub fn cookie_attr(&self, name: &str) -> Option<String> {
        let cookie = self.set_cookie()?;
        cookie.split(';').skip(1).map(str::trim).find_map(|attr| {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            k.eq_ignore_ascii_case(name).then(|| v.to_owned())
        })
    }

    pub fn access_token(&self) -> String {
        self.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "body: {}", self.body);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message: {}",
            self.body
        );
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(2),
            "only error and message: {}",
            self.body
        );
    }
}

/// A store that can be switched off, to test outages.
pub struct Switchable<T: ?Sized> {
    pub inner: Arc<T>,
    pub down: AtomicBool,
}

impl<T: ?Sized> Switchable<T> {
    pub fn new(inner: Arc<T>) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(anyhow::anyhow!(
                "connection refused (test switch)"
            )))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<T: RefreshStore + ?Sized> RefreshStore for Switchable<T> {
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
        origin: &SessionOrigin,
        max_per_user: usize,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner
            .create_session(session, first, origin, max_per_user)
            .await
    }
    async fn rotate(&self, rotation: Rotation) -> Result<Rotated, RotateError> {
        self.check()?;
        self.inner.rotate(rotation).await
    }
    async fn revoke_by_token(
        &self,
        p: RefreshTokenHash,
        scope: LogoutScope,
        now: Timestamp,
        grace: u64,
    ) -> Result<jwt_auth::ports::LoggedOut, StoreError> {
        self.check()?;
        self.inner.revoke_by_token(p, scope, now, grace).await
    }
    async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.revoke_session(user, session, now).await
    }
    async fn list_sessions(
        &self,
        user: UserId,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.check()?;
        self.inner.list_sessions(user, now, limit).await
    }
    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.revoke_user_sessions(user).await
    }
    async fn change_password(
        &self,
        user: UserId,
        current: &jwt_auth::domain::PasswordHash,
        new: &jwt_auth::domain::PasswordHash,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        self.check()?;
        self.inner
            .change_password(user, current, new, keep, now)
            .await
    }
    async fn live_session_user(
        &self,
        s: SessionId,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.live_session_user(s, now).await
    }
    async fn tighten_idle_ends(&self, ttl: u64) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.tighten_idle_ends(ttl).await
    }
    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.purge(now, limit).await
    }
    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.count_live_sessions(now).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
}

#[async_trait]
impl<T: UserRepo + ?Sized> UserRepo for Switchable<T> {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.find_by_email(email).await
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.find_by_id(id).await
    }
    async fn create(&self, user: User) -> Result<(), CreateUserError> {
        self.check()?;
        self.inner.create(user).await
    }
    async fn set_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<User>, StoreError> {
        self.check()?;
        self.inner.set_disabled(email, disabled).await
    }
    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.replace_password_hash(id, current, new).await
    }
    async fn mark_email_verified(&self, id: UserId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.mark_email_verified(id).await
    }
    async fn list(&self) -> Result<Vec<User>, StoreError> {
        self.check()?;
        self.inner.list().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
}

/// A password hasher that counts its calls, to show that a request did or did not hash.
pub struct CountingHasher {
    inner: PolicyHasher,
    pub hashes: std::sync::atomic::AtomicUsize,
    pub verifies: std::sync::atomic::AtomicUsize,
}

impl CountingHasher {
    pub fn new(inner: PolicyHasher) -> Self {
        Self {
            inner,
            hashes: Default::default(),
            verifies: Default::default(),
        }
    }

    /// (hash calls, verify calls) so far.
    pub fn calls(&self) -> (usize, usize) {
        (
            self.hashes.load(Ordering::SeqCst),
            self.verifies.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.hashes.fetch_add(1, Ordering::SeqCst);
        self.inner.hash(password).await
    }
    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        self.verifies.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(password, hash).await
    }
    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        self.inner.needs_rehash(hash)
    }
}

/// The app in-process, with handles on its adapters.
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub clock: Arc<ManualClock>,
    pub sessions: Arc<Switchable<dyn RefreshStore>>,
    pub users: Arc<Switchable<dyn UserRepo>>,
    pub hasher: Arc<CountingHasher>,
    /// The in-memory session store, when the app runs on it.
    pub memory: Option<Arc<InMemoryRefreshStore>>,
    /// The database, when the app runs on one; dropped with the app.
    pub db: Option<TestDb>,
    pub state: Arc<AppState>,
    pub settings: Settings,
    pub adapters: Adapters,
}

/// The default test app: `dev` profile with the demo user, bcrypt cost 4, a fixed secret,
/// clock at `T0`, in-memory stores.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// As `spawn_app`, with settings overridden (environment spelling).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let stores = Stores::new(Store::Memory).await.expect("in-memory stores");
    spawn_app_from(stores, overrides).await
}

/// As `spawn_app_with`, signing with `algorithm` (a generated key pair for the asymmetric
/// ones).
pub async fn spawn_app_alg(algorithm: SigningAlgorithm, overrides: &[(&str, &str)]) -> TestApp {
    let mut pairs = vec![("JWT_ALGORITHM", algorithm.name())];
    pairs.extend_from_slice(overrides);
    spawn_app_with(&pairs).await
}

/// A second instance on the same stores as `first` (its own settings, key ring, clock and
/// caches): on a database, with the keys stored there; on the in-memory stores, sharing
/// `first`'s accounts and sessions, as a restart with other settings would see them.
pub async fn spawn_second_instance(first: &TestApp, overrides: &[(&str, &str)]) -> TestApp {
    let Some(db) = first.db.as_ref().map(|d| &d.db) else {
        let stores = Stores {
            users: first.users.inner.clone(),
            sessions: first.sessions.inner.clone(),
            memory: first.memory.clone(),
            db: None,
        };
        return spawn_app_from(stores, overrides).await;
    };
    let stores = Stores {
        users: db.users(),
        sessions: db.sessions(),
        memory: None,
        db: None,
    };
    let mut app = spawn_app_throttled_on(stores, overrides, Some(db)).await;
    app.adapters = app.adapters.with_key_store(&app.settings, db.keys());
    app.adapters.prepare_keys().await.expect("keys load");
    app
}

/// As `spawn_app`, on fresh stores of this kind (a new SQLite file or PostgreSQL database);
/// `None` when PostgreSQL is not configured (the skip is printed).
pub async fn spawn_app_on(store: Store) -> Option<TestApp> {
    Some(spawn_app_from(Stores::new(store).await?, &[]).await)
}

/// As `spawn_app_with`, on these stores. The demo user is seeded when the store answers.
/// On PostgreSQL the login throttle is the shared one on that database, as in the service.
pub async fn spawn_app_from(stores: Stores, overrides: &[(&str, &str)]) -> TestApp {
    let throttle_db = stores.db.as_ref().map(|d| d.db.clone());
    spawn_app_throttled_on(stores, overrides, throttle_db.as_ref()).await
}

/// As `spawn_app_from`, with the login throttle on `throttle_db` (when it is PostgreSQL)
/// rather than the stores' own database; the in-process one without.
pub async fn spawn_app_throttled_on(
    stores: Stores,
    overrides: &[(&str, &str)],
    throttle_db: Option<&Database>,
) -> TestApp {
    init_tracing();
    let mut pairs = vec![("JWT_SECRET_KEY", TEST_SECRET), ("BCRYPT_COST", "4")];
    pairs.extend_from_slice(overrides);
    let settings = Settings::from_pairs(&pairs).expect("test settings");
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix(T0)));
    let sessions = Arc::new(Switchable::new(stores.sessions));
    let users = Arc::new(Switchable::new(stores.users));
    let hasher = Arc::new(CountingHasher::new(
        PolicyHasher::with_policy(settings.hash_policy(), 2, 128).unwrap(),
    ));
    let adapters = Adapters::new(
        &settings,
        users.clone(),
        sessions.clone(),
        hasher.clone(),
        clock.clone(),
    )
    .expect("test adapters")
    .with_shared_throttle(&settings, throttle_db);
    // Generated keys and the revocation feed live in the store, as in the service.
    let adapters = match (&stores.db, &stores.memory) {
        (Some(db), _) => adapters
            .with_key_store(&settings, db.db.keys())
            .with_revocation_feed(db.db.revocations())
            .with_reset_tokens(db.db.reset_tokens())
            .with_verification_tokens(db.db.verification_tokens()),
        (None, Some(memory)) => adapters.with_revocation_feed(memory.clone()),
        (None, None) => adapters,
    };
    // Webhooks on the store's outbox when WEBHOOK_URL is set; the tests start the tasks.
    let outbox: Arc<dyn WebhookOutbox> = match &stores.db {
        Some(db) => db.db.webhook_outbox(),
        None => Arc::new(InMemoryWebhookOutbox::new()),
    };
    let adapters = adapters
        .with_webhooks(&settings, outbox)
        .expect("webhook settings");
    // The audit trail on the store's table (a ring in memory), as in the service.
    let adapters = match (&stores.db, settings.audit_enabled) {
        (_, false) => adapters,
        (Some(db), true) => adapters.with_audit(AuditTrail::new(db.db.audit_log())),
        (None, true) => adapters.with_audit(AuditTrail::new(Arc::new(InMemoryAuditLog::new()))),
    };
    // A store that is down on purpose cannot load keys; the start-up key signs then.
    let _ = adapters.prepare_keys().await;
    let cases = UseCases::new(&settings, &adapters);
    // A store that is down on purpose cannot be prepared; those tests expect 503 anyway.
    let _ = cases.prepare(settings.env).await;
    let state = cases.into_http_state(&settings, &adapters);
    let client = TestClient::new(build_app(state.clone()).map_to_response().boxed());
    TestApp {
        client,
        clock,
        sessions,
        users,
        hasher,
        memory: stores.memory,
        db: stores.db,
        state,
        settings,
        adapters,
    }
}

/// A request to the in-process app, built up and then sent.
pub struct Req<'a> {
    inner: TestRequestBuilder<'a, BoxEndpoint<'static, Response>>,
}

impl Req<'_> {
    #[must_use]
    pub fn header(self, name: &str, value: impl AsRef<str>) -> Self {
        Self {
            inner: self.inner.header(name, value.as_ref()),
        }
    }

    /// Sends `refresh_token=<value>` as the cookie.
    #[must_use]
    pub fn cookie(self, value: &str) -> Self {
        self.header("cookie", format!("refresh_token={value}"))
    }

    /// A JSON body (with `Content-Type: application/json`).
    #[must_use]
    pub fn json(self, body: &Value) -> Self {
        Self {
            inner: self.inner.body_json(body),
        }
    }

    /// A raw body; set the content type with `header`.
    #[must_use]
    pub fn body(self, body: impl Into<poem::Body>) -> Self {
        Self {
            inner: self.inner.body(body),
        }
    }

    pub async fn send(self) -> Resp {
        Resp::read(self.inner.send().await.0).await
    }
}

impl TestApp {
    /// The algorithm the app signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.settings.jwt_algorithm
    }

    /// The header the app's tokens carry: `typ`, `alg` and, with a key pair, its `kid`.
    pub fn token_header(&self) -> Value {
        match &self.adapters.key_ring {
            None => good_header(),
            Some(ring) => json!({
                "typ": "at+jwt",
                "alg": self.algorithm().name(),
                "kid": ring.snapshot().signing().kid(),
            }),
        }
    }

    /// The app's current `kid`, if it signs with a key pair.
    pub fn kid(&self) -> Option<String> {
        self.adapters
            .key_ring
            .as_ref()
            .map(|r| r.snapshot().signing().kid().to_owned())
    }

    /// A compact JWS with any header and payload, signed with the app's own key (the test
    /// secret under HS256), whatever the header says.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        match &self.adapters.key_ring {
            None => sign_hs256(header, payload, TEST_SECRET.as_bytes()),
            Some(ring) => sign_with(ring.snapshot().signing().signer(), header, payload),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            inner: self.client.request(method, path),
        }
    }

    pub fn post(&self, path: &str) -> Req<'_> {
        self.request(Method::POST, path)
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.login_json(&json!({ "email": email, "password": password }))
            .await
    }

    pub async fn login_json(&self, body: &Value) -> Resp {
        self.post("/auth/login").json(body).send().await
    }

    /// Logs in as the demo user and returns the response.
    pub async fn login_demo(&self) -> Resp {
        let resp = self.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(resp.status, 200, "demo login: {}", resp.body);
        resp
    }

    pub async fn refresh(&self, cookie: Option<&str>) -> Resp {
        self.with_cookie(self.post("/auth/refresh"), cookie)
            .send()
            .await
    }

    pub async fn logout(&self, cookie: Option<&str>) -> Resp {
        self.with_cookie(self.post("/auth/logout"), cookie)
            .send()
            .await
    }

    fn with_cookie<'a>(&self, req: Req<'a>, cookie: Option<&str>) -> Req<'a> {
        match cookie {
            Some(c) => req.cookie(c),
            None => req,
        }
    }

    pub async fn me(&self, token: &str) -> Resp {
        self.me_with_header(&format!("Bearer {token}")).await
    }

    pub async fn me_with_header(&self, authorization: &str) -> Resp {
        self.request(Method::GET, "/auth/me")
            .header("authorization", authorization)
            .send()
            .await
    }

    pub async fn register(&self, email: &str, password: &str) -> Resp {
        self.post("/auth/register")
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
    }

    /// Disables (or enables again) an account as an operator would (`jwt-auth user disable`):
    /// through the use case, so its sessions are revoked too.
    pub async fn set_disabled(&self, email: &str, disabled: bool) {
        let email = Email::parse(email).expect("an email");
        UseCases::new(&self.settings, &self.adapters)
            .set_disabled
            .execute(&email, disabled)
            .await
            .expect("set_disabled");
    }

    /// Creates an account as an operator would (`jwt-auth user add`), whatever the profile.
    pub async fn add_user(&self, email: &str, password: &str) {
        let email = Email::parse_new(email).expect("a valid new email");
        let password = Password::parse_new(password.to_owned()).expect("a valid new password");
        self.state
            .register
            .execute(email, &password)
            .await
            .expect("add_user");
    }

    /// Marks an account disabled (or enabled) in the store only, as a database edit behind the
    /// service's back would: no session is revoked by it.
    pub async fn disable_in_store(&self, email: &str, disabled: bool) {
        let email = Email::parse(email).expect("an email");
        self.users
            .set_disabled(&email, disabled)
            .await
            .expect("set_disabled in the store");
    }

    /// One run of the background purge at the app's clock, at most `limit` sessions.
    pub async fn purge(&self, limit: usize) -> u64 {
        self.sessions
            .purge(self.clock.now(), limit)
            .await
            .expect("purge")
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::read(self.client.get(path).send().await.0).await
    }

    /// (live sessions, stored token hashes) in the in-memory store.
    ///
    /// # Panics
    /// On a database store: use `live_sessions`.
    pub fn store_counts(&self) -> (usize, usize) {
        self.memory
            .as_ref()
            .expect("store_counts reads the in-memory store; use live_sessions")
            .counts()
    }

    /// Sessions not revoked (ended or not), on any store.
    pub async fn live_sessions(&self) -> usize {
        match (&self.memory, &self.db) {
            (Some(memory), _) => memory.counts().0,
            (None, Some(db)) => usize::try_from(db.live_sessions().await).unwrap(),
            (None, None) => panic!("no store to count"),
        }
    }
}

/// Base64url without padding, as in a compact JWS.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS with any header and payload, HMAC-SHA256-signed with `key`.
pub fn sign_hs256(header: &Value, payload: &Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

/// A compact JWS with any header and payload, signed by `signer` (josekit's raw signature:
/// JOSE `r || s` for ECDSA).
pub fn sign_with(signer: &dyn josekit::jws::JwsSigner, header: &Value, payload: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = signer.sign(signing_input.as_bytes()).expect("signing");
    format!("{signing_input}.{}", b64(&signature))
}

/// Claims as the service issues them for `sub`/`sid` at `now`.
pub fn good_claims(sub: &str, sid: &str, now: u64) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "sid": sid,
        "iat": now, "exp": now + 900, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

pub fn good_header() -> Value {
    json!({ "typ": "at+jwt", "alg": "HS256" })
}

/// Decodes the payload of a compact JWT (no verification).
pub fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("payload segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON payload")
}

pub fn header_of(token: &str) -> Value {
    let part = token.split('.').next().expect("header segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON header")
}

//! The composition root: adapters into use cases, use cases into the HTTP app, the app onto a
//! socket. `main`, the operator commands, the tests and the fuzz target all build here and
//! differ only in the adapters they pass.

mod database;
mod demo;
mod housekeeping;
mod keys;
mod mail;
mod metrics;
mod server;

pub use database::{migrate, open_database, pool_settings};
pub use demo::{DEMO_EMAIL, DEMO_PASSWORD};
pub use housekeeping::Housekeeping;
pub use keys::{key_files, NEXT_SUFFIX};

use std::sync::Arc;
use std::time::Duration;

use poem::EndpointExt;
use tokio::task::JoinHandle;

use crate::adapters::inbound::http::{build_app, AppState, HttpSettings, RevocationHub};
use crate::adapters::outbound::audit::{AuditTrail, InMemoryAuditLog};
use crate::adapters::outbound::clock::SystemClock;
use crate::adapters::outbound::db::Database;
use crate::adapters::outbound::jose_issuer::{IssuerConfig, JoseTokenIssuer};
use crate::adapters::outbound::key_lifecycle::{KeyLifecycle, KeySealer, KEY_RELOAD_SECS};
use crate::adapters::outbound::memory::{InMemoryRefreshStore, InMemoryUserRepo};
use crate::adapters::outbound::memory_keys::InMemoryKeyStore;
use crate::adapters::outbound::memory_throttle::InMemoryLoginAttempts;
use crate::adapters::outbound::metrics::Metrics;
use crate::adapters::outbound::password_hasher::PolicyHasher;
use crate::adapters::outbound::redis_throttle::{RedisLoginAttempts, UnusableRedis};
use crate::adapters::outbound::rehash::BackgroundUpgrades;
use crate::adapters::outbound::signing_keys::{KeyRing, KeySet, NoPublicKeys};
use crate::adapters::outbound::successors::HmacSuccessors;
use crate::adapters::outbound::throttle_outage::OnStoreFailure;
use crate::adapters::outbound::verified_cache::{self, VerifiedCache};
use crate::adapters::outbound::webhooks::{InMemoryWebhookOutbox, WebhookConfig, Webhooks};
use crate::app::{
    ChangePassword, Login, Logout, Me, Refresh, Register, Sessions, SetDisabled, TokenPolicy,
};
use crate::config::{Profile, Secret, Settings};
use crate::domain::{KeyPolicy, Timestamp, JWKS_MAX_AGE_SECS};
use crate::ports::{
    Clock, EventHub, KeyStore, LoginAttempts, PasswordHasher, PasswordUpgrades, PublicKeys,
    RefreshStore, Revocation, RevocationFeed, SecurityEvents, Successors, TokenIssuer, UserRepo,
    WebhookOutbox,
};

/// One implementation of every port, and the database behind the stores, if any.
#[derive(Clone)]
pub struct Adapters {
    pub users: Arc<dyn UserRepo>,
    pub sessions: Arc<dyn RefreshStore>,
    pub attempts: Arc<dyn LoginAttempts>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub upgrades: Arc<dyn PasswordUpgrades>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub successors: Arc<dyn Successors>,
    pub clock: Arc<dyn Clock>,
    /// The published keys (none under HS*).
    pub public_keys: Arc<dyn PublicKeys>,
    /// The key ring under EdDSA, ES256 or RS256.
    pub key_ring: Option<Arc<KeyRing>>,
    /// The lifecycle of generated keys (a key pair without `JWT_PRIVATE_KEY_FILE`).
    pub key_lifecycle: Option<Arc<KeyLifecycle>>,
    /// The revocation feed of the session store.
    pub revocations: Arc<dyn RevocationFeed>,
    /// Where the use cases and the key lifecycle report security events; the audit trail,
    /// metrics and webhooks subscribe to it.
    pub events: Arc<EventHub>,
    /// The security-event webhooks, when `WEBHOOK_URL` is set.
    pub webhooks: Option<Arc<Webhooks>>,
    /// The Prometheus recorder, when `METRICS_ADDR` is set (see `with_metrics`).
    pub metrics: Option<Arc<Metrics>>,
    /// The audit trail, unless `AUDIT_ENABLED` is off.
    pub audit: Option<Arc<AuditTrail>>,
    /// Password-reset tokens (in memory unless `with_reset_tokens`).
    pub reset_tokens: Arc<dyn crate::ports::ResetTokens>,
    /// Email-verification tokens, a store apart from the reset tokens (in memory unless
    /// `with_verification_tokens`).
    pub verification_tokens: Arc<dyn crate::ports::ResetTokens>,
    /// Where reset mail goes (`SMTP_URL`, or `MAIL_OUTBOX_DIR` in dev); `None`: nowhere.
    pub mailer: Option<Arc<dyn crate::ports::Mailer>>,
    database: Option<Database>,
}

impl Adapters {
    /// The zero-setup default: in-memory stores, bcrypt, josekit and the system clock.
    ///
    /// # Errors
    /// When the token or hashing settings are unusable.
    pub fn in_memory(settings: &Settings) -> anyhow::Result<Self> {
        let users = InMemoryUserRepo::new();
        let sessions = Arc::new(InMemoryRefreshStore::new(&users));
        Ok(
            Self::with_stores(settings, Arc::new(users), sessions.clone())?
                .with_revocation_feed(sessions),
        )
    }

    /// The stores `DATABASE_URL` selects (migrated first unless `RUN_MIGRATIONS` is off), or
    /// the in-memory ones without it; bcrypt, josekit and the system clock.
    ///
    /// # Errors
    /// One line when the database cannot be reached, its migration fails or its schema is
    /// behind this binary; never the URL's password.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match open_database(settings).await? {
            Some(db) => {
                let mut adapters = Self::with_stores(settings, db.users(), db.sessions())?
                    .with_shared_throttle(settings, Some(&db))
                    .with_key_store(settings, db.keys())
                    .with_revocation_feed(db.revocations())
                    .with_webhooks(settings, db.webhook_outbox())?
                    .with_reset_tokens(db.reset_tokens())
                    .with_verification_tokens(db.verification_tokens());
                if settings.audit_enabled {
                    adapters = adapters.with_audit(AuditTrail::new(db.audit_log()));
                }
                adapters.database = Some(db);
                adapters.prepare_keys().await?;
                Ok(adapters)
            }
            None => {
                tracing::info!("using the in-memory stores: nothing survives a restart");
                if settings.webhook_url.is_some() {
                    tracing::warn!(
                        "webhooks on the in-memory store: events not yet delivered are lost \
                         at a restart (set DATABASE_URL for a persisted outbox)"
                    );
                }
                let mut adapters = Self::in_memory(settings)?
                    .with_shared_throttle(settings, None)
                    .with_webhooks(settings, Arc::new(InMemoryWebhookOutbox::new()))?;
                if settings.audit_enabled {
                    let ring = Arc::new(InMemoryAuditLog::new());
                    adapters = adapters.with_audit(AuditTrail::new(ring));
                }
                adapters.prepare_keys().await?;
                Ok(adapters)
            }
        }
    }

    /// These stores with the password-hash policy, josekit and the system clock.
    ///
    /// # Errors
    /// When the token or hashing settings are unusable.
    pub fn with_stores(
        settings: &Settings,
        users: Arc<dyn UserRepo>,
        sessions: Arc<dyn RefreshStore>,
    ) -> anyhow::Result<Self> {
        let mut hasher = PolicyHasher::with_policy(
            settings.hash_policy(),
            settings.login_concurrency(),
            settings.hash_queue_max(),
        )?;
        let recorder = metrics::recorder(settings);
        if let Some(m) = &recorder {
            hasher = hasher.observed(m.hash_queue_depth.clone(), m.hash_wait.clone());
        }
        let adapters = Self::new(
            settings,
            users,
            sessions,
            Arc::new(hasher),
            Arc::new(SystemClock),
        )?;
        Ok(match recorder {
            Some(m) => adapters.with_metrics(m),
            None => adapters,
        })
    }

    /// These stores, hasher and clock; the token issuer and the throttle from `settings`.
    ///
    /// # Errors
    /// When the token settings are unusable.
    pub fn new(
        settings: &Settings,
        users: Arc<dyn UserRepo>,
        sessions: Arc<dyn RefreshStore>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let signing = Signing::new(settings, clock.now())?;
        let events = Arc::new(EventHub::default());
        let lifecycle = match &signing.ring {
            Some(ring) if settings.generates_keys() => Some(Arc::new(key_lifecycle(
                settings,
                Arc::new(InMemoryKeyStore::new()),
                ring.clone(),
                clock.clone(),
                events.clone(),
            ))),
            _ => None,
        };
        Ok(Self {
            upgrades: Arc::new(BackgroundUpgrades::new(hasher.clone(), users.clone())),
            users,
            sessions,
            attempts: Arc::new(InMemoryLoginAttempts::new(
                settings.throttle(),
                clock.clone(),
            )),
            hasher,
            issuer: signing.issuer,
            // From a secret every instance configured alike shares, so they all derive the
            // same successors (see `Settings::successor_secret`).
            successors: Arc::new(
                HmacSuccessors::from_secret(&settings.successor_secret()).with_previous(
                    settings
                        .jwt_previous_secret_key
                        .as_ref()
                        .map(|s: &Secret| s.expose().as_bytes()),
                ),
            ),
            clock,
            public_keys: signing.public_keys,
            key_ring: signing.ring,
            key_lifecycle: lifecycle,
            revocations: Arc::new(NoRevocations),
            events,
            webhooks: None,
            metrics: None,
            audit: None,
            reset_tokens: Arc::new(
                crate::adapters::outbound::memory_reset::InMemoryResetTokens::new(),
            ),
            verification_tokens: Arc::new(
                crate::adapters::outbound::memory_reset::InMemoryResetTokens::new(),
            ),
            mailer: mail::mailer(settings)?,
            database: None,
        })
    }

    /// The stores of the database `DATABASE_URL` names, for the operator commands (the
    /// in-memory store lives only inside a running server).
    ///
    /// # Errors
    /// Without `DATABASE_URL`, or as `from_settings`.
    pub async fn of_database(settings: &Settings) -> anyhow::Result<Self> {
        if settings.database_url.is_none() {
            anyhow::bail!(
                "DATABASE_URL is not set: user management needs a database (the in-memory \
                 store lives only inside a running server)"
            );
        }
        Self::from_settings(settings).await
    }

    /// The login throttle on Redis when `REDIS_URL` is set, else on `db` when it is
    /// PostgreSQL (shared by every instance, under the outage policy
    /// `THROTTLE_STORE_FAILURE`), else the in-process one already in place.
    #[must_use]
    pub fn with_shared_throttle(mut self, settings: &Settings, db: Option<&Database>) -> Self {
        let redis = settings
            .redis_url
            .as_ref()
            .map(|url| redis_throttle(settings, url, self.clock.clone()));
        let shared = redis.or_else(|| {
            db.and_then(|db| db.login_attempts(settings.throttle(), self.clock.clone()))
        });
        let store = if settings.redis_url.is_some() {
            "redis"
        } else {
            "postgres"
        };
        match shared {
            Some(shared) => {
                tracing::info!(
                    store,
                    on_failure = ?settings.throttle_store_failure,
                    "login throttle shared by every instance on the store"
                );
                self.attempts = Arc::new(OnStoreFailure::new(
                    shared,
                    settings.throttle_store_failure,
                    self.clock.clone(),
                ));
            }
            None => tracing::info!(
                store = "memory",
                "login throttle in process: each instance counts on its own"
            ),
        }
        self
    }

    /// Reports security events to `events` too.
    #[must_use]
    pub fn with_events(self, events: Arc<dyn SecurityEvents>) -> Self {
        self.events.subscribe(events);
        self
    }

    /// Sends the security events `WEBHOOK_EVENTS` selects to `WEBHOOK_URL` through `outbox`,
    /// besides wherever they went; nothing without `WEBHOOK_URL`. The tasks start with
    /// `Webhooks::start` (the server does it).
    ///
    /// # Errors
    /// When the webhook settings are unusable (`Settings` validated them already).
    pub fn with_webhooks(
        mut self,
        settings: &Settings,
        outbox: Arc<dyn WebhookOutbox>,
    ) -> anyhow::Result<Self> {
        let Some(url) = &settings.webhook_url else {
            return Ok(self);
        };
        let config = WebhookConfig {
            url: url.expose().trim().to_owned(),
            key: settings
                .webhook_key()
                .map_err(|why| anyhow::anyhow!("WEBHOOK_SECRET: {why}"))?,
            kinds: settings
                .webhook_kinds()
                .map_err(|why| anyhow::anyhow!("WEBHOOK_EVENTS: {why}"))?,
            timeout: Duration::from_secs(settings.webhook_timeout_secs),
            max_attempts: settings.webhook_max_attempts,
            max_age: Duration::from_secs(settings.webhook_max_age_hours * 3600),
            dead_retention: Duration::from_secs(settings.webhook_dead_retention_days * 86_400),
            retry_base: Duration::from_millis(settings.webhook_retry_base_ms),
            retry_max: Duration::from_secs(settings.webhook_retry_max_secs),
        };
        let webhooks = Webhooks::new(config, outbox);
        self.events.subscribe(webhooks.sink.clone());
        self.webhooks = Some(webhooks);
        Ok(self)
    }

    /// Keeps every security event in `trail` too, and starts its writer (on the current
    /// runtime, if any; `close` writes what is still queued).
    #[must_use]
    pub fn with_audit(mut self, trail: Arc<AuditTrail>) -> Self {
        trail.start();
        self.events.subscribe(trail.clone());
        self.audit = Some(trail);
        self
    }

    /// Publishes revocations from `feed` (the session store's).
    #[must_use]
    pub fn with_revocation_feed(mut self, feed: Arc<dyn RevocationFeed>) -> Self {
        self.revocations = feed;
        self
    }

    /// Keeps generated keys in `store` (shared by every instance on it) instead of memory.
    #[must_use]
    pub fn with_key_store(mut self, settings: &Settings, store: Arc<dyn KeyStore>) -> Self {
        if let (Some(ring), true) = (&self.key_ring, settings.generates_keys()) {
            self.key_lifecycle = Some(Arc::new(key_lifecycle(
                settings,
                store,
                ring.clone(),
                self.clock.clone(),
                self.events.clone(),
            )));
        }
        self
    }

    /// Loads the generated keys from their store (storing the start-up key as the first one
    /// when there is none) and applies what is due; nothing without generated keys.
    ///
    /// # Errors
    /// When the store cannot be reached or a stored key does not open.
    pub async fn prepare_keys(&self) -> anyhow::Result<()> {
        if let Some(lifecycle) = &self.key_lifecycle {
            lifecycle.tick().await?;
        }
        Ok(())
    }

    /// Closes the database pool, if any, waiting for connections in use.
    pub async fn close(&self) {
        // The events of a command (`user disable`, `keys rotate`) are written before it exits.
        if let Some(audit) = &self.audit {
            audit.close().await;
        }
        if let Some(db) = &self.database {
            db.close().await;
        }
    }
}

/// The josekit issuer for these settings, behind the verified-token cache.
///
/// # Errors
/// When a secret is too short for the algorithm or a key file is unusable.
pub fn token_issuer(settings: &Settings) -> anyhow::Result<Arc<dyn TokenIssuer>> {
    let now = Timestamp::from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    Ok(Signing::new(settings, now)?.issuer)
}

/// The issuer, what it publishes, and its key ring, from the settings.
pub struct Signing {
    pub issuer: Arc<dyn TokenIssuer>,
    pub public_keys: Arc<dyn PublicKeys>,
    pub ring: Option<Arc<KeyRing>>,
}

impl Signing {
    /// HS*: the secret (and the previous one until its end date, `now` plus one access-token
    /// lifetime when none is set in `dev`); otherwise the keys of `JWT_PRIVATE_KEY_FILE`, or
    /// one generated key.
    ///
    /// # Errors
    /// When a secret is too short or a key file is unusable.
    pub fn new(settings: &Settings, now: Timestamp) -> anyhow::Result<Self> {
        if settings.jwt_algorithm.is_asymmetric() {
            let set = match &settings.jwt_private_key_file {
                Some(path) => key_files(settings, std::path::Path::new(path))?,
                None => KeySet::generated(settings.jwt_algorithm)?,
            };
            return Ok(Self::of_ring(settings, Arc::new(KeyRing::new(set))));
        }
        let (secret, generated) = settings.signing_secret();
        if generated {
            tracing::warn!(
                "JWT_SECRET_KEY is missing, a placeholder or too short: using a random secret for \
                 this process (dev only; tokens will not survive a restart)"
            );
        }
        let mut issuer = JoseTokenIssuer::new(IssuerConfig {
            algorithm: settings.jwt_algorithm,
            secret,
            previous_secret: settings
                .jwt_previous_secret_key
                .as_ref()
                .map(|s: &Secret| s.expose().as_bytes().to_vec()),
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            leeway_secs: settings.jwt_leeway_secs,
        })?;
        if settings.jwt_previous_secret_key.is_some() {
            let until = match settings.jwt_previous_secret_key_until {
                Some(t) => Timestamp::from_unix(t.0),
                None => {
                    tracing::warn!(
                        "JWT_PREVIOUS_SECRET_KEY has no JWT_PREVIOUS_SECRET_KEY_UNTIL: it verifies \
                         for one access-token lifetime from now"
                    );
                    now.plus_secs(settings.access_token_expires_min * 60 + settings.jwt_leeway_secs)
                }
            };
            if now >= until {
                tracing::warn!("JWT_PREVIOUS_SECRET_KEY is past its end date and verifies nothing");
            }
            issuer = issuer.previous_secret_until(until);
        }
        Ok(Self {
            issuer: cached(settings, Arc::new(issuer)),
            public_keys: Arc::new(NoPublicKeys),
            ring: None,
        })
    }

    /// An issuer on this ring (shared with the key lifecycle, which swaps its keys).
    pub fn of_ring(settings: &Settings, ring: Arc<KeyRing>) -> Self {
        let issuer = JoseTokenIssuer::with_ring(
            ring.clone(),
            settings.jwt_issuer.clone(),
            settings.jwt_audience.clone(),
            settings.jwt_leeway_secs,
        );
        Self {
            issuer: cached(settings, Arc::new(issuer)),
            public_keys: ring.clone(),
            ring: Some(ring),
        }
    }
}

fn cached(settings: &Settings, issuer: Arc<dyn TokenIssuer>) -> Arc<dyn TokenIssuer> {
    Arc::new(VerifiedCache::new(
        issuer,
        settings.jwt_leeway_secs,
        verified_cache::DEFAULT_ENTRIES,
    ))
}

/// How far back the revocation feed reaches: the longest an access token of a session revoked
/// now may still be accepted.
pub fn revocation_window_secs(settings: &Settings) -> u64 {
    settings.access_token_expires_min * 60 + settings.jwt_leeway_secs
}

/// The lifecycle timing for these settings: a next key is published for longer than the JWKS
/// `max-age` plus two reloads before it signs, and a previous key stays published for one
/// reload plus an access token's lifetime and leeway after it stopped signing.
pub fn key_policy(settings: &Settings) -> KeyPolicy {
    KeyPolicy {
        publish_lead_secs: JWKS_MAX_AGE_SECS + 2 * KEY_RELOAD_SECS,
        previous_kept_secs: KEY_RELOAD_SECS
            + settings.access_token_expires_min * 60
            + settings.jwt_leeway_secs,
        rotation_secs: (settings.jwt_key_rotation_days > 0)
            .then(|| settings.jwt_key_rotation_days * 86_400),
    }
}

fn key_lifecycle(
    settings: &Settings,
    store: Arc<dyn KeyStore>,
    ring: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn SecurityEvents>,
) -> KeyLifecycle {
    let sealer = match &settings.jwt_key_encryption_key {
        Some(kek) => KeySealer::new(kek.expose().as_bytes()),
        // `prod` on a database refuses to start without one (see `Settings::validate`); in
        // memory nothing is written anywhere.
        None => {
            if settings.database_url.is_some() {
                tracing::warn!(
                    "JWT_KEY_ENCRYPTION_KEY is not set: generated private keys are stored in \
                     the database under a fixed development key that anyone can read in the \
                     source (dev only; prod refuses to start like this)"
                );
            }
            KeySealer::new(b"jwt-auth development key-encryption key")
        }
    };
    KeyLifecycle::new(store, sealer, ring, key_policy(settings), clock).with_events(events)
}

/// A feed with nothing in it, for stores that keep no revocations.
struct NoRevocations;

#[async_trait::async_trait]
impl RevocationFeed for NoRevocations {
    async fn revoked_since(
        &self,
        _since: Option<crate::domain::FeedPosition>,
        _window_secs: u64,
        _limit: usize,
    ) -> Result<(Vec<Revocation>, u64), crate::ports::StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok((Vec::new(), now))
    }

    async fn purge_revocations(&self, _window_secs: u64) -> Result<u64, crate::ports::StoreError> {
        Ok(0)
    }
}

/// Every use case, wired once on one set of adapters.
pub struct UseCases {
    pub login: Login,
    pub refresh: Refresh,
    pub logout: Logout,
    pub me: Me,
    pub sessions: Sessions,
    pub register: Register,
    pub set_disabled: SetDisabled,
    pub change_password: ChangePassword,
    pub forgot_password: crate::app::ForgotPassword,
    pub reset_password: crate::app::ResetPassword,
    pub email_verification: crate::app::EmailVerification,
}

impl UseCases {
    pub fn new(settings: &Settings, a: &Adapters) -> Self {
        let policy = TokenPolicy {
            access_ttl_secs: settings.access_token_expires_min * 60,
            session_ttl_secs: settings.refresh_token_expires_days * 86_400,
            idle_ttl_secs: settings.refresh_idle_timeout_days.map(|d| d * 86_400),
            reuse_grace_secs: settings.refresh_reuse_grace_secs,
            max_sessions_per_user: settings.max_sessions_per_user,
        };
        let me = || Me {
            issuer: a.issuer.clone(),
            sessions: a.sessions.clone(),
            clock: a.clock.clone(),
        };
        let forgot_password = mail::forgot_password(settings, a);
        Self {
            email_verification: mail::email_verification(settings, a, forgot_password.mail_rate()),
            forgot_password,
            reset_password: mail::reset_password(a),
            login: Login {
                users: a.users.clone(),
                hasher: a.hasher.clone(),
                issuer: a.issuer.clone(),
                sessions: a.sessions.clone(),
                clock: a.clock.clone(),
                throttle: a.attempts.clone(),
                upgrades: a.upgrades.clone(),
                events: a.events.clone(),
                policy,
                refused: (settings.env == Profile::Prod).then(demo::email),
                require_verified_email: settings.require_email_verification,
            },
            refresh: Refresh {
                issuer: a.issuer.clone(),
                sessions: a.sessions.clone(),
                clock: a.clock.clone(),
                policy,
                successors: a.successors.clone(),
                events: a.events.clone(),
            },
            logout: Logout {
                sessions: a.sessions.clone(),
                clock: a.clock.clone(),
                reuse_grace_secs: policy.reuse_grace_secs,
                events: a.events.clone(),
            },
            me: me(),
            sessions: Sessions {
                auth: me(),
                sessions: a.sessions.clone(),
                clock: a.clock.clone(),
                events: a.events.clone(),
            },
            register: Register {
                users: a.users.clone(),
                hasher: a.hasher.clone(),
                clock: a.clock.clone(),
                throttle: a.attempts.clone(),
                events: a.events.clone(),
            },
            set_disabled: SetDisabled {
                users: a.users.clone(),
                sessions: a.sessions.clone(),
                clock: a.clock.clone(),
                events: a.events.clone(),
            },
            change_password: ChangePassword {
                auth: me(),
                hasher: a.hasher.clone(),
                sessions: a.sessions.clone(),
                throttle: a.attempts.clone(),
                clock: a.clock.clone(),
                events: a.events.clone(),
                refresh: Refresh {
                    issuer: a.issuer.clone(),
                    sessions: a.sessions.clone(),
                    clock: a.clock.clone(),
                    policy,
                    successors: a.successors.clone(),
                    events: a.events.clone(),
                },
            },
        }
    }

    /// What the profile requires of the stores before serving: the demo account exists in
    /// `dev` and is disabled in `prod` (see `demo`); every session's idle end is within the
    /// configured idle timeout.
    ///
    /// # Errors
    /// When a store or the hasher fails.
    pub async fn prepare(&self, profile: Profile) -> anyhow::Result<()> {
        demo::prepare(profile, &self.register, &self.set_disabled).await?;
        // The idle timeout as configured now reaches the sessions opened before it was set
        // or shortened, not only those refreshed from now on.
        if let Some(ttl) = self.refresh.policy.idle_ttl_secs {
            let changed = self.refresh.sessions.tighten_idle_ends(ttl).await?;
            if changed > 0 {
                tracing::info!(
                    event = "idle_ends_tightened",
                    sessions = changed,
                    "sessions brought under REFRESH_IDLE_TIMEOUT_DAYS"
                );
            }
        }
        Ok(())
    }

    /// The HTTP edge's state.
    pub fn into_http_state(self, settings: &Settings, a: &Adapters) -> Arc<AppState> {
        let revocation_stream = Arc::new(RevocationHub::new(
            a.revocations.clone(),
            revocation_window_secs(settings),
            settings.revocation_stream_max,
        ));
        a.events.subscribe(revocation_stream.waker());
        Arc::new(AppState {
            login: self.login,
            refresh: self.refresh,
            logout: self.logout,
            me: self.me,
            my_sessions: self.sessions,
            register: self.register,
            change_password: self.change_password,
            forgot_password: self.forgot_password,
            reset_password: self.reset_password,
            email_verification: self.email_verification,
            users: a.users.clone(),
            sessions: a.sessions.clone(),
            clock: a.clock.clone(),
            settings: http_settings(settings),
            public_keys: a.public_keys.clone(),
            revocations: a.revocations.clone(),
            revocation_stream,
        })
    }
}

fn http_settings(settings: &Settings) -> HttpSettings {
    HttpSettings {
        cookie_secure: settings.cookie_secure(),
        allowed_origins: settings.allowed_origins(),
        public_url: settings.public_url.clone(),
        max_body_bytes: settings.max_body_bytes,
        body_read_timeout: Duration::from_secs(settings.body_read_timeout_secs),
        trusted_proxy_header: Some(settings.trusted_proxy_header.trim().to_owned())
            .filter(|h| !h.is_empty()),
        trusted_proxy_hops: settings.trusted_proxy_hops,
        registration_enabled: settings.registration_enabled(),
        docs_enabled: settings.docs_enabled(),
        demo_page_enabled: settings.demo_page_enabled(),
        allowed_hosts: server::allowed_hosts(settings),
        jwt_issuer: settings.jwt_issuer.clone(),
        jwt_algorithm: settings.jwt_algorithm.name(),
        revocation_window_secs: revocation_window_secs(settings),
    }
}

/// The use cases on `adapters`, with the stores prepared for the profile: the HTTP state.
///
/// # Errors
/// When a store or the hasher fails while preparing.
pub async fn http_state(settings: &Settings, adapters: &Adapters) -> anyhow::Result<Arc<AppState>> {
    let cases = UseCases::new(settings, adapters);
    cases.prepare(settings.env).await?;
    Ok(cases.into_http_state(settings, adapters))
}

fn housekeeping(settings: &Settings, a: &Adapters) -> Housekeeping {
    Housekeeping {
        sessions: a.sessions.clone(),
        attempts: a.attempts.clone(),
        clock: a.clock.clone(),
        every: Duration::from_secs(settings.session_purge_interval_secs),
        batch: settings.session_purge_batch,
        audit: a.audit.as_ref().map(|t| t.log()),
        audit_retention_secs: settings.audit_retention_days.saturating_mul(86_400),
    }
}

/// The service bound to its socket.
pub struct Application {
    listener: tokio::net::TcpListener,
    options: server::ServeOptions,
    port: u16,
    state: Arc<AppState>,
    housekeeping: Housekeeping,
    key_lifecycle: Option<Arc<KeyLifecycle>>,
    revocations: Arc<dyn RevocationFeed>,
    revocation_window_secs: u64,
    purge_every: Duration,
    webhooks: Option<Arc<Webhooks>>,
    metrics: Option<metrics::MetricsServer>,
    audit: Option<Arc<AuditTrail>>,
}

impl Application {
    /// Wires `adapters`, prepares the stores for the profile and binds `HOST:PORT` (port 0
    /// picks a free one).
    ///
    /// # Errors
    /// When the address cannot be bound or a store fails while preparing.
    pub async fn build(settings: &Settings, adapters: &Adapters) -> anyhow::Result<Self> {
        let state = http_state(settings, adapters).await?;
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let port = listener.local_addr().map_or(settings.port, |a| a.port());
        let metrics = metrics::MetricsServer::bind(settings, adapters).await?;
        Ok(Self {
            listener,
            options: server::ServeOptions::from_settings(settings),
            port,
            state,
            housekeeping: housekeeping(settings, adapters),
            key_lifecycle: adapters.key_lifecycle.clone(),
            revocations: adapters.revocations.clone(),
            revocation_window_secs: revocation_window_secs(settings),
            purge_every: Duration::from_secs(settings.session_purge_interval_secs),
            webhooks: adapters.webhooks.clone(),
            metrics,
            audit: adapters.audit.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// This instance's revocation streams (ended at shutdown; a test ends them to stand for
    /// a stopped process, whose open connections an aborted task would leave running).
    pub fn revocation_streams(&self) -> Arc<RevocationHub> {
        self.state.revocation_stream.clone()
    }

    /// The port `/metrics` is served on, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().and_then(metrics::MetricsServer::port)
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests (up to 10 s).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.housekeeping.spawn();
        if let Some(lifecycle) = self.key_lifecycle {
            lifecycle.spawn();
        }
        let (feed, window, every) = (
            self.revocations.clone(),
            self.revocation_window_secs,
            self.purge_every,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = feed.purge_revocations(window).await {
                    tracing::warn!(error = %e, "revocation feed not purged");
                }
            }
        });
        let webhooks = match &self.webhooks {
            Some(w) => Some(w.start().map_err(std::io::Error::other)?),
            None => None,
        };
        let streams = self.state.revocation_stream.clone();
        let signal = async move {
            shutdown_signal().await;
            // Open revocation streams end now, so they do not hold the grace period.
            streams.close();
        };
        let mut app = build_app(self.state).map_to_response().boxed();
        let mut metrics = Vec::new();
        if let Some(m) = self.metrics {
            app = m.instrument(app);
            metrics = m.spawn();
        }
        let served = server::serve(self.listener, app, self.options, signal).await;
        metrics.iter().for_each(JoinHandle::abort);
        if let (Some(w), Some(tasks)) = (&self.webhooks, webhooks) {
            // Events of the last requests still queued go to the outbox (delivered by the
            // next start, or another instance), not lost with the process.
            w.stop(tasks).await;
        }
        if let Some(audit) = &self.audit {
            audit.close().await;
        }
        served
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The login throttle on Redis at `url`; one that cannot be set up answers as an outage.
fn redis_throttle(
    settings: &Settings,
    url: &Secret,
    clock: Arc<dyn Clock>,
) -> Arc<dyn LoginAttempts> {
    match RedisLoginAttempts::connect_lazy(
        url.expose(),
        &settings.redis_key_prefix,
        settings.throttle(),
        clock,
    ) {
        Ok(redis) => Arc::new(redis),
        Err(e) => {
            tracing::error!(error = %e, "the login throttle's Redis cannot be set up");
            Arc::new(UnusableRedis)
        }
    }
}

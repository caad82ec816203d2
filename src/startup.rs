//! Wiring: adapters into use cases, use cases into the HTTP app, the app onto a socket.
//! `main` and the tests call the same builder and differ only in the adapters they pass.

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use poem::Server;

use crate::adapters::inbound::http::{build_app, AppState, HttpSettings};
use crate::adapters::outbound::bcrypt_hasher::BcryptHasher;
use crate::adapters::outbound::clock::SystemClock;
use crate::adapters::outbound::db::{Database, PoolSettings};
use crate::adapters::outbound::jose_issuer::{IssuerConfig, JoseTokenIssuer};
use crate::adapters::outbound::memory::{InMemoryRefreshStore, InMemoryUserRepo};
use crate::adapters::outbound::memory_throttle::InMemoryLoginAttempts;
use crate::adapters::outbound::verified_cache::{self, VerifiedCache};
use crate::app::{Login, Logout, Me, Refresh, Register, SetDisabled, TokenPolicy};
use crate::config::{Profile, Secret, Settings};
use crate::domain::{Email, Password, RegisterError};
use crate::ports::{Clock, PasswordHasher, RefreshStore, TokenIssuer, UserRepo};

/// The demo account of the `dev` profile (kept from the FastAPI project).
pub const DEMO_EMAIL: &str = "jywan@test.com";
pub const DEMO_PASSWORD: &str = "test";

/// One implementation of every port.
#[derive(Clone)]
pub struct Adapters {
    pub users: Arc<dyn UserRepo>,
    pub sessions: Arc<dyn RefreshStore>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub clock: Arc<dyn Clock>,
}

impl Adapters {
    /// The zero-setup default: in-memory stores, bcrypt, josekit and the system clock.
    ///
    /// # Errors
    /// When the token or hashing settings are unusable.
    pub fn in_memory(settings: &Settings) -> anyhow::Result<Self> {
        let users = InMemoryUserRepo::new();
        let sessions = InMemoryRefreshStore::new(&users);
        Self::with_stores(settings, Arc::new(users), Arc::new(sessions))
    }

    /// The stores `DATABASE_URL` selects (migrated first unless `RUN_MIGRATIONS` is off), or
    /// the in-memory ones without it; bcrypt, josekit and the system clock.
    ///
    /// # Errors
    /// One line when the database cannot be reached, its migration fails or its schema is
    /// behind this binary; never the URL's password.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match open_database(settings).await? {
            Some(db) => Self::with_stores(settings, db.users(), db.sessions()),
            None => {
                tracing::info!("using the in-memory stores: nothing survives a restart");
                Self::in_memory(settings)
            }
        }
    }

    /// These stores with bcrypt, josekit and the system clock.
    ///
    /// # Errors
    /// When the token or hashing settings are unusable.
    pub fn with_stores(
        settings: &Settings,
        users: Arc<dyn UserRepo>,
        sessions: Arc<dyn RefreshStore>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            users,
            sessions,
            hasher: Arc::new(BcryptHasher::new(
                settings.bcrypt_cost,
                settings.login_concurrency(),
            )?),
            issuer: token_issuer(settings)?,
            clock: Arc::new(SystemClock),
        })
    }
}

/// The pool settings for this configuration.
pub fn pool_settings(settings: &Settings) -> PoolSettings {
    PoolSettings {
        max_connections: settings.database_max_connections,
        ..PoolSettings::default()
    }
}

/// Connects to the database `DATABASE_URL` names, if any, and migrates it unless
/// `RUN_MIGRATIONS` is off (then checks that nothing is pending).
///
/// # Errors
/// One line when the database cannot be reached, its migration fails or its schema is behind
/// this binary; never the URL's password.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Option<Database>> {
    let Some(url) = settings.database_url.as_ref() else {
        return Ok(None);
    };
    let db = Database::connect(url.expose(), pool_settings(settings)).await?;
    if settings.run_migrations {
        db.migrate().await?;
    } else {
        let pending = db.pending_migrations().await?;
        if pending > 0 {
            anyhow::bail!(
                "the schema of {} is {pending} migration(s) behind this binary: run `jwt-auth \
                 migrate` or set RUN_MIGRATIONS=true",
                db.describe()
            );
        }
    }
    tracing::info!(database = db.describe(), "using the database store");
    Ok(Some(db))
}

/// The josekit issuer for these settings, behind the verified-token cache.
///
/// # Errors
/// When a secret is too short for the algorithm.
pub fn token_issuer(settings: &Settings) -> anyhow::Result<Arc<dyn TokenIssuer>> {
    let (secret, generated) = settings.signing_secret();
    if generated {
        tracing::warn!(
            "JWT_SECRET_KEY is missing, a placeholder or too short: using a random secret for this \
             process (dev only; tokens will not survive a restart)"
        );
    }
    let issuer = JoseTokenIssuer::new(IssuerConfig {
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
    Ok(Arc::new(VerifiedCache::new(
        Arc::new(issuer),
        settings.jwt_leeway_secs,
        verified_cache::DEFAULT_ENTRIES,
    )))
}

/// Use cases and edge settings, ready for `build_app`.
pub fn build_state(settings: &Settings, a: &Adapters) -> Arc<AppState> {
    let policy = TokenPolicy {
        access_ttl_secs: settings.access_token_expires_min * 60,
        session_ttl_secs: settings.refresh_token_expires_days * 86_400,
    };
    let throttle = Arc::new(InMemoryLoginAttempts::new(
        settings.throttle(),
        a.clock.clone(),
    ));
    Arc::new(AppState {
        login: Login {
            users: a.users.clone(),
            hasher: a.hasher.clone(),
            issuer: a.issuer.clone(),
            sessions: a.sessions.clone(),
            clock: a.clock.clone(),
            throttle,
            policy,
        },
        refresh: Refresh {
            issuer: a.issuer.clone(),
            sessions: a.sessions.clone(),
            clock: a.clock.clone(),
            policy,
        },
        logout: Logout {
            sessions: a.sessions.clone(),
        },
        me: Me {
            issuer: a.issuer.clone(),
            sessions: a.sessions.clone(),
            clock: a.clock.clone(),
        },
        register: register(a),
        sessions: a.sessions.clone(),
        clock: a.clock.clone(),
        settings: HttpSettings {
            app_name: settings.app_name.clone(),
            cookie_secure: settings.cookie_secure(),
            allowed_origins: settings.allowed_origins(),
            public_url: settings.public_url.clone(),
            max_body_bytes: settings.max_body_bytes,
            trusted_proxy_header: Some(settings.trusted_proxy_header.trim().to_owned())
                .filter(|h| !h.is_empty()),
            registration_enabled: settings.registration_enabled(),
        },
    })
}

/// The `Register` use case on these adapters (`/auth/register`, `user add`, the demo seed).
pub fn register(a: &Adapters) -> Register {
    Register {
        users: a.users.clone(),
        hasher: a.hasher.clone(),
        clock: a.clock.clone(),
    }
}

/// The `SetDisabled` use case on these adapters (`user disable`, `user enable`).
pub fn set_disabled(a: &Adapters) -> SetDisabled {
    SetDisabled {
        users: a.users.clone(),
        sessions: a.sessions.clone(),
    }
}

/// Creates the `dev` demo user unless it exists.
///
/// # Errors
/// When the store or the hasher fails.
pub async fn seed_demo_user(a: &Adapters) -> anyhow::Result<()> {
    let email = Email::parse(DEMO_EMAIL).map_err(anyhow::Error::msg)?;
    let password = Password::parse(DEMO_PASSWORD.into()).map_err(anyhow::Error::msg)?;
    match register(a).execute(email, &password).await {
        Ok(_) | Err(RegisterError::EmailTaken) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The service bound to its socket.
pub struct Application {
    acceptor: poem::listener::BoxAcceptor,
    port: u16,
    state: Arc<AppState>,
    settings: Settings,
}

impl Application {
    /// Binds `HOST:PORT` (port 0 picks a free one) and wires `adapters`; seeds the demo user
    /// in `dev`.
    ///
    /// # Errors
    /// When the address cannot be bound or a store fails while seeding.
    pub async fn build(settings: Settings, adapters: Adapters) -> anyhow::Result<Self> {
        if settings.env == Profile::Dev {
            seed_demo_user(&adapters).await?;
        }
        let state = build_state(&settings, &adapters);
        let addr = format!("{}:{}", settings.host, settings.port);
        let acceptor = TcpListener::bind(addr.clone())
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(std::net::SocketAddr::port))
            .unwrap_or(settings.port);
        Ok(Self {
            acceptor: acceptor.boxed(),
            port,
            state,
            settings,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests (up to 10 s).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        spawn_sweeper(&self.settings, &self.state);
        let app = build_app(self.state);
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown_signal(), Some(Duration::from_secs(10)))
            .await
    }
}

/// Forgets ended and revoked sessions and idle throttle counters, at a bounded cost per run.
fn spawn_sweeper(settings: &Settings, state: &Arc<AppState>) {
    let every = Duration::from_secs(settings.session_purge_interval_secs.max(1));
    let batch = settings.session_purge_batch.max(1);
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match state.sessions.purge(state.clock.now(), batch).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "ended sessions purged"),
                Err(e) => tracing::warn!(error = %e, "session purge failed"),
            }
            if let Err(e) = state.login.throttle.sweep().await {
                tracing::warn!(error = %e, "throttle sweep failed");
            }
        }
    });
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

//! Settings: `config/default.toml` (built in, then the file on disk if present), then a `.env`
//! file, then the environment. The FastAPI project's variable names work unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use serde::Deserialize;

use crate::adapters::outbound::password_formats::{
    Policy, MAX_ARGON2_ITERATIONS, MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_PARALLELISM, MAX_BCRYPT_COST,
    MIN_BCRYPT_COST,
};
use crate::app::ThrottleSettings;
use crate::domain::{EventKind, SigningAlgorithm};

const BUILT_IN_DEFAULTS: &str = include_str!("../config/default.toml");

/// Argon2 memory bounds: a floor for tests and small machines, and OWASP's lowest
/// recommended setting (7 MiB with 5 iterations) in `prod`.
const MIN_ARGON2_MEMORY_KIB: u32 = 1024;
const MIN_PROD_ARGON2_MEMORY_KIB: u32 = 7168;

/// The longest refresh grace window accepted: enough for tabs racing on a slow network, short
/// enough that a replay long after a rotation is still caught as reuse.
const MAX_REUSE_GRACE_SECS: u64 = 60;

/// Every key the service reads, in its environment spelling. Others are ignored.
pub const KEYS: &[&str] = &[
    "APP_NAME",
    "ENV",
    "HOST",
    "PORT",
    "PUBLIC_URL",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "RUN_MIGRATIONS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_ALGORITHM",
    "JWT_SECRET_KEY",
    "JWT_PREVIOUS_SECRET_KEY",
    "JWT_LEEWAY_SECS",
    "ACCESS_TOKEN_EXPIRES_MIN",
    "REFRESH_TOKEN_EXPIRES_DAYS",
    "BCRYPT_COST",
    "PASSWORD_HASH",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "LOGIN_CONCURRENCY",
    "COOKIE_SECURE",
    "ALLOWED_ORIGINS",
    "MAX_BODY_BYTES",
    "REGISTRATION_ENABLED",
    "LOGIN_THROTTLE_ENABLED",
    "LOGIN_MAX_FAILURES",
    "LOGIN_CLIENT_MAX_FAILURES",
    "LOGIN_CLIENT_MAX_PER_MINUTE",
    "LOGIN_WINDOW_SECS",
    "LOGIN_LOCKOUT_SECS",
    "LOGIN_MAX_LOCKOUT_SECS",
    "TRUSTED_PROXY_HEADER",
    "SESSION_PURGE_INTERVAL_SECS",
    "SESSION_PURGE_BATCH",
    "LOG_FORMAT",
    "LOGIN_ACCOUNT_MAX_FAILURES",
    "LOGIN_SLOWED_MAX_PER_MINUTE",
    "REGISTER_CLIENT_MAX_PER_MINUTE",
    "TRUSTED_PROXY_HOPS",
    "ALLOWED_HOSTS",
    "HEADER_READ_TIMEOUT_SECS",
    "BODY_READ_TIMEOUT_SECS",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_CLIENT",
    "SEND_TIMEOUT_SECS",
    "DOCS_ENABLED",
    "HASH_QUEUE_MAX",
    "REVOCATION_STREAM_MAX",
    "REFRESH_REUSE_GRACE_SECS",
    "REFRESH_IDLE_TIMEOUT_DAYS",
    "MAX_SESSIONS_PER_USER",
    "DEMO_PAGE_ENABLED",
    "JWT_PRIVATE_KEY_FILE",
    "JWT_PREVIOUS_SECRET_KEY_UNTIL",
    "JWT_KEY_ENCRYPTION_KEY",
    "JWT_KEY_ROTATION_DAYS",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_EVENTS",
    "WEBHOOK_TIMEOUT_SECS",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_MAX_AGE_HOURS",
    "WEBHOOK_RETRY_BASE_MS",
    "WEBHOOK_RETRY_MAX_SECS",
    "WEBHOOK_DEAD_RETENTION_DAYS",
    "THROTTLE_STORE_FAILURE",
    "METRICS_ADDR",
    "AUDIT_ENABLED",
    "AUDIT_RETENTION_DAYS",
    "SMTP_URL",
    "MAIL_FROM",
    "MAIL_OUTBOX_DIR",
    "PASSWORD_RESET_URL",
    "PASSWORD_RESET_EXPIRES_MIN",
];

/// The security events sent to `WEBHOOK_URL` unless `WEBHOOK_EVENTS` says otherwise.
pub const DEFAULT_WEBHOOK_EVENTS: &str =
    "reuse_detected,account_locked,password_changed,password_reset,new_login";

/// `dev` (demo user, plain-http cookie) or `prod` (strict secret checks, `Secure` cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Dev,
    Prod,
}

/// How log lines are written: human-readable text, or one JSON object a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The algorithm of new password hashes (stored ones of every supported kind keep verifying).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordHashAlgorithm {
    /// bcrypt over an HMAC-SHA256 pre-hash, at `BCRYPT_COST`.
    Bcrypt,
    /// Argon2id with `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS` and `ARGON2_PARALLELISM`.
    Argon2id,
}

/// What the login throttle does when its store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailure {
    /// Refuse the attempt (the login answers 503): no guess goes uncounted.
    Closed,
    /// Admit the attempt uncounted, with a warning: logins keep working through an outage.
    Open,
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A point in time given as Unix seconds or as RFC 3339 UTC (`2026-12-31T00:00:00Z`, or a
/// date alone for its midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime(pub u64);

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UtcTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Unix seconds or an RFC 3339 UTC time such as 2026-12-31T00:00:00Z")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UtcTime, E> {
                Ok(UtcTime(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UtcTime, E> {
                u64::try_from(v)
                    .map(UtcTime)
                    .map_err(|_| E::custom("a time before 1970"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UtcTime, E> {
                parse_utc(v.trim())
                    .map(UtcTime)
                    .ok_or_else(|| E::custom("expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds (Howard Hinnant's days-from-civil).
fn parse_utc(s: &str) -> Option<u64> {
    if let Ok(secs) = s.parse::<u64>() {
        return Some(secs);
    }
    let (date, time) = match s.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t.strip_suffix(['Z', 'z'])?)),
        None => (s, None),
    };
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (h, min, sec) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let mut t = t.splitn(3, ':').map(|p| p.parse::<i64>().ok());
            (t.next()??, t.next()??, t.next()??)
        }
    };
    if h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + sec).ok()
}

/// The whole configuration, as read.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub app_name: String,
    pub env: Profile,
    pub host: String,
    pub port: u16,
    pub public_url: Option<String>,
    /// `postgres://…`, `postgresql://…` or `sqlite://…`; absent: the in-memory stores.
    pub database_url: Option<Secret>,
    /// Pool size per process (each instance opens up to this many connections).
    pub database_max_connections: u32,
    /// Apply pending migrations at start-up; off: run `jwt-auth migrate` before deploying.
    pub run_migrations: bool,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_algorithm: SigningAlgorithm,
    pub jwt_secret_key: Option<Secret>,
    pub jwt_previous_secret_key: Option<Secret>,
    /// When `JWT_PREVIOUS_SECRET_KEY` stops verifying (RFC 3339 UTC or Unix seconds); required
    /// in `prod` with a previous secret, and in `dev` it defaults to one access-token lifetime
    /// after start-up.
    pub jwt_previous_secret_key_until: Option<UtcTime>,
    /// Under EdDSA, ES256 or RS256: a PEM private key file, or a folder of them (see
    /// `key_files`); unset: the service generates and keeps its keys.
    pub jwt_private_key_file: Option<String>,
    /// Seals generated private keys in the database (at least 32 bytes); required in `prod`
    /// for generated keys on a database.
    pub jwt_key_encryption_key: Option<Secret>,
    /// Rotate generated keys after this many days; 0: only with `jwt-auth keys rotate`.
    pub jwt_key_rotation_days: u64,
    pub jwt_leeway_secs: u64,
    pub access_token_expires_min: u64,
    pub refresh_token_expires_days: u64,
    pub bcrypt_cost: u32,
    /// How new password hashes are made; a login with a hash made otherwise replaces it.
    pub password_hash: PasswordHashAlgorithm,
    /// Argon2id memory in KiB (OWASP: 19456 with 2 iterations).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Concurrent bcrypt runs; 0 means one per core.
    pub login_concurrency: usize,
    /// `Secure` on the refresh cookie; unset means on in `prod`, off in `dev`.
    pub cookie_secure: Option<bool>,
    /// Comma-separated origins allowed to call with credentials.
    pub allowed_origins: String,
    pub max_body_bytes: usize,
    /// `POST /auth/register`; unset means on in `dev`, off in `prod`.
    pub registration_enabled: Option<bool>,
    pub login_throttle_enabled: bool,
    /// Failures of one (account, client) pair in the window before that pair locks.
    pub login_max_failures: u32,
    /// Failures against one account from all clients before every client is slowed on it.
    pub login_account_max_failures: u32,
    /// Failures from one client before it is slowed.
    pub login_client_max_failures: u32,
    pub login_client_max_per_minute: u32,
    /// Attempts a minute left to a slowed client or account.
    pub login_slowed_max_per_minute: u32,
    /// Sign-ups a minute from one client.
    pub register_client_max_per_minute: u32,
    pub login_window_secs: u64,
    pub login_lockout_secs: u64,
    pub login_max_lockout_secs: u64,
    /// A header such as `X-Forwarded-For` to take the client address from; empty: the socket.
    pub trusted_proxy_header: String,
    /// Our proxies in front of the service: the header entry this many from the right counts.
    pub trusted_proxy_hops: usize,
    pub session_purge_interval_secs: u64,
    pub session_purge_batch: usize,
    pub log_format: LogFormat,
    /// Comma-separated `Host` values (`name` for any port, `name:port` for one) answered
    /// besides the `PUBLIC_URL`'s host and, when bound to loopback, the loopback names.
    pub allowed_hosts: String,
    /// A connection must finish each request's headers within this time, or it is closed.
    pub header_read_timeout_secs: u64,
    /// A declared body must arrive within this time, or the answer is 408.
    pub body_read_timeout_secs: u64,
    /// Connections served at once; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one socket address may hold at once; only without a trusted proxy, whose
    /// connections all share its address.
    pub max_connections_per_client: usize,
    /// A response write that makes no progress for this long closes the connection (a
    /// client that never reads cannot keep its slot).
    pub send_timeout_secs: u64,
    /// Swagger UI at `/docs`; unset means on in `dev`, off in `prod`.
    pub docs_enabled: Option<bool>,
    /// The example browser client at `/demo`; unset means on in `dev`, off in `prod`.
    pub demo_page_enabled: Option<bool>,
    /// Password hashes waiting for a hashing thread; 0 means 64 per thread. A full queue
    /// answers 503 at once.
    pub hash_queue_max: usize,
    /// `/revocations/stream` connections open at once on this process; one more gets 503.
    pub revocation_stream_max: usize,
    /// A refresh token presented again this long after its rotation, while its successor is
    /// still current, gets that same successor (concurrent tabs); 0: strict single use.
    pub refresh_reuse_grace_secs: u64,
    /// A session not refreshed for this many days ends; unset: only the absolute end.
    pub refresh_idle_timeout_days: Option<u64>,
    /// Live sessions one account may have; a login beyond it ends the least recently used.
    pub max_sessions_per_user: usize,
    /// Where security events are POSTed; unset: no webhooks. A `Secret`: its query may carry
    /// the receiver's token.
    pub webhook_url: Option<Secret>,
    /// `whsec_` and the base64 of 24 to 64 random bytes (Standard Webhooks); required with
    /// `WEBHOOK_URL`.
    pub webhook_secret: Option<Secret>,
    /// Comma-separated event types sent (see `DEFAULT_WEBHOOK_EVENTS`).
    pub webhook_events: String,
    /// One delivery (connect, send, answer) must finish within this time.
    pub webhook_timeout_secs: u64,
    /// Deliveries tried before an event is dead-lettered.
    pub webhook_max_attempts: u32,
    /// An event not delivered within this age is dead-lettered.
    pub webhook_max_age_hours: u64,
    /// The first retry waits about this long; each next one twice as long.
    pub webhook_retry_base_ms: u64,
    /// The longest wait between two attempts.
    pub webhook_retry_max_secs: u64,
    /// Dead-lettered events are deleted this many days after they were given up on.
    pub webhook_dead_retention_days: u64,
    /// What the login throttle does when its shared store (PostgreSQL or Redis) cannot be
    /// reached.
    pub throttle_store_failure: StoreFailure,
    /// `redis://…` or `redis+unix://…`: the login throttle keeps its counters there (over
    /// PostgreSQL's). A `Secret`: it may carry a password.
    pub redis_url: Option<Secret>,
    /// Put before every throttle key, so several deployments can share one Redis.
    pub redis_key_prefix: String,
    /// Where `GET /metrics` (Prometheus) is served, on a listener of its own; unset: nowhere.
    pub metrics_addr: Option<String>,
    /// Security events kept in the audit trail (the database's `audit_events`, or a ring of
    /// the last 10,000 in memory without a database).
    pub audit_enabled: bool,
    /// Audit rows older than this many days are purged by the housekeeping task; 0: kept.
    pub audit_retention_days: u64,
    /// Where reset and verification mail goes: `smtp://relay:25`, `smtps://host:465` or
    /// `smtp://host:587?tls=required`. A `Secret`: it may carry a password.
    pub smtp_url: Option<Secret>,
    /// The sender of reset mail; required with a mailer.
    pub mail_from: Option<String>,
    /// `dev` only: reset and verification mail is written to this folder as `.eml` files instead of sent.
    pub mail_outbox_dir: Option<String>,
    /// The page a reset link opens; the token is put in its fragment (`#token=`). Required
    /// with a mailer.
    pub password_reset_url: Option<String>,
    /// How long a reset token stays usable.
    pub password_reset_expires_min: u64,
    /// The page a verification link opens; the token is put in its fragment (`#token=`).
    /// Unset: no verification mail (sign-ups stay unverified until a password reset).
    pub email_verification_url: Option<String>,
    /// How long a verification token stays usable.
    pub email_verification_expires_hours: u64,
    /// Login refuses an unverified account's right password (`403 email_not_verified`).
    pub require_email_verification: bool,
}

/// A configuration problem, said in one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Defaults, `config/default.toml`, `.env` in the working directory, then the environment.
    ///
    /// # Errors
    /// A `ConfigError` naming the key and the problem.
    pub fn load() -> Result<Self, ConfigError> {
        let dotenv = read_dotenv(Path::new(".env"))?;
        Self::from_figment(
            Figment::new()
                .merge(Toml::string(BUILT_IN_DEFAULTS))
                .merge(Toml::file("config/default.toml"))
                .merge(Serialized::defaults(dotenv))
                .merge(Env::raw().only(KEYS)),
        )
    }

    /// The built-in defaults overridden by `pairs` (environment spelling), ignoring the real
    /// environment; for tests.
    ///
    /// # Errors
    /// A `ConfigError` naming the key and the problem.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let map: BTreeMap<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), parse_value(v)))
            .collect();
        Self::from_figment(
            Figment::new()
                .merge(Toml::string(BUILT_IN_DEFAULTS))
                .merge(Serialized::defaults(map)),
        )
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Self = figment.extract().map_err(|e| {
            let key = e
                .path
                .last()
                .map_or_else(|| "?".to_owned(), |k| k.to_ascii_uppercase());
            ConfigError(format!("{key}: {}", e.kind))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.access_token_expires_min == 0 || self.access_token_expires_min > 24 * 60 {
            return bad("ACCESS_TOKEN_EXPIRES_MIN", "must be between 1 and 1440");
        }
        if self.refresh_token_expires_days == 0 || self.refresh_token_expires_days > 365 {
            return bad("REFRESH_TOKEN_EXPIRES_DAYS", "must be between 1 and 365");
        }
        // A long window would hand a stolen, already rotated token a live successor.
        if self.refresh_reuse_grace_secs > MAX_REUSE_GRACE_SECS {
            return bad("REFRESH_REUSE_GRACE_SECS", "must be between 0 and 60");
        }
        if self
            .refresh_idle_timeout_days
            .is_some_and(|d| d == 0 || d > 365)
        {
            return bad("REFRESH_IDLE_TIMEOUT_DAYS", "must be between 1 and 365");
        }
        if !(1..=1000).contains(&self.max_sessions_per_user) {
            return bad("MAX_SESSIONS_PER_USER", "must be between 1 and 1000");
        }
        // Stored hashes beyond these limits are refused at login, so new ones stay within.
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&self.bcrypt_cost) {
            return bad("BCRYPT_COST", "must be between 4 and 16");
        }
        if self.env == Profile::Prod && self.bcrypt_cost < 10 {
            return bad("BCRYPT_COST", "must be at least 10 in prod");
        }
        if !(MIN_ARGON2_MEMORY_KIB..=MAX_ARGON2_MEMORY_KIB).contains(&self.argon2_memory_kib) {
            return bad("ARGON2_MEMORY_KIB", "must be between 1024 and 262144");
        }
        if self.env == Profile::Prod && self.argon2_memory_kib < MIN_PROD_ARGON2_MEMORY_KIB {
            return bad(
                "ARGON2_MEMORY_KIB",
                "must be at least 7168 in prod (OWASP's lowest)",
            );
        }
        if !(1..=MAX_ARGON2_ITERATIONS).contains(&self.argon2_iterations) {
            return bad("ARGON2_ITERATIONS", "must be between 1 and 10");
        }
        if !(1..=MAX_ARGON2_PARALLELISM).contains(&self.argon2_parallelism) {
            return bad("ARGON2_PARALLELISM", "must be between 1 and 16");
        }
        if let Err(e) = self.hash_policy().check() {
            return bad("ARGON2_MEMORY_KIB", &e);
        }
        if self.max_body_bytes < 256 {
            return bad("MAX_BODY_BYTES", "must be at least 256");
        }
        if let Some(url) = &self.database_url {
            if !has_database_scheme(url.expose()) {
                // Never echo the URL: it may hold a password.
                return bad(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite://",
                );
            }
        }
        if self.database_max_connections == 0 {
            return bad("DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }
        self.validate_defences()?;
        self.validate_webhooks()?;
        self.validate_redis()?;
        if let Err(why) = self.metrics_socket() {
            return bad("METRICS_ADDR", &why);
        }
        if self.env == Profile::Prod && !self.jwt_algorithm.is_asymmetric() {
            self.strong_secret("JWT_SECRET_KEY", self.jwt_secret_key.as_ref())?;
            if self.jwt_previous_secret_key.is_some() {
                self.strong_secret(
                    "JWT_PREVIOUS_SECRET_KEY",
                    self.jwt_previous_secret_key.as_ref(),
                )?;
                if self.jwt_previous_secret_key_until.is_none() {
                    return bad(
                        "JWT_PREVIOUS_SECRET_KEY_UNTIL",
                        "is required in prod with JWT_PREVIOUS_SECRET_KEY, so an old secret \
                         does not stay valid for ever (e.g. the switch time plus \
                         ACCESS_TOKEN_EXPIRES_MIN)",
                    );
                }
            }
        }
        // Instances on one database must derive the same refresh-token successors.
        if self.env == Profile::Prod
            && self.jwt_algorithm.is_asymmetric()
            && self.database_url.is_some()
            && self.successor_secret_source().is_none()
        {
            return bad(
                "JWT_SECRET_KEY",
                "is required in prod with a database (or JWT_KEY_ENCRYPTION_KEY): every \
                 instance derives the refresh-token successors from it",
            );
        }
        // Under a key pair an empty or placeholder secret is no secret (successors then come
        // from the key-encryption key); a real one keys the successors and must be strong.
        if self.env == Profile::Prod && self.jwt_algorithm.is_asymmetric() {
            let given = self
                .jwt_secret_key
                .as_ref()
                .filter(|s| !s.expose().trim().is_empty() && !is_placeholder(s.expose()));
            if given.is_some() {
                self.strong_secret("JWT_SECRET_KEY", given)?;
            }
        }
        if self.jwt_key_rotation_days > 365 {
            return bad("JWT_KEY_ROTATION_DAYS", "must be between 0 (off) and 365");
        }
        if let Some(kek) = &self.jwt_key_encryption_key {
            if kek.expose().len() < 32 || estimated_entropy_bits(kek.expose()) < MIN_SECRET_BITS {
                return bad(
                    "JWT_KEY_ENCRYPTION_KEY",
                    "must be at least 32 random bytes (e.g. `openssl rand -base64 48`)",
                );
            }
        } else if self.env == Profile::Prod && self.generates_keys() && self.database_url.is_some()
        {
            return bad(
                "JWT_KEY_ENCRYPTION_KEY",
                "is required in prod to store generated signing keys in the database \
                 (or set JWT_PRIVATE_KEY_FILE)",
            );
        }
        if self.jwt_private_key_file.is_some() && !self.jwt_algorithm.is_asymmetric() {
            return bad(
                "JWT_PRIVATE_KEY_FILE",
                "is for JWT_ALGORITHM EdDSA, ES256 or RS256; HS* sign with JWT_SECRET_KEY",
            );
        }
        // Without it discovery would advertise the request's origin, which behind a TLS
        // proxy is http://: verifiers would fetch the public keys in clear.
        if self.env == Profile::Prod
            && self.jwt_algorithm.is_asymmetric()
            && !self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://") && u.len() > "https://".len())
        {
            return bad(
                "PUBLIC_URL",
                "is required in prod under a key pair (EdDSA, ES256, RS256) and must be \
                 https://host: discovery advertises the issuer and jwks_uri from it",
            );
        }
        for origin in self.allowed_origins() {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return bad(
                    "ALLOWED_ORIGINS",
                    "each origin must be scheme://host[:port] without a path",
                );
            }
        }
        Ok(())
    }

    /// Values that would switch a defence off without saying so are refused: a zero window or
    /// lock would never lock, an absurd one would lock for ever or overflow, a long leeway
    /// keeps expired tokens alive, a purge that never runs keeps revoked sessions for ever.
    fn validate_defences(&self) -> Result<(), ConfigError> {
        const MONTH: u64 = 30 * 86_400;
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.login_throttle_enabled {
            for (key, value) in [
                ("LOGIN_MAX_FAILURES", self.login_max_failures),
                ("LOGIN_CLIENT_MAX_FAILURES", self.login_client_max_failures),
                (
                    "LOGIN_CLIENT_MAX_PER_MINUTE",
                    self.login_client_max_per_minute,
                ),
                (
                    "LOGIN_SLOWED_MAX_PER_MINUTE",
                    self.login_slowed_max_per_minute,
                ),
            ] {
                if value == 0 {
                    return bad(
                        key,
                        "must be at least 1 (LOGIN_THROTTLE_ENABLED=false turns the throttle off)",
                    );
                }
            }
            for (key, value) in [
                ("LOGIN_WINDOW_SECS", self.login_window_secs),
                ("LOGIN_LOCKOUT_SECS", self.login_lockout_secs),
                ("LOGIN_MAX_LOCKOUT_SECS", self.login_max_lockout_secs),
            ] {
                if value == 0 || value > MONTH {
                    return bad(key, "must be between 1 and 2592000 (30 days)");
                }
            }
            if self.login_max_lockout_secs < self.login_lockout_secs {
                return bad(
                    "LOGIN_MAX_LOCKOUT_SECS",
                    "must be at least LOGIN_LOCKOUT_SECS",
                );
            }
            // Below the pair limit the ceiling would slow every client before any pair locks:
            // the lockout-as-a-weapon the pair keys exist to prevent.
            if self.login_account_max_failures < self.login_max_failures {
                return bad(
                    "LOGIN_ACCOUNT_MAX_FAILURES",
                    "must be at least LOGIN_MAX_FAILURES",
                );
            }
        }
        // Not under LOGIN_THROTTLE_ENABLED: sign-ups are limited whether logins are or not.
        if self.register_client_max_per_minute == 0 {
            return bad("REGISTER_CLIENT_MAX_PER_MINUTE", "must be at least 1");
        }
        // 0 would name no entry; more proxies than this in a row is a misconfiguration.
        if !(1..=16).contains(&self.trusted_proxy_hops) {
            return bad("TRUSTED_PROXY_HOPS", "must be between 1 and 16");
        }
        if self.jwt_leeway_secs > 300 {
            return bad("JWT_LEEWAY_SECS", "must be at most 300");
        }
        if self.session_purge_interval_secs == 0 || self.session_purge_interval_secs > MONTH {
            return bad(
                "SESSION_PURGE_INTERVAL_SECS",
                "must be between 1 and 2592000",
            );
        }
        if self.audit_retention_days > 36_500 {
            return bad(
                "AUDIT_RETENTION_DAYS",
                "must be between 0 (forever) and 36500",
            );
        }
        self.validate_mail()?;
        if self.session_purge_batch == 0 {
            return bad("SESSION_PURGE_BATCH", "must be at least 1");
        }
        for (key, value) in [
            ("HEADER_READ_TIMEOUT_SECS", self.header_read_timeout_secs),
            ("BODY_READ_TIMEOUT_SECS", self.body_read_timeout_secs),
            ("SEND_TIMEOUT_SECS", self.send_timeout_secs),
        ] {
            if value == 0 || value > 300 {
                return bad(key, "must be between 1 and 300");
            }
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return bad("MAX_CONNECTIONS", "must be between 1 and 1000000");
        }
        if self.max_connections_per_client == 0 {
            return bad("MAX_CONNECTIONS_PER_CLIENT", "must be at least 1");
        }
        if !(1..=65_536).contains(&self.revocation_stream_max) {
            return bad("REVOCATION_STREAM_MAX", "must be between 1 and 65536");
        }
        if self.hash_queue_max > 65_536 {
            return bad(
                "HASH_QUEUE_MAX",
                "must be at most 65536 (0 means 64 per hashing thread)",
            );
        }
        for host in self.allowed_hosts() {
            if host.contains(['/', '@', ' ']) || host.starts_with(':') {
                return bad("ALLOWED_HOSTS", "each entry must be host or host:port");
            }
        }
        if self.env == Profile::Prod
            && !self.binds_loopback()
            && self.public_url.is_none()
            && self.allowed_hosts().is_empty()
        {
            return bad(
                "HOST",
                "binds beyond loopback in prod: set PUBLIC_URL or ALLOWED_HOSTS to the names \
                 clients use, so other Host names are refused",
            );
        }
        if self.env == Profile::Prod && self.cookie_secure == Some(false) {
            return bad(
                "COOKIE_SECURE",
                "cannot be false in prod: the refresh cookie would travel without TLS",
            );
        }
        Ok(())
    }

    /// With `WEBHOOK_URL`: an http(s) URL without credentials (https in prod unless the host
    /// is loopback), a strong `WEBHOOK_SECRET`, known event types and bounded retries.
    /// The metrics listener's address (`METRICS_ADDR`, e.g. `127.0.0.1:9100`); `None` when
    /// unset or empty.
    ///
    /// # Errors
    /// When it is not an IP address with a port.
    pub fn metrics_socket(&self) -> Result<Option<std::net::SocketAddr>, String> {
        match self.metrics_addr.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(addr) => addr
                .parse()
                .map(Some)
                .map_err(|_| "must be an IP address and port, e.g. 127.0.0.1:9100".to_owned()),
        }
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if let Err(why) = self.webhook_kinds() {
            return bad("WEBHOOK_EVENTS", &why);
        }
        if !(1..=60).contains(&self.webhook_timeout_secs) {
            return bad("WEBHOOK_TIMEOUT_SECS", "must be between 1 and 60");
        }
        if !(1..=100).contains(&self.webhook_max_attempts) {
            return bad("WEBHOOK_MAX_ATTEMPTS", "must be between 1 and 100");
        }
        if !(1..=720).contains(&self.webhook_max_age_hours) {
            return bad(
                "WEBHOOK_MAX_AGE_HOURS",
                "must be between 1 and 720 (30 days)",
            );
        }
        if !(1..=365).contains(&self.webhook_dead_retention_days) {
            return bad("WEBHOOK_DEAD_RETENTION_DAYS", "must be between 1 and 365");
        }
        if !(10..=3_600_000).contains(&self.webhook_retry_base_ms) {
            return bad("WEBHOOK_RETRY_BASE_MS", "must be between 10 and 3600000");
        }
        if self.webhook_retry_max_secs == 0
            || self.webhook_retry_max_secs > 86_400
            || self.webhook_retry_max_secs * 1000 < self.webhook_retry_base_ms
        {
            return bad(
                "WEBHOOK_RETRY_MAX_SECS",
                "must be between WEBHOOK_RETRY_BASE_MS and 86400",
            );
        }
        let Some(url) = self.webhook_url.as_ref().map(Secret::expose) else {
            return Ok(());
        };
        // Never echo the URL: its query may hold a token.
        let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
            return bad("WEBHOOK_URL", "is not a valid URL");
        };
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return bad(
                "WEBHOOK_URL",
                "must be an http:// or https:// URL with a host",
            );
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return bad(
                "WEBHOOK_URL",
                "must not carry credentials: receivers check the signature",
            );
        }
        let host = parsed.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if self.env == Profile::Prod && parsed.scheme() != "https" && !loopback {
            return bad(
                "WEBHOOK_URL",
                "must be https:// in prod (plain http only to a loopback receiver)",
            );
        }
        if let Err(why) = self.webhook_key() {
            return bad("WEBHOOK_SECRET", &why);
        }
        Ok(())
    }

    /// The event kinds `WEBHOOK_EVENTS` names.
    ///
    /// # Errors
    /// Why the list is unusable: empty, or an unknown name (the known ones are listed).
    pub fn webhook_kinds(&self) -> Result<std::collections::HashSet<EventKind>, String> {
        let mut kinds = std::collections::HashSet::new();
        for name in self.webhook_events.split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let Some(kind) = EventKind::parse(name) else {
                let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(format!("unknown event type (known: {})", known.join(", ")));
            };
            kinds.insert(kind);
        }
        if kinds.is_empty() {
            return Err("must name at least one event type".into());
        }
        Ok(kinds)
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if !(5..=1440).contains(&self.password_reset_expires_min) {
            return bad("PASSWORD_RESET_EXPIRES_MIN", "must be between 5 and 1440");
        }
        if !(1..=720).contains(&self.email_verification_expires_hours) {
            return bad(
                "EMAIL_VERIFICATION_EXPIRES_HOURS",
                "must be between 1 and 720",
            );
        }
        if self.env == Profile::Prod && self.mail_outbox_dir.is_some() {
            return bad("MAIL_OUTBOX_DIR", "is for dev only; set SMTP_URL in prod");
        }
        if self.smtp_url.is_some() && self.mail_outbox_dir.is_some() {
            return bad("MAIL_OUTBOX_DIR", "cannot be set together with SMTP_URL");
        }
        if self.smtp_url.is_none() && self.mail_outbox_dir.is_none() {
            if self.require_email_verification {
                return bad(
                    "REQUIRE_EMAIL_VERIFICATION",
                    "needs a mailer (SMTP_URL) and EMAIL_VERIFICATION_URL: nobody could verify",
                );
            }
            return Ok(());
        }
        let key = if self.smtp_url.is_some() {
            "SMTP_URL"
        } else {
            "MAIL_OUTBOX_DIR"
        };
        if self.mail_from.is_none() {
            return Err(ConfigError(format!("MAIL_FROM: is required with {key}")));
        }
        let Some(url) = self.password_reset_url.as_deref() else {
            return Err(ConfigError(format!(
                "PASSWORD_RESET_URL: is required with {key}"
            )));
        };
        self.check_link_page("PASSWORD_RESET_URL", url)?;
        self.validate_verification()
    }

    /// A page a mailed link opens: http(s), with a host and no fragment (the token goes
    /// there); https in prod.
    fn check_link_page(&self, key: &str, url: &str) -> Result<(), ConfigError> {
        let bad = |why: &str| Err(ConfigError(format!("{key}: {why}")));
        let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
            return bad("is not a valid URL");
        };
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || parsed.fragment().is_some()
        {
            return bad("must be an http(s) URL without a fragment (the token goes there)");
        }
        if self.env == Profile::Prod && parsed.scheme() != "https" {
            return bad("must be https in prod");
        }
        Ok(())
    }

    /// Called with a mailer configured.
    fn validate_verification(&self) -> Result<(), ConfigError> {
        match self.email_verification_url.as_deref() {
            Some(url) => self.check_link_page("EMAIL_VERIFICATION_URL", url),
            None if self.require_email_verification => Err(ConfigError(
                "EMAIL_VERIFICATION_URL: is required with REQUIRE_EMAIL_VERIFICATION".into(),
            )),
            None => Ok(()),
        }
    }

    /// The webhook signing key: `WEBHOOK_SECRET` decoded.
    ///
    /// # Errors
    /// Why the secret is unusable (never the secret itself).
    pub fn webhook_key(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let Some(secret) = self.webhook_secret.as_ref().map(Secret::expose) else {
            return Err("is required with WEBHOOK_URL".into());
        };
        let format = "must be whsec_ and the base64 of 24 to 64 random bytes (e.g. \
                      `echo whsec_$(openssl rand -base64 32)`)";
        let Some(encoded) = secret.trim().strip_prefix("whsec_") else {
            return Err(format.into());
        };
        let Ok(key) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return Err(format.into());
        };
        if !(24..=64).contains(&key.len()) {
            return Err(format.into());
        }
        if has_placeholder_words(encoded) || estimated_entropy_bits(encoded) < MIN_SECRET_BITS {
            return Err("looks guessable; use e.g. `echo whsec_$(openssl rand -base64 32)`".into());
        }
        Ok(key)
    }

    fn strong_secret(&self, key: &str, secret: Option<&Secret>) -> Result<(), ConfigError> {
        let Some(secret) = secret.map(Secret::expose) else {
            return Err(ConfigError(format!("{key}: is required in prod")));
        };
        if has_placeholder_words(secret) {
            return Err(ConfigError(format!(
                "{key}: is a placeholder; set a random secret"
            )));
        }
        let min = self.jwt_algorithm.min_key_bytes();
        if secret.len() < min {
            return Err(ConfigError(format!(
                "{key}: must be at least {min} bytes for {:?}",
                self.jwt_algorithm
            )));
        }
        if estimated_entropy_bits(secret) < MIN_SECRET_BITS {
            return Err(ConfigError(format!(
                "{key}: looks guessable (sequences, repeats or too few kinds of characters); \
                 use e.g. `openssl rand -base64 48`"
            )));
        }
        Ok(())
    }

    /// The signing secret to use. In `dev`, a missing, placeholder or short one is replaced by
    /// a random per-process secret (tokens then do not survive a restart); `prod` never gets
    /// here with one (see `validate`).
    pub fn signing_secret(&self) -> (Vec<u8>, bool) {
        match self.jwt_secret_key.as_ref().map(Secret::expose) {
            Some(s) if !is_placeholder(s) && s.len() >= self.jwt_algorithm.min_key_bytes() => {
                (s.as_bytes().to_vec(), false)
            }
            _ => {
                let mut random = vec![0u8; 64];
                getrandom::fill(&mut random).expect("the operating system CSPRNG is unavailable");
                (random, true)
            }
        }
    }

    /// The secret refresh-token successors are derived from: `JWT_SECRET_KEY` when it is
    /// usable, else `JWT_KEY_ENCRYPTION_KEY` (under EdDSA, ES256 or RS256 every instance of
    /// one database shares it); in `dev` without either, random for the process, as the
    /// signing secret then is. `prod` on a database never gets there without one (see
    /// `validate`).
    pub fn successor_secret(&self) -> Vec<u8> {
        self.successor_secret_source().map_or_else(
            || self.signing_secret().0,
            |s| s.expose().as_bytes().to_vec(),
        )
    }

    fn successor_secret_source(&self) -> Option<&Secret> {
        let usable = |s: &&Secret| !is_placeholder(s.expose()) && s.expose().len() >= 32;
        self.jwt_secret_key
            .as_ref()
            .filter(usable)
            .or_else(|| self.jwt_key_encryption_key.as_ref().filter(usable))
    }

    /// Whether the service generates and keeps its own signing keys (a key-pair algorithm
    /// without `JWT_PRIVATE_KEY_FILE`).
    pub fn generates_keys(&self) -> bool {
        self.jwt_algorithm.is_asymmetric() && self.jwt_private_key_file.is_none()
    }

    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `ALLOWED_HOSTS` as a list.
    pub fn allowed_hosts(&self) -> Vec<String> {
        self.allowed_hosts
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether `HOST` is a loopback name or address: only local clients reach the socket.
    pub fn binds_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Queued hashes allowed: `HASH_QUEUE_MAX`, or 64 per hashing thread.
    pub fn hash_queue_max(&self) -> usize {
        match self.hash_queue_max {
            0 => 64 * self.login_concurrency(),
            n => n,
        }
    }

    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure.unwrap_or(self.env == Profile::Prod)
    }

    pub fn docs_enabled(&self) -> bool {
        self.docs_enabled.unwrap_or(self.env == Profile::Dev)
    }

    pub fn demo_page_enabled(&self) -> bool {
        self.demo_page_enabled.unwrap_or(self.env == Profile::Dev)
    }

    pub fn registration_enabled(&self) -> bool {
        self.registration_enabled
            .unwrap_or(self.env == Profile::Dev)
    }

    pub fn throttle(&self) -> ThrottleSettings {
        ThrottleSettings {
            enabled: self.login_throttle_enabled,
            pair_max_failures: self.login_max_failures,
            account_max_failures: self.login_account_max_failures,
            client_max_failures: self.login_client_max_failures,
            client_max_per_minute: self.login_client_max_per_minute,
            slowed_max_per_minute: self.login_slowed_max_per_minute,
            register_max_per_minute: self.register_client_max_per_minute,
            window_secs: self.login_window_secs,
            lockout_secs: self.login_lockout_secs,
            max_lockout_secs: self.login_max_lockout_secs,
        }
    }

    /// How new password hashes are made (`PASSWORD_HASH` and its parameters).
    pub fn hash_policy(&self) -> Policy {
        match self.password_hash {
            PasswordHashAlgorithm::Bcrypt => Policy::Bcrypt {
                cost: self.bcrypt_cost,
            },
            PasswordHashAlgorithm::Argon2id => Policy::Argon2id {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
            },
        }
    }

    pub fn login_concurrency(&self) -> usize {
        match self.login_concurrency {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            n => n,
        }
    }
}

/// Whether `url` names a database the service has an adapter for, by its scheme (the
/// adapter chooses between them; this only validates).
impl Settings {
    fn validate_redis(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if let Some(url) = &self.redis_url {
            // Never echo the URL: it may hold a password. No TLS in this build (`rediss://`).
            let scheme = url.expose().split_once("://").map(|(s, _)| s);
            if !scheme.is_some_and(|s| ["redis", "redis+unix", "unix"].contains(&s)) {
                return bad("REDIS_URL", "must start with redis:// or redis+unix://");
            }
            if redis::Client::open(url.expose().trim()).is_err() {
                return bad("REDIS_URL", "is not a valid Redis URL");
            }
        }
        if self.redis_key_prefix.len() > 64
            || self
                .redis_key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(
                "REDIS_KEY_PREFIX",
                "must be at most 64 characters, without spaces or control characters",
            );
        }
        Ok(())
    }
}

fn has_database_scheme(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, _)| {
        ["postgres", "postgresql", "sqlite"].contains(&scheme.to_ascii_lowercase().as_str())
    })
}

/// Words of the placeholders that example configurations ship; a random secret holds none.
const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "replaceme",
    "secret",
    "placeholder",
    "example",
    "default",
    "password",
    "insecure",
    "goeshere",
    "dummy",
    "sample",
];

/// The placeholder the FastAPI project's `.env` ships (`CHANGE_ME…`), or nothing: replaced by a
/// random secret in `dev`.
fn is_placeholder(secret: &str) -> bool {
    secret.trim().is_empty() || secret.to_ascii_uppercase().starts_with("CHANGE_ME")
}

/// Any spelling of a placeholder: refused in `prod`.
fn has_placeholder_words(secret: &str) -> bool {
    let letters: String = secret
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    is_placeholder(secret) || PLACEHOLDER_WORDS.iter().any(|w| letters.contains(w))
}

/// The least estimated entropy a `prod` signing secret must have.
const MIN_SECRET_BITS: f64 = 128.0;

/// Keyboard rows, for runs a person types instead of choosing.
const KEYBOARD_ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"];

/// A deliberately pessimistic estimate of how many bits a guesser needs: each character is worth
/// the bits of the character classes the secret uses (lower, upper, digits, others), except
/// one a guesser predicts from what came before — the next or previous character in ASCII or
/// on a keyboard row, or the continuation of a repeat of up to 8 characters — which is worth
/// one bit. No crate estimates this without a dictionary the size of a password cracker's.
fn estimated_entropy_bits(secret: &str) -> f64 {
    let chars: Vec<char> = secret.chars().collect();
    let pool = [
        (chars.iter().any(char::is_ascii_lowercase), 26.0),
        (chars.iter().any(char::is_ascii_uppercase), 26.0),
        (chars.iter().any(char::is_ascii_digit), 10.0),
        (chars.iter().any(|c| !c.is_ascii_alphanumeric()), 33.0),
    ]
    .iter()
    .filter(|(present, _)| *present)
    .map(|(_, size)| size)
    .sum::<f64>();
    let per_char = f64::log2(pool.max(2.0));
    let adjacent = |a: char, b: char| {
        let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
        (a as i64 - b as i64).abs() <= 1
            || KEYBOARD_ROWS.iter().any(|row| {
                let at = |c| row.find(c);
                matches!((at(a), at(b)), (Some(i), Some(j)) if i.abs_diff(j) == 1)
            })
    };
    let repeats = |i: usize| {
        (1..=8).any(|k| i > k && chars[i] == chars[i - k] && chars[i - 1] == chars[i - 1 - k])
    };
    (0..chars.len())
        .map(|i| {
            if i > 0 && (adjacent(chars[i - 1], chars[i]) || repeats(i)) {
                1.0
            } else {
                per_char
            }
        })
        .sum()
}

/// Typed like an environment variable: `15` is a number, `true` a boolean.
fn parse_value(raw: &str) -> Value {
    raw.parse().unwrap_or_else(|_| Value::from(raw.to_owned()))
}

/// `.env` pairs for known keys; a missing file is no error.
fn read_dotenv(path: &Path) -> Result<BTreeMap<String, Value>, ConfigError> {
    let Ok(iter) = dotenvy::from_path_iter(path) else {
        return Ok(BTreeMap::new());
    };
    let mut map = BTreeMap::new();
    for item in iter {
        let (key, value) =
            item.map_err(|_| ConfigError(".env: a line could not be parsed".into()))?;
        if KEYS.contains(&key.as_str()) {
            map.insert(key.to_ascii_lowercase(), parse_value(&value));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG: &str = "k3J9x!Qp2#Lm8vZr5tYw0sEa7uBn4cHd";
    const WHSEC: &str = "whsec_q4T9nW2x7LcVb8ZrKp3YhJ6sDf1GmE0uQaXoNiRtBwk=";

    fn webhook_error(pairs: &[(&str, &str)]) -> String {
        Settings::from_pairs(pairs).unwrap_err().to_string()
    }

    #[test]
    fn reset_mail_settings_are_checked_together_and_the_outbox_is_dev_only() {
        let err = |pairs: &[(&str, &str)]| Settings::from_pairs(pairs).unwrap_err().to_string();
        let from = ("MAIL_FROM", "no-reply@example.com");
        let page = ("PASSWORD_RESET_URL", "https://app.example/reset");
        let outbox = ("MAIL_OUTBOX_DIR", "/tmp/outbox");
        let smtp = ("SMTP_URL", "smtps://user:pw-canary@mail.example:465");
        assert_eq!(
            Settings::from_pairs(&[])
                .unwrap()
                .password_reset_expires_min,
            30
        );
        assert!(Settings::from_pairs(&[outbox, from, page]).is_ok());
        assert!(Settings::from_pairs(&[smtp, from, page]).is_ok());
        assert!(err(&[outbox, page]).contains("MAIL_FROM"));
        assert!(err(&[outbox, from]).contains("PASSWORD_RESET_URL"));
        let e = err(&[smtp, page]);
        assert!(e.contains("MAIL_FROM") && !e.contains("pw-canary"), "{e}");
        assert!(err(&[smtp, outbox, from, page]).contains("MAIL_OUTBOX_DIR"));
        let fragment = ("PASSWORD_RESET_URL", "https://app.example/reset#x");
        assert!(err(&[outbox, from, fragment]).contains("PASSWORD_RESET_URL"));
        for minutes in ["4", "1441"] {
            let e = err(&[("PASSWORD_RESET_EXPIRES_MIN", minutes)]);
            assert!(e.contains("PASSWORD_RESET_EXPIRES_MIN"), "{e}");
        }
        let prod = [("ENV", "prod"), ("JWT_SECRET_KEY", STRONG)];
        assert!(err(&[prod[0], prod[1], outbox, from, page]).contains("MAIL_OUTBOX_DIR"));
        let plain = ("PASSWORD_RESET_URL", "http://app.example/reset");
        assert!(err(&[prod[0], prod[1], smtp, from, plain]).contains("https"));
        assert!(Settings::from_pairs(&[prod[0], prod[1], smtp, from, page]).is_ok());
    }

    #[test]
    fn webhooks_are_off_by_default_with_the_documented_selection() {
        let s = Settings::from_pairs(&[]).unwrap();
        assert!(s.webhook_url.is_none());
        let mut kinds: Vec<_> = s
            .webhook_kinds()
            .unwrap()
            .iter()
            .map(|k| k.as_str())
            .collect();
        kinds.sort_unstable();
        let mut documented: Vec<_> = DEFAULT_WEBHOOK_EVENTS.split(',').collect();
        documented.sort_unstable();
        assert_eq!(kinds, documented);
    }

    #[test]
    fn a_webhook_url_needs_a_strong_standard_secret() {
        let url = (
            "WEBHOOK_URL",
            "http://127.0.0.1:9000/hooks?token=canary-url-token",
        );
        assert!(webhook_error(&[url]).contains("WEBHOOK_SECRET: is required"));
        for weak in [
            "plain-string-not-whsec-format-0123456789",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            let e = webhook_error(&[url, ("WEBHOOK_SECRET", weak)]);
            assert!(e.starts_with("configuration error: WEBHOOK_SECRET:"), "{e}");
            assert!(!e.contains(weak) && !e.contains("canary-url-token"), "{e}");
            assert!(!e.contains("  "), "one clean line: {e}");
        }
        let s = Settings::from_pairs(&[url, ("WEBHOOK_SECRET", WHSEC)]).unwrap();
        assert_eq!(s.webhook_key().unwrap().len(), 32);
        let debug = format!("{s:?}");
        assert!(!debug.contains("canary-url-token") && !debug.contains(&WHSEC[6..]));
    }

    #[test]
    fn prod_sends_webhooks_over_https_unless_the_receiver_is_loopback() {
        let prod = [
            ("ENV", "prod"),
            ("JWT_SECRET_KEY", STRONG),
            ("WEBHOOK_SECRET", WHSEC),
        ];
        let with = |url: &'static str| {
            let mut pairs = prod.to_vec();
            pairs.push(("WEBHOOK_URL", url));
            Settings::from_pairs(&pairs)
        };
        let e = with("http://hooks.example.net/in").unwrap_err().to_string();
        assert!(e.contains("WEBHOOK_URL: must be https:// in prod"), "{e}");
        assert!(with("https://hooks.example.net/in").is_ok());
        assert!(with("http://127.0.0.1:9000/in").is_ok());
        assert!(with("http://[::1]:9000/in").is_ok());
        assert!(with("http://localhost:9000/in").is_ok());
        // In dev plain http anywhere is allowed.
        assert!(Settings::from_pairs(&[
            ("WEBHOOK_URL", "http://hooks.example.net/in"),
            ("WEBHOOK_SECRET", WHSEC)
        ])
        .is_ok());
    }

    #[test]
    fn bad_webhook_urls_events_and_retries_are_refused_by_name() {
        let secret = ("WEBHOOK_SECRET", WHSEC);
        for (url, why) in [
            ("not a url", "WEBHOOK_URL: is not a valid URL"),
            (
                "ftp://host/x",
                "WEBHOOK_URL: must be an http:// or https:// URL",
            ),
            (
                "https://user:pw-canary@host/x",
                "WEBHOOK_URL: must not carry credentials",
            ),
        ] {
            let e = webhook_error(&[("WEBHOOK_URL", url), secret]);
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("pw-canary"), "{e}");
        }
        for (key, value, why) in [
            (
                "WEBHOOK_EVENTS",
                "reuse_detected,nope",
                "WEBHOOK_EVENTS: unknown event type",
            ),
            (
                "WEBHOOK_EVENTS",
                " , ",
                "WEBHOOK_EVENTS: must name at least one",
            ),
            ("WEBHOOK_TIMEOUT_SECS", "0", "WEBHOOK_TIMEOUT_SECS"),
            ("WEBHOOK_MAX_ATTEMPTS", "0", "WEBHOOK_MAX_ATTEMPTS"),
            ("WEBHOOK_MAX_AGE_HOURS", "0", "WEBHOOK_MAX_AGE_HOURS"),
            ("WEBHOOK_RETRY_BASE_MS", "1", "WEBHOOK_RETRY_BASE_MS"),
            ("WEBHOOK_RETRY_MAX_SECS", "0", "WEBHOOK_RETRY_MAX_SECS"),
            (
                "WEBHOOK_DEAD_RETENTION_DAYS",
                "0",
                "WEBHOOK_DEAD_RETENTION_DAYS",
            ),
            (
                "WEBHOOK_DEAD_RETENTION_DAYS",
                "366",
                "WEBHOOK_DEAD_RETENTION_DAYS",
            ),
        ] {
            let e = webhook_error(&[(key, value)]);
            assert!(e.contains(why), "{key}={value}: {e}");
        }
        let s =
            Settings::from_pairs(&[("WEBHOOK_EVENTS", " login_failed , key_rotated ")]).unwrap();
        assert_eq!(s.webhook_kinds().unwrap().len(), 2);
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::from_pairs(&[]).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!(s.env, Profile::Dev);
        assert_eq!(s.jwt_algorithm, SigningAlgorithm::HS256);
        assert_eq!(
            (s.access_token_expires_min, s.refresh_token_expires_days),
            (15, 30)
        );
        assert_eq!(s.bcrypt_cost, 12);
        assert!(!s.cookie_secure());
        assert!(s.registration_enabled());
        assert!(s.database_url.is_none());
        assert!(s.run_migrations);
        assert_eq!(s.database_max_connections, 10);
        assert_eq!(s.throttle(), ThrottleSettings::default());
        assert_eq!(s.trusted_proxy_hops, 1);
    }

    #[test]
    fn database_url_scheme_selects_the_adapter() {
        for url in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "sqlite://data/auth.db",
        ] {
            assert!(has_database_scheme(url), "{url}");
        }
        assert!(!has_database_scheme("mysql://u@h/db"));
        assert!(!has_database_scheme("no scheme"));
        let err = Settings::from_pairs(&[("DATABASE_URL", "mysql://u:pw-canary@h/db")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(!err.contains("pw-canary"), "never echoes the URL: {err}");
        let off = Settings::from_pairs(&[("RUN_MIGRATIONS", "false")]).unwrap();
        assert!(!off.run_migrations);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: [(&str, &str, &str); 5] = [
            ("JWT_ALGORITHM", "RS512", "JWT_ALGORITHM"),
            (
                "ACCESS_TOKEN_EXPIRES_MIN",
                "soon",
                "ACCESS_TOKEN_EXPIRES_MIN",
            ),
            ("PORT", "99999", "PORT"),
            ("BCRYPT_COST", "3", "BCRYPT_COST"),
            ("ENV", "staging", "ENV"),
        ];
        for (key, value, named) in cases {
            let err = Settings::from_pairs(&[(key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn prod_refuses_missing_placeholder_short_or_weak_secrets() {
        for secret in [
            None,
            Some("CHANGE_ME_please_change_me_now_0123456789"),
            Some("short-secret"),
            Some(&*"a".repeat(40)),
        ] {
            let mut pairs = vec![("ENV", "prod")];
            if let Some(s) = secret {
                pairs.push(("JWT_SECRET_KEY", s));
            }
            let err = Settings::from_pairs(&pairs).unwrap_err().to_string();
            assert!(err.contains("JWT_SECRET_KEY"), "{err}");
            if let Some(s) = secret {
                assert!(!err.contains(s), "the secret is never echoed: {err}");
            }
        }
        let ok = Settings::from_pairs(&[("ENV", "prod"), ("JWT_SECRET_KEY", STRONG)]).unwrap();
        assert!(ok.cookie_secure());
        assert!(!ok.registration_enabled());
        assert_eq!(ok.signing_secret(), (STRONG.as_bytes().to_vec(), false));
        let short_for_hs512 = [
            ("ENV", "prod"),
            ("JWT_SECRET_KEY", STRONG),
            ("JWT_ALGORITHM", "HS512"),
        ];
        assert!(Settings::from_pairs(&short_for_hs512).is_err());
    }

    #[test]
    fn prod_refuses_guessable_secrets_that_are_long_and_varied() {
        for secret in [
            // Sequences and repeats: long and varied, but guessable.
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
            "0123456789012345678901234567890123456789",
            "qwertyuiopasdfghjklzxcvbnmqwertyuiopasdfgh",
            "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabc",
            // Placeholder spellings other than CHANGE_ME.
            "please-change-me-before-production-0a9s8d7f6g",
            "your-super-secret-jwt-key-goes-here-123456789",
            "replace_me_with_a_real_secret_key_Zx81!Qa9pL",
        ] {
            let err = Settings::from_pairs(&[("ENV", "prod"), ("JWT_SECRET_KEY", secret)])
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains("JWT_SECRET_KEY"), "{secret}: {err}");
            assert!(!err.contains(secret), "never echoed: {err}");
        }
        // What `openssl rand -base64 48` gives passes.
        let random = "q0Zr3m9Xc1T7bN2vK8sL4pW6yH5dJ0aE3fG7uR1iO9kM2nB4xC8zV6tY5wQ1eP3";
        assert!(Settings::from_pairs(&[("ENV", "prod"), ("JWT_SECRET_KEY", random)]).is_ok());
    }

    #[test]
    fn settings_that_switch_a_defence_off_are_refused() {
        let prod = [("ENV", "prod"), ("JWT_SECRET_KEY", STRONG)];
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LOGIN_WINDOW_SECS", "0")], "LOGIN_WINDOW_SECS"),
            (&[("LOGIN_LOCKOUT_SECS", "0")], "LOGIN_LOCKOUT_SECS"),
            (
                &[
                    ("LOGIN_LOCKOUT_SECS", "600"),
                    ("LOGIN_MAX_LOCKOUT_SECS", "60"),
                ],
                "LOGIN_MAX_LOCKOUT_SECS",
            ),
            (
                &[("LOGIN_MAX_LOCKOUT_SECS", "18446744073709551615")],
                "LOGIN_MAX_LOCKOUT_SECS",
            ),
            (
                &[("LOGIN_WINDOW_SECS", "18446744073709551615")],
                "LOGIN_WINDOW_SECS",
            ),
            (
                &[("LOGIN_CLIENT_MAX_PER_MINUTE", "0")],
                "LOGIN_CLIENT_MAX_PER_MINUTE",
            ),
            (
                &[("LOGIN_CLIENT_MAX_FAILURES", "0")],
                "LOGIN_CLIENT_MAX_FAILURES",
            ),
            (&[("JWT_LEEWAY_SECS", "86400")], "JWT_LEEWAY_SECS"),
            (
                &[("SESSION_PURGE_INTERVAL_SECS", "0")],
                "SESSION_PURGE_INTERVAL_SECS",
            ),
            (&[("SESSION_PURGE_BATCH", "0")], "SESSION_PURGE_BATCH"),
            (&[("LOGIN_MAX_FAILURES", "0")], "LOGIN_MAX_FAILURES"),
            (
                &[("LOGIN_SLOWED_MAX_PER_MINUTE", "0")],
                "LOGIN_SLOWED_MAX_PER_MINUTE",
            ),
            (
                &[("LOGIN_ACCOUNT_MAX_FAILURES", "4")],
                "LOGIN_ACCOUNT_MAX_FAILURES",
            ),
            (
                &[("REGISTER_CLIENT_MAX_PER_MINUTE", "0")],
                "REGISTER_CLIENT_MAX_PER_MINUTE",
            ),
            (&[("TRUSTED_PROXY_HOPS", "0")], "TRUSTED_PROXY_HOPS"),
        ];
        for (pairs, key) in cases {
            let err = Settings::from_pairs(pairs).unwrap_err().to_string();
            assert!(err.contains(key), "{pairs:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        // Secure off under prod: the refresh cookie would travel in clear.
        let mut pairs = prod.to_vec();
        pairs.push(("COOKIE_SECURE", "false"));
        let err = Settings::from_pairs(&pairs).unwrap_err().to_string();
        assert!(err.contains("COOKIE_SECURE"), "{err}");
        // The same values are fine where they are no defence: the throttle switched off on
        // purpose, Secure off in dev.
        assert!(Settings::from_pairs(&[
            ("LOGIN_THROTTLE_ENABLED", "false"),
            ("LOGIN_WINDOW_SECS", "0")
        ])
        .is_ok());
        assert!(Settings::from_pairs(&[("COOKIE_SECURE", "false")]).is_ok());
    }

    #[test]
    fn prod_bound_beyond_loopback_needs_its_host_names() {
        let prod = [("ENV", "prod"), ("JWT_SECRET_KEY", STRONG)];
        let wildcard = [prod.as_slice(), &[("HOST", "0.0.0.0")]].concat();
        let err = Settings::from_pairs(&wildcard).unwrap_err().to_string();
        assert!(
            err.contains("HOST") && err.contains("ALLOWED_HOSTS"),
            "{err}"
        );
        for named in [
            ("ALLOWED_HOSTS", "auth.example.com,auth.internal:8000"),
            ("PUBLIC_URL", "https://auth.example.com"),
        ] {
            let pairs = [wildcard.as_slice(), &[named]].concat();
            assert!(Settings::from_pairs(&pairs).is_ok(), "{named:?}");
        }
        // On loopback only local clients connect; in dev a warning is enough (see startup).
        assert!(Settings::from_pairs(&prod).is_ok());
        assert!(Settings::from_pairs(&[("HOST", "0.0.0.0")]).is_ok());
        assert!(Settings::from_pairs(&[("HOST", "::1")])
            .unwrap()
            .binds_loopback());
        assert!(!Settings::from_pairs(&[("HOST", "::")])
            .unwrap()
            .binds_loopback());
        let hosts = Settings::from_pairs(&[("ALLOWED_HOSTS", " a.example , b:8000,")]).unwrap();
        assert_eq!(hosts.allowed_hosts(), ["a.example", "b:8000"]);
        let err = Settings::from_pairs(&[("ALLOWED_HOSTS", "https://a.example")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ALLOWED_HOSTS"), "{err}");
    }

    #[test]
    fn slow_client_and_queue_limits_are_bounded() {
        let s = Settings::from_pairs(&[("LOGIN_CONCURRENCY", "2")]).unwrap();
        assert_eq!(
            (s.header_read_timeout_secs, s.body_read_timeout_secs),
            (10, 10)
        );
        assert_eq!(s.max_connections, 1024);
        assert_eq!(s.hash_queue_max(), 128, "64 per hashing thread");
        for (key, value) in [
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("BODY_READ_TIMEOUT_SECS", "0"),
            ("SEND_TIMEOUT_SECS", "0"),
            ("MAX_CONNECTIONS_PER_CLIENT", "0"),
            ("HEADER_READ_TIMEOUT_SECS", "86400"),
            ("MAX_CONNECTIONS", "0"),
            ("HASH_QUEUE_MAX", "10000000"),
        ] {
            let err = Settings::from_pairs(&[(key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn password_hash_policy_is_bcrypt_by_default_and_argon2id_is_bounded() {
        let s = Settings::from_pairs(&[]).unwrap();
        assert_eq!(s.hash_policy(), Policy::Bcrypt { cost: 12 });
        let s = Settings::from_pairs(&[("PASSWORD_HASH", "argon2id")]).unwrap();
        assert_eq!(
            s.hash_policy(),
            Policy::Argon2id {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        for (key, value) in [
            ("PASSWORD_HASH", "scrypt"),
            ("BCRYPT_COST", "17"),
            ("ARGON2_MEMORY_KIB", "262145"),
            ("ARGON2_MEMORY_KIB", "512"),
            ("ARGON2_ITERATIONS", "0"),
            ("ARGON2_ITERATIONS", "11"),
            ("ARGON2_PARALLELISM", "0"),
            ("ARGON2_PARALLELISM", "17"),
        ] {
            let err = Settings::from_pairs(&[(key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(
            Settings::from_pairs(&[]).unwrap().log_format,
            LogFormat::Text
        );
        assert_eq!(
            Settings::from_pairs(&[("LOG_FORMAT", "json")])
                .unwrap()
                .log_format,
            LogFormat::Json
        );
        let err = Settings::from_pairs(&[("LOG_FORMAT", "xml")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LOG_FORMAT"), "{err}");
    }

    #[test]
    fn key_pair_algorithms_need_no_secret_and_a_previous_secret_needs_an_end_in_prod() {
        for alg in ["EdDSA", "ES256", "RS256"] {
            let s = Settings::from_pairs(&[
                ("ENV", "prod"),
                ("JWT_ALGORITHM", alg),
                ("PUBLIC_URL", "https://auth.example.com"),
            ])
            .unwrap();
            assert!(s.jwt_algorithm.is_asymmetric());
        }
        let old = "Zq9!xV2#mK7pL4$wR8tY1uE6iO3aS5dF0gH";
        let err = Settings::from_pairs(&[
            ("ENV", "prod"),
            ("JWT_SECRET_KEY", STRONG),
            ("JWT_PREVIOUS_SECRET_KEY", old),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("JWT_PREVIOUS_SECRET_KEY_UNTIL"), "{err}");
        for (until, secs) in [
            ("2026-12-31T00:00:00Z", 1_798_675_200),
            ("2026-12-31", 1_798_675_200),
            ("1798675200", 1_798_675_200),
            ("1970-01-01T00:00:01Z", 1),
        ] {
            let s = Settings::from_pairs(&[
                ("ENV", "prod"),
                ("JWT_SECRET_KEY", STRONG),
                ("JWT_PREVIOUS_SECRET_KEY", old),
                ("JWT_PREVIOUS_SECRET_KEY_UNTIL", until),
            ])
            .unwrap();
            assert_eq!(
                s.jwt_previous_secret_key_until,
                Some(UtcTime(secs)),
                "{until}"
            );
        }
        for bad in [
            "tomorrow",
            "2026-13-01",
            "2026-12-31T25:00:00Z",
            "2026-12-31T00:00:00+02:00",
        ] {
            let err = Settings::from_pairs(&[("JWT_PREVIOUS_SECRET_KEY_UNTIL", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("JWT_PREVIOUS_SECRET_KEY_UNTIL"),
                "{bad}: {err}"
            );
        }
        let err = Settings::from_pairs(&[("JWT_PRIVATE_KEY_FILE", "/k.pem")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("JWT_PRIVATE_KEY_FILE"), "{err}");
    }

    #[test]
    fn dev_replaces_a_weak_secret_with_a_random_one() {
        let s = Settings::from_pairs(&[("JWT_SECRET_KEY", "CHANGE_ME")]).unwrap();
        let (secret, generated) = s.signing_secret();
        assert!(generated);
        assert_eq!(secret.len(), 64);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Settings::from_pairs(&[
            ("JWT_SECRET_KEY", STRONG),
            ("DATABASE_URL", "postgres://u:pw-canary@h/db"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(STRONG));
        assert!(!shown.contains("pw-canary"));
    }

    #[test]
    fn dotenv_file_is_read_for_known_keys() {
        let dir = std::env::temp_dir().join(format!("jwt-auth-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(
            &path,
            "ACCESS_TOKEN_EXPIRES_MIN=5\nJWT_ALGORITHM=HS384\nUNRELATED=1\n",
        )
        .unwrap();
        let map = read_dotenv(&path).unwrap();
        assert_eq!(map.len(), 2);
        let s = Settings::from_figment(
            Figment::new()
                .merge(Toml::string(BUILT_IN_DEFAULTS))
                .merge(Serialized::defaults(map)),
        )
        .unwrap();
        assert_eq!(s.access_token_expires_min, 5);
        assert_eq!(s.jwt_algorithm, SigningAlgorithm::HS384);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! The database facade: chooses and opens PostgreSQL or SQLite from `DATABASE_URL` and hands
//! out its stores. Driver types never leave this module and its backends, which share
//! `common` and import nothing from here.

mod audit;
mod common;
mod keys;
mod postgres;
mod reset_tokens;
mod revocations;
mod sqlite;
mod throttle;
mod webhooks;

use std::fmt;
use std::sync::Arc;

use crate::domain::ThrottleSettings;
use crate::ports::{
    AuditLog, Clock, KeyStore, LoginAttempts, RefreshStore, ResetTokens, RevocationFeed, UserRepo,
    WebhookOutbox,
};

pub use common::PoolSettings;
use postgres::{PostgresRefreshStore, PostgresUserRepo};
use sqlite::{SqliteRefreshStore, SqliteUserRepo};

/// Which database a `DATABASE_URL` names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

impl DatabaseKind {
    /// `None` for a scheme the service has no adapter for.
    pub fn of(url: &str) -> Option<Self> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase())?;
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// An open database, PostgreSQL or SQLite, chosen by the URL's scheme.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// `scheme://user@host:port/name` or `sqlite://path`: never the password.
    name: String,
}

#[derive(Clone)]
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pools print no connection options; the description has no password.
        write!(f, "Database({})", self.describe())
    }
}

impl Database {
    /// Opens a pool after one direct connection attempt, so that an unreachable or
    /// misconfigured database is reported at once with its real cause. A SQLite file is
    /// created if missing (its directory must exist).
    ///
    /// # Errors
    /// One line naming the database (without its password) and the cause.
    pub async fn connect(url: &str, settings: PoolSettings) -> anyhow::Result<Self> {
        Ok(match kind(url)? {
            DatabaseKind::Postgres => {
                let (pool, name) = postgres::connect(url, settings).await?;
                Self::new(Pool::Postgres(pool), name)
            }
            DatabaseKind::Sqlite => {
                let (pool, name) = sqlite::connect(url, settings).await?;
                Self::new(Pool::Sqlite(pool), name)
            }
        })
    }

    /// A pool that connects on first use; for tests of an unreachable database.
    ///
    /// # Errors
    /// When the URL cannot be parsed.
    pub fn connect_lazy(url: &str, settings: PoolSettings) -> anyhow::Result<Self> {
        Ok(match kind(url)? {
            DatabaseKind::Postgres => {
                let (pool, name) = postgres::connect_lazy(url, settings)?;
                Self::new(Pool::Postgres(pool), name)
            }
            DatabaseKind::Sqlite => {
                let (pool, name) = sqlite::connect_lazy(url, settings)?;
                Self::new(Pool::Sqlite(pool), name)
            }
        })
    }

    fn new(pool: Pool, name: String) -> Self {
        Self { pool, name }
    }

    pub fn kind(&self) -> DatabaseKind {
        match self.pool {
            Pool::Postgres(_) => DatabaseKind::Postgres,
            Pool::Sqlite(_) => DatabaseKind::Sqlite,
        }
    }

    /// Applies the pending migrations embedded in the binary. Safe with several instances
    /// starting at once on PostgreSQL (sqlx takes an advisory lock).
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails or was changed after it ran.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let result = match &self.pool {
            Pool::Postgres(pool) => postgres::MIGRATOR.run(pool).await,
            Pool::Sqlite(pool) => sqlite::MIGRATOR.run(pool).await,
        };
        result.map_err(|e| anyhow::anyhow!("migrating {} failed: {e}", self.describe()))
    }

    /// Applies the embedded migrations up to and including `version` only: a database as an
    /// older release left it, for the tests that upgrade one in place.
    ///
    /// # Errors
    /// As `migrate`.
    pub async fn migrate_up_to(&self, version: i64) -> anyhow::Result<()> {
        fn upto(m: &sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
            let mut older = sqlx::migrate::Migrator {
                migrations: m.migrations.clone(),
                ..sqlx::migrate::Migrator::DEFAULT
            };
            older.migrations = older
                .migrations
                .iter()
                .filter(|mig| mig.version <= version)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            older
        }
        let result = match &self.pool {
            Pool::Postgres(pool) => upto(&postgres::MIGRATOR, version).run(pool).await,
            Pool::Sqlite(pool) => upto(&sqlite::MIGRATOR, version).run(pool).await,
        };
        result.map_err(|e| anyhow::anyhow!("migrating {} failed: {e}", self.describe()))
    }

    /// How many embedded migrations the database has not applied (all of them on an empty
    /// database); for `RUN_MIGRATIONS=false`, where the service must not run on an old schema.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn pending_migrations(&self) -> anyhow::Result<usize> {
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";
        let (migrator, applied) = match &self.pool {
            Pool::Postgres(pool) => (
                &postgres::MIGRATOR,
                sqlx::query_scalar::<_, i64>(APPLIED).fetch_all(pool).await,
            ),
            Pool::Sqlite(pool) => (
                &sqlite::MIGRATOR,
                sqlx::query_scalar::<_, i64>(APPLIED).fetch_all(pool).await,
            ),
        };
        let applied = match applied {
            Ok(versions) => versions,
            // No migrations table: nothing was ever applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => anyhow::bail!("cannot read the schema version of {}: {e}", self.describe()),
        };
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .count())
    }

    pub fn users(&self) -> Arc<dyn UserRepo> {
        match &self.pool {
            Pool::Postgres(pool) => Arc::new(PostgresUserRepo::new(pool.clone())),
            Pool::Sqlite(pool) => Arc::new(SqliteUserRepo::new(pool.clone())),
        }
    }

    pub fn sessions(&self) -> Arc<dyn RefreshStore> {
        match &self.pool {
            Pool::Postgres(pool) => Arc::new(PostgresRefreshStore::new(pool.clone())),
            Pool::Sqlite(pool) => Arc::new(SqliteRefreshStore::new(pool.clone())),
        }
    }

    /// The generated signing keys, shared by every instance on this database.
    pub fn keys(&self) -> Arc<dyn KeyStore> {
        match &self.pool {
            Pool::Postgres(pool) => Arc::new(keys::PostgresKeyStore::new(pool.clone())),
            Pool::Sqlite(pool) => Arc::new(keys::SqliteKeyStore::new(pool.clone())),
        }
    }

    /// The revocation feed, read from what every revocation writes.
    pub fn revocations(&self) -> Arc<dyn RevocationFeed> {
        match &self.pool {
            Pool::Postgres(pool) => {
                Arc::new(revocations::PostgresRevocationFeed::new(pool.clone()))
            }
            Pool::Sqlite(pool) => Arc::new(revocations::SqliteRevocationFeed::new(pool.clone())),
        }
    }

    /// The security-event webhook outbox, shared by every instance on this database.
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        match &self.pool {
            Pool::Postgres(pool) => Arc::new(audit::PostgresAuditLog::new(pool.clone())),
            Pool::Sqlite(pool) => Arc::new(audit::SqliteAuditLog::new(pool.clone())),
        }
    }

    pub fn webhook_outbox(&self) -> Arc<dyn WebhookOutbox> {
        match &self.pool {
            Pool::Postgres(pool) => Arc::new(webhooks::PostgresWebhookOutbox::new(pool.clone())),
            Pool::Sqlite(pool) => Arc::new(webhooks::SqliteWebhookOutbox::new(pool.clone())),
        }
    }

    /// The password-reset tokens.
    pub fn reset_tokens(&self) -> Arc<dyn ResetTokens> {
        match &self.pool {
            Pool::Postgres(pool) => Arc::new(reset_tokens::PostgresResetTokens::new(pool.clone())),
            Pool::Sqlite(pool) => Arc::new(reset_tokens::SqliteResetTokens::new(pool.clone())),
        }
    }

    /// The email-verification tokens (a table of their own: never found as reset tokens).
    pub fn verification_tokens(&self) -> Arc<dyn ResetTokens> {
        match &self.pool {
            Pool::Postgres(pool) => {
                Arc::new(reset_tokens::PostgresVerificationTokens::new(pool.clone()))
            }
            Pool::Sqlite(pool) => {
                Arc::new(reset_tokens::SqliteVerificationTokens::new(pool.clone()))
            }
        }
    }

    /// The login throttle shared by every instance on this database: on PostgreSQL only;
    /// `None` on SQLite, a single-instance store that keeps the in-process throttle.
    pub fn login_attempts(
        &self,
        settings: ThrottleSettings,
        clock: Arc<dyn Clock>,
    ) -> Option<Arc<dyn LoginAttempts>> {
        match &self.pool {
            Pool::Postgres(pool) => Some(Arc::new(throttle::PostgresLoginAttempts::new(
                pool.clone(),
                settings,
                clock,
            ))),
            Pool::Sqlite(_) => None,
        }
    }

    /// Runs one statement without parameters and returns how many rows it changed: for
    /// tests and operators (e.g. `CREATE DATABASE`), never for the service's own data.
    ///
    /// # Errors
    /// When the database cannot be reached or rejects the statement.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<u64> {
        let done = match &self.pool {
            Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
        };
        Ok(done)
    }

    /// The one integer a diagnostic query without parameters answers (e.g. `count(*)`).
    ///
    /// # Errors
    /// When the database cannot be reached or the query does not answer one integer.
    pub async fn query_i64(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(match &self.pool {
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        })
    }

    /// The database as `scheme://user@host:port/name` or `sqlite://path`: never the password.
    pub fn describe(&self) -> &str {
        &self.name
    }

    /// Closes every connection; waits for the ones in use to come back.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}

fn kind(url: &str) -> anyhow::Result<DatabaseKind> {
    DatabaseKind::of(url).ok_or_else(|| {
        anyhow::anyhow!("DATABASE_URL must start with postgres://, postgresql:// or sqlite://")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_scheme_selects_the_adapter() {
        assert_eq!(
            DatabaseKind::of("postgres://u@h/db"),
            Some(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("postgresql://u@h/db"),
            Some(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("sqlite://data/auth.db"),
            Some(DatabaseKind::Sqlite)
        );
        assert_eq!(DatabaseKind::of("mysql://u@h/db"), None);
        assert_eq!(DatabaseKind::of("no scheme"), None);
    }
}

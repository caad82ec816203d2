//! What the PostgreSQL and SQLite adapters share: choosing and opening a database from
//! `DATABASE_URL`, pool settings, the one rule that decides a rotation, and the mapping of
//! driver errors onto port errors. Driver types never leave the adapters.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::DatabaseKind;
use crate::domain::{RefreshTokenHash, Session, Timestamp};
use crate::ports::{RefreshStore, RotateError, StoreError, UserRepo};

use super::postgres::{self, PostgresRefreshStore, PostgresUserRepo};
use super::sqlite::{self, SqliteRefreshStore, SqliteUserRepo};

/// How each process pools its connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before its store answers `Unavailable`
    /// (the service then answers 503): short, so a dead database never hangs a client.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// An open database, PostgreSQL or SQLite, chosen by the URL's scheme.
#[derive(Clone)]
pub enum Database {
    Postgres(sqlx::PgPool, String),
    Sqlite(sqlx::SqlitePool, String),
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
    pub async fn connect(url: &str, pool: PoolSettings) -> anyhow::Result<Self> {
        match kind(url)? {
            DatabaseKind::Postgres => {
                let (pool, name) = postgres::connect(url, pool).await?;
                Ok(Self::Postgres(pool, name))
            }
            DatabaseKind::Sqlite => {
                let (pool, name) = sqlite::connect(url, pool).await?;
                Ok(Self::Sqlite(pool, name))
            }
        }
    }

    /// A pool that connects on first use; for tests of an unreachable database.
    ///
    /// # Errors
    /// When the URL cannot be parsed.
    pub fn connect_lazy(url: &str, pool: PoolSettings) -> anyhow::Result<Self> {
        match kind(url)? {
            DatabaseKind::Postgres => {
                let (pool, name) = postgres::connect_lazy(url, pool)?;
                Ok(Self::Postgres(pool, name))
            }
            DatabaseKind::Sqlite => {
                let (pool, name) = sqlite::connect_lazy(url, pool)?;
                Ok(Self::Sqlite(pool, name))
            }
        }
    }

    /// Applies the pending migrations embedded in the binary. Safe with several instances
    /// starting at once on PostgreSQL (sqlx takes an advisory lock).
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails or was changed after it ran.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let result = match self {
            Self::Postgres(pool, _) => postgres::MIGRATOR.run(pool).await,
            Self::Sqlite(pool, _) => sqlite::MIGRATOR.run(pool).await,
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
        let (migrator, applied) = match self {
            Self::Postgres(pool, _) => (
                &postgres::MIGRATOR,
                sqlx::query_scalar::<_, i64>(APPLIED).fetch_all(pool).await,
            ),
            Self::Sqlite(pool, _) => (
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
        match self {
            Self::Postgres(pool, _) => Arc::new(PostgresUserRepo::new(pool.clone())),
            Self::Sqlite(pool, _) => Arc::new(SqliteUserRepo::new(pool.clone())),
        }
    }

    pub fn sessions(&self) -> Arc<dyn RefreshStore> {
        match self {
            Self::Postgres(pool, _) => Arc::new(PostgresRefreshStore::new(pool.clone())),
            Self::Sqlite(pool, _) => Arc::new(SqliteRefreshStore::new(pool.clone())),
        }
    }

    /// The database as `scheme://user@host:port/name` or `sqlite://path`: never the password.
    pub fn describe(&self) -> &str {
        match self {
            Self::Postgres(_, name) | Self::Sqlite(_, name) => name,
        }
    }

    /// Closes every connection; waits for the ones in use to come back.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool, _) => pool.close().await,
            Self::Sqlite(pool, _) => pool.close().await,
        }
    }
}

fn kind(url: &str) -> anyhow::Result<DatabaseKind> {
    DatabaseKind::of(url).ok_or_else(|| {
        anyhow::anyhow!("DATABASE_URL must start with postgres://, postgresql:// or sqlite://")
    })
}

/// A presented token's family as read under the family's lock.
#[derive(Debug)]
pub(crate) struct Family {
    pub session: Session,
    pub revoked: bool,
    pub consumed: bool,
}

/// Why a rotation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound,
    Expired,
    Reused,
}

impl From<Refusal> for RotateError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => Self::NotFound,
            Refusal::Expired => Self::Expired,
            Refusal::Reused => Self::Reused,
        }
    }
}

/// What `rotate` does with a presented token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Consume it and issue the successor.
    Consume,
    /// Refuse, changing nothing.
    Refuse(Refusal),
    /// Revoke the session, then refuse.
    RevokeAndRefuse(Refusal),
}

/// The rotation rule, in the in-memory store's order: unknown or revoked → `NotFound`;
/// the session's end reached → revoke, `Expired`; consumed → revoke, `Reused`.
pub(crate) fn judge(family: Option<&Family>, now: Timestamp) -> Verdict {
    match family {
        None => Verdict::Refuse(Refusal::NotFound),
        Some(f) if f.revoked => Verdict::Refuse(Refusal::NotFound),
        Some(f) if now >= f.session.expires_at => Verdict::RevokeAndRefuse(Refusal::Expired),
        Some(f) if f.consumed => Verdict::RevokeAndRefuse(Refusal::Reused),
        Some(_) => Verdict::Consume,
    }
}

/// Maps a driver error: lost or unreachable connections are `Unavailable` (retryable,
/// answered with 503), everything else `Unknown`. `unavailable_code` says which database
/// error codes of this driver mean "cannot be reached right now".
pub(crate) fn store_error(e: sqlx::Error, unavailable_code: fn(&str) -> bool) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| unavailable_code(&c)),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Unknown(e.into())
    }
}

/// Whether `e` is a unique violation of the email index (named `users_email_key` in both
/// schemas; SQLite reports the column instead of the index).
pub(crate) fn is_email_taken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.constraint() == Some("users_email_key") || db.message().contains("users.email")
        }
        _ => false,
    }
}

/// Timestamps are `u64` seconds in the domain and `i64` in both databases.
pub(crate) fn to_db(t: Timestamp) -> i64 {
    i64::try_from(t.unix()).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(secs: i64) -> Timestamp {
    Timestamp::from_unix(u64::try_from(secs).unwrap_or(0))
}

/// Limits are `usize` in the port and `i64` in SQL.
pub(crate) fn limit_to_db(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn hash_bytes(hash: &RefreshTokenHash) -> &[u8] {
    hash.as_bytes()
}

/// A stored value that does not parse: the database was changed behind the service's back.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!("stored {what} does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SessionId, UserId};

    fn family(revoked: bool, consumed: bool) -> Family {
        Family {
            session: Session {
                id: SessionId::new_random(),
                user_id: UserId::new_random(),
                created_at: Timestamp::from_unix(100),
                expires_at: Timestamp::from_unix(200),
            },
            revoked,
            consumed,
        }
    }

    #[test]
    fn the_rotation_rule_follows_the_in_memory_order() {
        let at = Timestamp::from_unix;
        assert_eq!(judge(None, at(150)), Verdict::Refuse(Refusal::NotFound));
        // Revoked wins over everything: the family is gone.
        assert_eq!(
            judge(Some(&family(true, true)), at(250)),
            Verdict::Refuse(Refusal::NotFound)
        );
        // Expired is checked before consumed, and is reached at exactly expires_at.
        assert_eq!(
            judge(Some(&family(false, true)), at(200)),
            Verdict::RevokeAndRefuse(Refusal::Expired)
        );
        assert_eq!(
            judge(Some(&family(false, true)), at(199)),
            Verdict::RevokeAndRefuse(Refusal::Reused)
        );
        assert_eq!(
            judge(Some(&family(false, false)), at(199)),
            Verdict::Consume
        );
    }

    #[test]
    fn connection_errors_are_unavailable_others_unknown() {
        let never = |_: &str| false;
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
            sqlx::Error::Protocol("bad frame".into()),
        ] {
            assert!(matches!(store_error(e, never), StoreError::Unavailable(_)));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(matches!(store_error(e, never), StoreError::Unknown(_)));
        }
    }

    #[test]
    fn timestamps_and_limits_saturate() {
        assert_eq!(to_db(Timestamp::from_unix(u64::MAX)), i64::MAX);
        assert_eq!(from_db(-5), Timestamp::from_unix(0));
        assert_eq!(from_db(to_db(Timestamp::from_unix(42))).unix(), 42);
        assert_eq!(limit_to_db(usize::MAX), i64::MAX);
    }
}

//! SQLite `UserRepo` and `RefreshStore` (sqlx runtime queries): one node, persistent, no
//! server. WAL journal, so readers never wait for the writer; every write transaction starts
//! with `BEGIN IMMEDIATE`, taking the database's write lock up front, so concurrent rotations
//! queue (up to the busy timeout) and exactly one of them finds the token unconsumed.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};

use super::sql::{self, Family, PoolSettings, Verdict};
use crate::domain::{
    Email, PasswordHash, RefreshTokenHash, Session, SessionId, Timestamp, User, UserId,
};
use crate::ports::{CreateUserError, RefreshStore, RotateError, StoreError, UserRepo};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for the write lock before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The current time in SQL, for revocations the port does not give a time for.
const SQL_NOW: &str = "CAST(strftime('%s', 'now') AS INTEGER)";

/// Primary result codes meaning "cannot use the database right now": BUSY, LOCKED (the lock
/// was not had within the busy timeout), IOERR, CANTOPEN. sqlx reports extended codes.
fn unavailable_code(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 14))
}

fn store(e: sqlx::Error) -> StoreError {
    sql::store_error(e, unavailable_code)
}

fn options(url: &str) -> anyhow::Result<(SqliteConnectOptions, String)> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid SQLite URL: {e}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the service answers (an acknowledged session
        // survives a crash or power loss).
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let name = format!("sqlite://{}", opts.get_filename().display());
    Ok((opts, name))
}

fn pool_options(settings: PoolSettings) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
}

/// Opens (creating if missing) the file once directly, to report a real cause, then the pool.
pub(crate) async fn connect(
    url: &str,
    settings: PoolSettings,
) -> anyhow::Result<(SqlitePool, String)> {
    let (opts, name) = options(url)?;
    let probe = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database at {name}: {e}"))?;
    let _ = probe.close().await;
    Ok((pool_options(settings).connect_lazy_with(opts), name))
}

/// A pool that opens the file on first use.
pub(crate) fn connect_lazy(
    url: &str,
    settings: PoolSettings,
) -> anyhow::Result<(SqlitePool, String)> {
    let (opts, name) = options(url)?;
    Ok((pool_options(settings).connect_lazy_with(opts), name))
}

fn uuid_of(text: &str, what: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|_| sql::corrupt(what))
}

const USER_COLUMNS: &str = "id, email, password_hash, created_at, disabled";

type UserRow = (String, String, String, i64, bool);

fn user_of(row: UserRow) -> Result<User, StoreError> {
    let (id, email, hash, created_at, disabled) = row;
    Ok(User {
        id: UserId::from_uuid(uuid_of(&id, "user id")?),
        email: Email::parse(&email).map_err(|_| sql::corrupt("email"))?,
        password_hash: PasswordHash::new(hash),
        disabled,
        created_at: sql::from_db(created_at),
    })
}

/// Accounts in the `users` table.
#[derive(Debug, Clone)]
pub struct SqliteUserRepo {
    pool: SqlitePool,
}

impl SqliteUserRepo {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserRepo for SqliteUserRepo {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store)?
        .map(user_of)
        .transpose()
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(store)?
            .map(user_of)
            .transpose()
    }

    async fn create(&self, user: User) -> Result<(), CreateUserError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at, disabled) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(user.password_hash.as_str())
        .bind(sql::to_db(user.created_at))
        .bind(user.disabled)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if sql::is_email_taken(&e) {
                CreateUserError::EmailTaken
            } else {
                CreateUserError::Store(store(e))
            }
        })?;
        Ok(())
    }

    async fn set_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "UPDATE users SET disabled = ?2 WHERE email = ?1 RETURNING {USER_COLUMNS}"
        ))
        .bind(email.as_str())
        .bind(disabled)
        .fetch_optional(&self.pool)
        .await
        .map_err(store)?
        .map(user_of)
        .transpose()
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, email"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(store)?
        .into_iter()
        .map(user_of)
        .collect()
    }
}

/// Sessions in `sessions`, token hashes in `refresh_tokens`. Revoked sessions keep their row
/// (with `revoked_at`) until the purge deletes it and, by cascade, its tokens. `revoked_at` is
/// the rotation's `now` when a rotation revokes, else the database's clock (those port methods
/// take no time); only whether it is set matters to the service.
#[derive(Debug, Clone)]
pub struct SqliteRefreshStore {
    pool: SqlitePool,
}

impl SqliteRefreshStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

type FamilyRow = (String, String, i64, i64, bool, bool);

async fn revoke_session(
    tx: &mut SqliteConnection,
    session: SessionId,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
        .bind(session.to_string())
        .bind(sql::to_db(now))
        .execute(tx)
        .await
        .map_err(store)?;
    Ok(())
}

#[async_trait]
impl RefreshStore for SqliteRefreshStore {
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(sql::to_db(session.created_at))
        .bind(sql::to_db(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES (?1, ?2, ?3)")
            .bind(sql::hash_bytes(&first))
            .bind(session.id.to_string())
            .bind(sql::to_db(session.created_at))
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)
    }

    async fn rotate(
        &self,
        presented: RefreshTokenHash,
        successor: RefreshTokenHash,
        now: Timestamp,
    ) -> Result<Session, RotateError> {
        // The write lock, taken before reading: rotations of one token run one at a time.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store)?;
        let family = sqlx::query_as::<_, FamilyRow>(
            "SELECT s.id, s.user_id, s.created_at, s.expires_at, \
                    s.revoked_at IS NOT NULL, t.consumed_at IS NOT NULL \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.hash = ?1",
        )
        .bind(sql::hash_bytes(&presented))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store)?
        .map(|(id, user, created, expires, revoked, consumed)| {
            Ok::<_, StoreError>(Family {
                session: Session {
                    id: SessionId::from_uuid(uuid_of(&id, "session id")?),
                    user_id: UserId::from_uuid(uuid_of(&user, "user id")?),
                    created_at: sql::from_db(created),
                    expires_at: sql::from_db(expires),
                },
                revoked,
                consumed,
            })
        })
        .transpose()?;
        let session = match sql::judge(family.as_ref(), now) {
            Verdict::Consume => family.map(|f| f.session).ok_or(RotateError::NotFound)?,
            Verdict::Refuse(why) => return Err(why.into()),
            Verdict::RevokeAndRefuse(why) => {
                if let Some(f) = &family {
                    revoke_session(&mut tx, f.session.id, now).await?;
                }
                tx.commit().await.map_err(store)?;
                return Err(why.into());
            }
        };
        // The one-shot consumption: must affect exactly one row.
        let consumed = sqlx::query(
            "UPDATE refresh_tokens SET consumed_at = ?2 WHERE hash = ?1 AND consumed_at IS NULL",
        )
        .bind(sql::hash_bytes(&presented))
        .bind(sql::to_db(now))
        .execute(&mut *tx)
        .await
        .map_err(store)?
        .rows_affected();
        if consumed != 1 {
            revoke_session(&mut tx, session.id, now).await?;
            tx.commit().await.map_err(store)?;
            return Err(RotateError::Reused);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, parent_hash, issued_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(sql::hash_bytes(&successor))
        .bind(session.id.to_string())
        .bind(sql::hash_bytes(&presented))
        .bind(sql::to_db(now))
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        sqlx::query("UPDATE sessions SET last_used_at = ?2 WHERE id = ?1")
            .bind(session.id.to_string())
            .bind(sql::to_db(now))
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok(session)
    }

    async fn revoke_by_token(&self, presented: RefreshTokenHash) -> Result<bool, StoreError> {
        let revoked = sqlx::query(&format!(
            "UPDATE sessions SET revoked_at = {SQL_NOW} \
             WHERE revoked_at IS NULL \
               AND id = (SELECT session_id FROM refresh_tokens WHERE hash = ?1)"
        ))
        .bind(sql::hash_bytes(&presented))
        .execute(&self.pool)
        .await
        .map_err(store)?
        .rows_affected();
        Ok(revoked > 0)
    }

    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        Ok(sqlx::query(&format!(
            "UPDATE sessions SET revoked_at = {SQL_NOW} WHERE user_id = ?1 AND revoked_at IS NULL"
        ))
        .bind(user.to_string())
        .execute(&self.pool)
        .await
        .map_err(store)?
        .rows_affected())
    }

    async fn is_active(&self, session: SessionId, now: Timestamp) -> Result<bool, StoreError> {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM sessions \
             WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2)",
        )
        .bind(session.to_string())
        .bind(sql::to_db(now))
        .fetch_one(&self.pool)
        .await
        .map_err(store)
    }

    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM sessions WHERE id IN ( \
                 SELECT id FROM sessions \
                 WHERE revoked_at IS NOT NULL OR expires_at <= ?1 \
                 LIMIT ?2)",
        )
        .bind(sql::to_db(now))
        .bind(sql::limit_to_db(limit))
        .execute(&self.pool)
        .await
        .map_err(store)?
        .rows_affected())
    }
}

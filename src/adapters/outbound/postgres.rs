//! PostgreSQL `UserRepo` and `RefreshStore` (sqlx runtime queries). Several service instances
//! may share one database: a rotation is one statement (or, when it is refused, one
//! transaction) that locks its session's row, so concurrent rotations of one token, on any
//! instance, yield exactly one success.
//!
//! Lock order everywhere is session row, then token rows — the order of the cascade when a
//! session is deleted — so rotation, revocation and the purge never deadlock each other.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::sql::{self, Family, PoolSettings, Verdict};
use crate::domain::{
    Email, PasswordHash, RefreshTokenHash, Session, SessionId, Timestamp, User, UserId,
};
use crate::ports::{CreateUserError, RefreshStore, RotateError, StoreError, UserRepo};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection classes meaning "cannot reach the database right now": connection exceptions
/// (08xxx), the server shutting down or starting (57P0x), too many connections (53300).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0") || code == "53300"
}

fn store(e: sqlx::Error) -> StoreError {
    sql::store_error(e, unavailable_code)
}

fn options(url: &str) -> anyhow::Result<(PgConnectOptions, String)> {
    // The parse error of a URL never contains its password (the url crate's messages name
    // the problem only), but say nothing of the URL anyway.
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?
        .application_name("jwt-auth");
    let name = format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("")
    );
    Ok((opts, name))
}

/// A connection idle for at least this long is pinged before it is handed out; one in steady
/// use is not. sqlx's default pings on every acquire, a round trip per query; it also pings
/// every connection it takes back (that cannot be turned off) and drops it if the ping fails,
/// so a connection that broke while in use is never handed out again.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

fn pool_options(settings: PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Connects once directly (to report the real cause of a failure, not a pool timeout), then
/// opens the pool. Returns the pool and a description of the database without its password.
pub(crate) async fn connect(url: &str, settings: PoolSettings) -> anyhow::Result<(PgPool, String)> {
    let (opts, name) = options(url)?;
    let probe = tokio::time::timeout(settings.acquire_timeout, PgConnection::connect_with(&opts))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot connect to the database at {name}: no answer within {} s",
                settings.acquire_timeout.as_secs_f32()
            )
        })?
        .map_err(|e| anyhow::anyhow!("cannot connect to the database at {name}: {e}"))?;
    let _ = probe.close().await;
    let pool = pool_options(settings).connect_lazy_with(opts);
    Ok((pool, name))
}

/// A pool that connects on first use.
pub(crate) fn connect_lazy(url: &str, settings: PoolSettings) -> anyhow::Result<(PgPool, String)> {
    let (opts, name) = options(url)?;
    Ok((pool_options(settings).connect_lazy_with(opts), name))
}

/// Columns of a `User`, with times as Unix seconds.
const USER_COLUMNS: &str =
    "id, email, password_hash, extract(epoch FROM created_at)::int8, disabled";

type UserRow = (Uuid, String, String, i64, bool);

fn user_of(row: UserRow) -> Result<User, StoreError> {
    let (id, email, hash, created_at, disabled) = row;
    Ok(User {
        id: UserId::from_uuid(id),
        email: Email::parse(&email).map_err(|_| sql::corrupt("email"))?,
        password_hash: PasswordHash::new(hash),
        disabled,
        created_at: sql::from_db(created_at),
    })
}

/// Accounts in the `users` table.
#[derive(Debug, Clone)]
pub struct PostgresUserRepo {
    pool: PgPool,
}

impl PostgresUserRepo {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserRepo for PostgresUserRepo {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store)?
        .map(user_of)
        .transpose()
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(store)?
            .map(user_of)
            .transpose()
    }

    async fn create(&self, user: User) -> Result<(), CreateUserError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at, disabled) \
             VALUES ($1, $2, $3, to_timestamp($4), $5)",
        )
        .bind(user.id.as_uuid())
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
            "UPDATE users SET disabled = $2 WHERE email = $1 RETURNING {USER_COLUMNS}"
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
pub struct PostgresRefreshStore {
    pool: PgPool,
}

impl PostgresRefreshStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

type FamilyRow = (Uuid, Uuid, i64, i64, bool, bool);

type RotatedRow = (Uuid, Uuid, i64, i64);

/// A successful rotation as one statement, atomic by itself (no explicit transaction, one
/// round trip, one commit). `family` locks the session row first — the lock order used
/// everywhere — and selects it only in the `Verdict::Consume` case of `sql::judge`: the token
/// is current, the session is not revoked and `now` is before its end (compared in whole
/// seconds, as `judge` does). `consumed` is the one-shot consumption: a rotation that queued
/// on the lock behind a winner re-reads the token row there and matches nothing. Only then
/// are the successor inserted and the session touched. No row back: nothing was changed.
const ROTATE: &str = "\
    WITH family AS MATERIALIZED ( \
        SELECT s.id, s.user_id, s.created_at, s.expires_at \
        FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
        WHERE t.hash = $1 AND t.consumed_at IS NULL AND s.revoked_at IS NULL \
          AND extract(epoch FROM s.expires_at)::int8 > $3 \
        FOR UPDATE OF s), \
    consumed AS ( \
        UPDATE refresh_tokens t SET consumed_at = to_timestamp($3) \
        FROM family f \
        WHERE t.hash = $1 AND t.session_id = f.id AND t.consumed_at IS NULL \
        RETURNING f.id, f.user_id, f.created_at, f.expires_at), \
    successor AS ( \
        INSERT INTO refresh_tokens (hash, session_id, parent_hash, issued_at) \
        SELECT $2, id, $1, to_timestamp($3) FROM consumed), \
    touched AS ( \
        UPDATE sessions s SET last_used_at = to_timestamp($3) \
        FROM consumed c WHERE s.id = c.id) \
    SELECT id, user_id, extract(epoch FROM created_at)::int8, \
           extract(epoch FROM expires_at)::int8 \
    FROM consumed";

async fn revoke_session(
    tx: &mut PgConnection,
    session: SessionId,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = to_timestamp($2) WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session.as_uuid())
    .bind(sql::to_db(now))
    .execute(tx)
    .await
    .map_err(store)?;
    Ok(())
}

impl PostgresRefreshStore {
    /// The common case of `rotate` in one round trip: the rotated session, or `None` when the
    /// statement changed nothing (a refusal or a lost race, for the transaction to diagnose).
    async fn rotate_at_once(
        &self,
        presented: &RefreshTokenHash,
        successor: &RefreshTokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let rotated = sqlx::query_as::<_, RotatedRow>(ROTATE)
            .bind(sql::hash_bytes(presented))
            .bind(sql::hash_bytes(successor))
            .bind(sql::to_db(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(store)?;
        Ok(rotated.map(|(id, user, created, expires)| Session {
            id: SessionId::from_uuid(id),
            user_id: UserId::from_uuid(user),
            created_at: sql::from_db(created),
            expires_at: sql::from_db(expires),
        }))
    }
}

#[async_trait]
impl RefreshStore for PostgresRefreshStore {
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) \
             VALUES ($1, $2, to_timestamp($3), to_timestamp($4))",
        )
        .bind(session.id.as_uuid())
        .bind(session.user_id.as_uuid())
        .bind(sql::to_db(session.created_at))
        .bind(sql::to_db(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, issued_at) \
             VALUES ($1, $2, to_timestamp($3))",
        )
        .bind(sql::hash_bytes(&first))
        .bind(session.id.as_uuid())
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
        if let Some(session) = self.rotate_at_once(&presented, &successor, now).await? {
            return Ok(session);
        }
        // Nothing changed: decide with `sql::judge`, under the family's lock. This also
        // rotates if the token turns out to be current after all.
        let mut tx = self.pool.begin().await.map_err(store)?;
        // Lock the family first: concurrent rotations of one token queue here.
        let family = sqlx::query_as::<_, FamilyRow>(
            "SELECT s.id, s.user_id, extract(epoch FROM s.created_at)::int8, \
                    extract(epoch FROM s.expires_at)::int8, \
                    s.revoked_at IS NOT NULL, t.consumed_at IS NOT NULL \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.hash = $1 \
             FOR UPDATE OF s",
        )
        .bind(sql::hash_bytes(&presented))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store)?
        .map(|(id, user, created, expires, revoked, consumed)| Family {
            session: Session {
                id: SessionId::from_uuid(id),
                user_id: UserId::from_uuid(user),
                created_at: sql::from_db(created),
                expires_at: sql::from_db(expires),
            },
            revoked,
            consumed,
        });
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
        // The one-shot consumption: must affect exactly one row. A waiter that queued behind
        // the winner may have read the token before it was consumed; this catches it.
        let consumed = sqlx::query(
            "UPDATE refresh_tokens SET consumed_at = to_timestamp($2) \
             WHERE hash = $1 AND consumed_at IS NULL",
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
             VALUES ($1, $2, $3, to_timestamp($4))",
        )
        .bind(sql::hash_bytes(&successor))
        .bind(session.id.as_uuid())
        .bind(sql::hash_bytes(&presented))
        .bind(sql::to_db(now))
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        sqlx::query("UPDATE sessions SET last_used_at = to_timestamp($2) WHERE id = $1")
            .bind(session.id.as_uuid())
            .bind(sql::to_db(now))
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok(session)
    }

    async fn revoke_by_token(&self, presented: RefreshTokenHash) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = now() \
             WHERE revoked_at IS NULL \
               AND id = (SELECT session_id FROM refresh_tokens WHERE hash = $1)",
        )
        .bind(sql::hash_bytes(&presented))
        .execute(&self.pool)
        .await
        .map_err(store)?
        .rows_affected();
        Ok(revoked > 0)
    }

    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(store)?
        .rows_affected())
    }

    async fn is_active(&self, session: SessionId, now: Timestamp) -> Result<bool, StoreError> {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM sessions \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > to_timestamp($2))",
        )
        .bind(session.as_uuid())
        .bind(sql::to_db(now))
        .fetch_one(&self.pool)
        .await
        .map_err(store)
    }

    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        // SKIP LOCKED: instances purging at once take different rows instead of queueing.
        Ok(sqlx::query(
            "DELETE FROM sessions WHERE id IN ( \
                 SELECT id FROM sessions \
                 WHERE revoked_at IS NOT NULL OR expires_at <= to_timestamp($1) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(sql::to_db(now))
        .bind(sql::limit_to_db(limit))
        .execute(&self.pool)
        .await
        .map_err(store)?
        .rows_affected())
    }
}

//! PostgreSQL `UserRepo` and `RefreshStore` (sqlx runtime queries): the PostgreSQL dialect of
//! `common::sql_stores!`. Several service instances may share one database: a rotation is
//! one statement (or, when it is refused, one transaction) that locks its session's row, so
//! concurrent rotations of one token, on any instance, yield exactly one success.
//!
//! Lock order everywhere is session row, then token rows — the order of the cascade when a
//! session is deleted — so rotation, revocation and the purge never deadlock each other.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};
use uuid::Uuid;

use super::common::{self, PoolSettings, Queries};
use crate::domain::Session;
use crate::ports::{Rotation, StoreError};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection classes meaning "cannot reach the database right now": connection exceptions
/// (08xxx), the server shutting down or starting (57P0x), too many connections (53300).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0") || code == "53300"
}

pub(super) fn store(e: sqlx::Error) -> StoreError {
    common::store_error(e, unavailable_code)
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

/// Uuids are native.
type Id = Uuid;

fn id(u: Uuid) -> Id {
    u
}

fn uuid(u: Id, _what: &str) -> Result<Uuid, StoreError> {
    Ok(u)
}

/// Row locks (`FOR UPDATE` in `read_presented`) serialize rotations; the transaction itself
/// needs nothing special.
async fn begin_write(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin().await
}

/// Columns of a `User`, with times as Unix seconds.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, extract(epoch FROM created_at)::int8, disabled, email_verified"
    };
}

/// Times are `timestamptz`, bound and read as Unix seconds.
const SQL: Queries = Queries {
    find_user_by_email: concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"),
    find_user_by_id: concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
    insert_user: "INSERT INTO users (id, email, password_hash, created_at, disabled, \
                                     email_verified) \
                  VALUES ($1, $2, $3, to_timestamp($4), $5, $6)",
    mark_email_verified: "UPDATE users SET email_verified = true WHERE id = $1",
    set_disabled: concat!(
        "UPDATE users SET disabled = $2 WHERE email = $1 RETURNING ",
        user_columns!()
    ),
    replace_password_hash: "UPDATE users SET password_hash = $3 \
                            WHERE id = $1 AND password_hash = $2",
    change_password_keeping: "UPDATE users SET password_hash = $3 \
                              WHERE id = $1 AND password_hash = $2 AND NOT disabled \
                                AND EXISTS (SELECT 1 FROM sessions \
                                            WHERE id = $4 AND user_id = $1 \
                                              AND revoked_at IS NULL \
                                              AND expires_at > to_timestamp($5) \
                                              AND (idle_expires_at IS NULL \
                                                   OR idle_expires_at > to_timestamp($5)))",
    change_password: "UPDATE users SET password_hash = $3 \
                      WHERE id = $1 AND password_hash = $2 AND NOT disabled",
    list_users: concat!(
        "SELECT ",
        user_columns!(),
        " FROM users ORDER BY created_at, email"
    ),
    // FOR UPDATE of the user: a disabling that updated the row first is waited for and then
    // seen; one that comes later waits for this transaction, so its revocation sees the
    // session. Logins of one user queue here too, so each one's cap sees the others.
    insert_session: "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at, \
                                           idle_expires_at, user_agent, client_addr) \
                     SELECT $1, $2, to_timestamp($3), to_timestamp($4), to_timestamp($3), \
                            to_timestamp($5), $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM users \
                                   WHERE id = $2 AND NOT disabled FOR UPDATE)",
    cap_sessions: "UPDATE sessions SET revoked_at = to_timestamp($2) \
                   WHERE id IN (SELECT id FROM sessions \
                                WHERE user_id = $1 AND id <> $4 AND revoked_at IS NULL \
                                  AND expires_at > to_timestamp($2) \
                                  AND (idle_expires_at IS NULL \
                                       OR idle_expires_at > to_timestamp($2)) \
                                ORDER BY coalesce(last_used_at, created_at) DESC, \
                                         created_at DESC, id \
                                OFFSET $3)",
    insert_first_token: "INSERT INTO refresh_tokens (hash, session_id, issued_at) \
                         VALUES ($1, $2, to_timestamp($3))",
    // Locks the family first (the session row): concurrent rotations of one token queue here.
    token_known: "SELECT 1 FROM refresh_tokens WHERE hash = $1",
    read_presented: "SELECT s.id, s.user_id, extract(epoch FROM s.created_at)::int8, \
                            extract(epoch FROM s.expires_at)::int8, \
                            extract(epoch FROM s.idle_expires_at)::int8, \
                            s.revoked_at IS NOT NULL, extract(epoch FROM t.consumed_at)::int8, \
                            (SELECT c.hash FROM refresh_tokens c \
                                    WHERE c.parent_hash = t.hash AND c.consumed_at IS NULL), \
                            u.id IS NOT NULL AND NOT u.disabled, t.generation \
                     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                          LEFT JOIN users u ON u.id = s.user_id \
                     WHERE t.hash = $1 \
                     FOR UPDATE OF s",
    consume_token: "UPDATE refresh_tokens SET consumed_at = to_timestamp($2) \
                    WHERE hash = $1 AND consumed_at IS NULL",
    insert_successor: "INSERT INTO refresh_tokens \
                           (hash, session_id, parent_hash, issued_at, generation) \
                       VALUES ($1, $2, $3, to_timestamp($4), $5)",
    forget_tokens: "DELETE FROM refresh_tokens WHERE session_id = $1 AND generation <= $2",
    touch_session: "UPDATE sessions \
                    SET last_used_at = to_timestamp($2), idle_expires_at = to_timestamp($3) \
                    WHERE id = $1",
    revoke_session: "UPDATE sessions SET revoked_at = to_timestamp($2) \
                     WHERE id = $1 AND revoked_at IS NULL",
    revoke_by_token: "UPDATE sessions SET revoked_at = now() \
                      WHERE revoked_at IS NULL \
                        AND id = (SELECT session_id FROM refresh_tokens WHERE hash = $1) RETURNING id, user_id",
    revoke_user_sessions: "UPDATE sessions SET revoked_at = now() \
                           WHERE user_id = $1 AND revoked_at IS NULL",
    token_owner: "SELECT s.id, s.user_id, extract(epoch FROM t.consumed_at)::int8, \
                         EXISTS (SELECT 1 FROM refresh_tokens c \
                                 WHERE c.parent_hash = t.hash AND c.consumed_at IS NULL) \
                  FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                  WHERE t.hash = $1 AND s.revoked_at IS NULL \
                    AND s.expires_at > to_timestamp($2) \
                    AND (s.idle_expires_at IS NULL OR s.idle_expires_at > to_timestamp($2))",
    revoke_other_sessions: "UPDATE sessions SET revoked_at = now() \
                            WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
    revoke_owned_session: "UPDATE sessions SET revoked_at = to_timestamp($3) \
                           WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
                             AND expires_at > to_timestamp($3) \
                             AND (idle_expires_at IS NULL \
                                  OR idle_expires_at > to_timestamp($3))",
    list_sessions: "SELECT id, user_id, extract(epoch FROM created_at)::int8, \
                           extract(epoch FROM expires_at)::int8, \
                           extract(epoch FROM idle_expires_at)::int8, \
                           extract(epoch FROM coalesce(last_used_at, created_at))::int8, \
                           user_agent, client_addr \
                    FROM sessions \
                    WHERE user_id = $1 AND revoked_at IS NULL \
                      AND expires_at > to_timestamp($2) \
                      AND (idle_expires_at IS NULL OR idle_expires_at > to_timestamp($2)) \
                    ORDER BY coalesce(last_used_at, created_at) DESC, created_at DESC, id \
                    LIMIT $3",
    count_live_sessions: "SELECT count(*) FROM sessions \
                          WHERE revoked_at IS NULL AND expires_at > to_timestamp($1) \
                          AND (idle_expires_at IS NULL OR idle_expires_at > to_timestamp($1))",
    live_session_user: "SELECT u.id, u.email, u.password_hash, \
                               extract(epoch FROM u.created_at)::int8, u.disabled, \
                               u.email_verified \
                        FROM sessions s JOIN users u ON u.id = s.user_id \
                        WHERE s.id = $1 AND s.revoked_at IS NULL \
                          AND s.expires_at > to_timestamp($2) \
                          AND (s.idle_expires_at IS NULL \
                               OR s.idle_expires_at > to_timestamp($2))",
    tighten_idle_ends: "UPDATE sessions \
                        SET idle_expires_at = LEAST(coalesce(last_used_at, created_at) \
                                                    + $1::int8 * interval '1 second', \
                                                    expires_at) \
                        WHERE revoked_at IS NULL \
                          AND (idle_expires_at IS NULL OR idle_expires_at > \
                               LEAST(coalesce(last_used_at, created_at) \
                                     + $1::int8 * interval '1 second', expires_at))",
    // SKIP LOCKED: instances purging at once take different rows instead of queueing.
    purge: "DELETE FROM sessions WHERE id IN ( \
                SELECT id FROM sessions \
                WHERE revoked_at IS NOT NULL OR expires_at <= to_timestamp($1) \
                   OR idle_expires_at <= to_timestamp($1) \
                LIMIT $2 FOR UPDATE SKIP LOCKED)",
};

/// A successful rotation as one statement, atomic by itself (no explicit transaction, one
/// round trip, one commit). `family` locks the session row first — the lock order used
/// everywhere — and selects it only in the `RotationVerdict::Consume` case of
/// `domain::judge_rotation`: the token is current, the session is not revoked, its user
/// exists and is enabled, and `now` is before both its ends (compared in whole seconds, as the
/// rule does). `consumed` is the one-shot consumption: a rotation that queued on the lock
/// behind a winner re-reads the token row there and matches nothing. Only then are the
/// successor inserted, the tokens beyond the kept history (`$4` consumed ones) forgotten and
/// the session touched (last use, and the idle end `$5`, never past the absolute end). No row
/// back: nothing was changed.
const ROTATE: &str = "\
    WITH family AS MATERIALIZED ( \
        SELECT s.id, s.user_id, s.created_at, s.expires_at, t.generation \
        FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id \
        WHERE t.hash = $1 AND t.consumed_at IS NULL AND s.revoked_at IS NULL \
          AND NOT u.disabled AND extract(epoch FROM s.expires_at)::int8 > $3 \
          AND (s.idle_expires_at IS NULL \
               OR extract(epoch FROM s.idle_expires_at)::int8 > $3) \
        FOR UPDATE OF s), \
    consumed AS ( \
        UPDATE refresh_tokens t SET consumed_at = to_timestamp($3) \
        FROM family f \
        WHERE t.hash = $1 AND t.session_id = f.id AND t.consumed_at IS NULL \
        RETURNING f.id, f.user_id, f.created_at, f.expires_at, f.generation), \
    successor AS ( \
        INSERT INTO refresh_tokens (hash, session_id, parent_hash, issued_at, generation) \
        SELECT $2, id, $1, to_timestamp($3), generation + 1 FROM consumed), \
    forgotten AS ( \
        DELETE FROM refresh_tokens t USING consumed c \
        WHERE t.session_id = c.id AND t.generation <= c.generation - $4), \
    idle AS ( \
        SELECT CASE WHEN $5::int8 IS NULL THEN NULL \
                    ELSE LEAST($5::int8, extract(epoch FROM expires_at)::int8) END AS at \
        FROM consumed), \
    touched AS ( \
        UPDATE sessions s \
        SET last_used_at = to_timestamp($3), idle_expires_at = to_timestamp(i.at) \
        FROM consumed c, idle i WHERE s.id = c.id) \
    SELECT c.id, c.user_id, extract(epoch FROM c.created_at)::int8, \
           extract(epoch FROM c.expires_at)::int8, i.at \
    FROM consumed c, idle i";

/// The common case of `rotate` in one round trip: the rotated session, or `None` when the
/// statement changed nothing (a refusal or a lost race, for the transaction to diagnose).
async fn rotate_at_once(pool: &PgPool, rotation: &Rotation) -> Result<Option<Session>, StoreError> {
    sqlx::query_as::<_, common::SessionRow<Id>>(ROTATE)
        .bind(common::hash_bytes(&rotation.presented))
        .bind(common::hash_bytes(&rotation.successor))
        .bind(common::to_db(rotation.now))
        .bind(common::kept_consumed())
        .bind(rotation.idle_expires_at.map(common::to_db))
        .fetch_optional(pool)
        .await
        .map_err(store)?
        .map(|row| common::session_of(row, uuid))
        .transpose()
}

common::sql_stores!(
    db: Postgres,
    users: PostgresUserRepo,
    sessions: PostgresRefreshStore,
    fast_rotate: rotate_at_once,
);

//! SQLite `UserRepo` and `RefreshStore` (sqlx runtime queries): the SQLite dialect of
//! `common::sql_stores!`. One node, persistent, no server. WAL journal, so readers never
//! wait for the writer; every write transaction starts with `BEGIN IMMEDIATE`, taking the
//! database's write lock up front, so concurrent rotations queue (up to the busy timeout)
//! and exactly one of them finds the token unconsumed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::common::{self, PoolSettings, Queries};
use crate::ports::StoreError;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for the write lock before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Primary result codes meaning "cannot use the database right now": BUSY, LOCKED (the lock
/// was not had within the busy timeout), IOERR, CANTOPEN. sqlx reports extended codes.
fn unavailable_code(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 14))
}

pub(super) fn store(e: sqlx::Error) -> StoreError {
    common::store_error(e, unavailable_code)
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

/// Uuids are stored as their hyphenated text.
type Id = String;

fn id(u: Uuid) -> Id {
    u.to_string()
}

fn uuid(text: Id, what: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(&text).map_err(|_| common::corrupt(what))
}

/// The write lock, taken before reading: write transactions run one at a time.
async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

macro_rules! user_columns {
    () => {
        "id, email, password_hash, created_at, disabled, email_verified"
    };
}

/// The current time in SQL, for revocations the port does not give a time for.
macro_rules! sql_now {
    () => {
        "CAST(strftime('%s', 'now') AS INTEGER)"
    };
}

/// Times are integer Unix seconds.
const SQL: Queries = Queries {
    find_user_by_email: concat!("SELECT ", user_columns!(), " FROM users WHERE email = ?1"),
    find_user_by_id: concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1"),
    insert_user: "INSERT INTO users (id, email, password_hash, created_at, disabled, \
                                     email_verified) \
                  VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    mark_email_verified: "UPDATE users SET email_verified = 1 WHERE id = ?1",
    set_disabled: concat!(
        "UPDATE users SET disabled = ?2 WHERE email = ?1 RETURNING ",
        user_columns!()
    ),
    replace_password_hash: "UPDATE users SET password_hash = ?3 \
                            WHERE id = ?1 AND password_hash = ?2",
    change_password_keeping: "UPDATE users SET password_hash = ?3 \
                              WHERE id = ?1 AND password_hash = ?2 AND disabled = 0 \
                                AND EXISTS (SELECT 1 FROM sessions \
                                            WHERE id = ?4 AND user_id = ?1 \
                                              AND revoked_at IS NULL AND expires_at > ?5 \
                                              AND (idle_expires_at IS NULL \
                                                   OR idle_expires_at > ?5))",
    change_password: "UPDATE users SET password_hash = ?3 \
                      WHERE id = ?1 AND password_hash = ?2 AND disabled = 0",
    list_users: concat!(
        "SELECT ",
        user_columns!(),
        " FROM users ORDER BY created_at, email"
    ),
    // The write transaction (BEGIN IMMEDIATE) makes the check and the insert one step.
    insert_session: "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at, \
                                           idle_expires_at, user_agent, client_addr) \
                     SELECT ?1, ?2, ?3, ?4, ?3, ?5, ?6, ?7 \
                     WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2 AND disabled = 0)",
    cap_sessions: "UPDATE sessions SET revoked_at = ?2 \
                   WHERE id IN (SELECT id FROM sessions \
                                WHERE user_id = ?1 AND id <> ?4 AND revoked_at IS NULL \
                                  AND expires_at > ?2 \
                                  AND (idle_expires_at IS NULL OR idle_expires_at > ?2) \
                                ORDER BY coalesce(last_used_at, created_at) DESC, \
                                         created_at DESC, id \
                                LIMIT -1 OFFSET ?3)",
    insert_first_token: "INSERT INTO refresh_tokens (hash, session_id, issued_at) \
                         VALUES (?1, ?2, ?3)",
    token_known: "SELECT 1 FROM refresh_tokens WHERE hash = ?1",
    read_presented: "SELECT s.id, s.user_id, s.created_at, s.expires_at, s.idle_expires_at, \
                            s.revoked_at IS NOT NULL, t.consumed_at, \
                            (SELECT c.hash FROM refresh_tokens c \
                                    WHERE c.parent_hash = t.hash AND c.consumed_at IS NULL), \
                            u.id IS NOT NULL AND u.disabled = 0, t.generation \
                     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                          LEFT JOIN users u ON u.id = s.user_id \
                     WHERE t.hash = ?1",
    consume_token: "UPDATE refresh_tokens SET consumed_at = ?2 \
                    WHERE hash = ?1 AND consumed_at IS NULL",
    insert_successor: "INSERT INTO refresh_tokens \
                           (hash, session_id, parent_hash, issued_at, generation) \
                       VALUES (?1, ?2, ?3, ?4, ?5)",
    forget_tokens: "DELETE FROM refresh_tokens WHERE session_id = ?1 AND generation <= ?2",
    touch_session: "UPDATE sessions SET last_used_at = ?2, idle_expires_at = ?3 WHERE id = ?1",
    revoke_session: "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    revoke_by_token: concat!(
        "UPDATE sessions SET revoked_at = ",
        sql_now!(),
        " WHERE revoked_at IS NULL \
           AND id = (SELECT session_id FROM refresh_tokens WHERE hash = ?1) RETURNING id, user_id"
    ),
    revoke_user_sessions: concat!(
        "UPDATE sessions SET revoked_at = ",
        sql_now!(),
        " WHERE user_id = ?1 AND revoked_at IS NULL"
    ),
    token_owner: "SELECT s.id, s.user_id, t.consumed_at, \
                         EXISTS (SELECT 1 FROM refresh_tokens c \
                                 WHERE c.parent_hash = t.hash AND c.consumed_at IS NULL) \
                  FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                  WHERE t.hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 \
                    AND (s.idle_expires_at IS NULL OR s.idle_expires_at > ?2)",
    revoke_other_sessions: concat!(
        "UPDATE sessions SET revoked_at = ",
        sql_now!(),
        " WHERE user_id = ?1 AND id <> ?2 AND revoked_at IS NULL"
    ),
    revoke_owned_session: "UPDATE sessions SET revoked_at = ?3 \
                           WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL \
                             AND expires_at > ?3 \
                             AND (idle_expires_at IS NULL OR idle_expires_at > ?3)",
    list_sessions: "SELECT id, user_id, created_at, expires_at, idle_expires_at, \
                           coalesce(last_used_at, created_at), user_agent, client_addr \
                    FROM sessions \
                    WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
                      AND (idle_expires_at IS NULL OR idle_expires_at > ?2) \
                    ORDER BY coalesce(last_used_at, created_at) DESC, created_at DESC, id \
                    LIMIT ?3",
    count_live_sessions: "SELECT count(*) FROM sessions \
                          WHERE revoked_at IS NULL AND expires_at > ?1 \
                          AND (idle_expires_at IS NULL OR idle_expires_at > ?1)",
    live_session_user: "SELECT u.id, u.email, u.password_hash, u.created_at, u.disabled, \
                               u.email_verified \
                        FROM sessions s JOIN users u ON u.id = s.user_id \
                        WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 \
                          AND (s.idle_expires_at IS NULL OR s.idle_expires_at > ?2)",
    tighten_idle_ends: "UPDATE sessions \
                        SET idle_expires_at = min(coalesce(last_used_at, created_at) + ?1, \
                                                  expires_at) \
                        WHERE revoked_at IS NULL \
                          AND (idle_expires_at IS NULL OR idle_expires_at > \
                               min(coalesce(last_used_at, created_at) + ?1, expires_at))",
    purge: "DELETE FROM sessions WHERE id IN ( \
                SELECT id FROM sessions \
                WHERE revoked_at IS NOT NULL OR expires_at <= ?1 OR idle_expires_at <= ?1 \
                LIMIT ?2)",
};

common::sql_stores!(
    db: Sqlite,
    users: SqliteUserRepo,
    sessions: SqliteRefreshStore,
);

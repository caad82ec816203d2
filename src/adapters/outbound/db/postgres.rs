//! PostgreSQL `UserRepo` and `RefreshStore` (sqlx runtime queries): the PostgreSQL dialect of
//! `common::sql_stores!`. Several service instances may share one database: a rotation is
//! one statement (or, when it is refused, one transaction) that locks its session's row, so
//! concurrent rotations of one token, on any instance, yield exactly one success.
//!
//! Lock order everywhere is session row, then token rows — the order of the cascade when a
//! session is deleted — so rotation, revocation and the purge never deadlock each other.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};
use tokio::sync::{mpsc, oneshot};
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
/// successor inserted, the token that falls out of the kept history (`$4` consumed ones)
/// forgotten — one generation, found by its index entry: every earlier rotation forgot the
/// ones before it (the slow path's `forget_tokens` takes a range, and catches up) — and
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
        WHERE t.session_id = c.id AND t.generation = c.generation - $4), \
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

/// `ROTATE` over many rotations at once: one statement and one commit for all of them, the
/// `n`th row of the arrays (`presented, successor, now, idle end`) answered with `n`. The
/// statement is the function of migration 0015, planned there with index lookups only: as a
/// prepared statement here, a plan made on a young database was kept by the connection until
/// statistics changed, and scanned all of `refresh_tokens` for every batch meanwhile.
const ROTATE_MANY: &str = "SELECT * FROM rotate_refresh_tokens($1, $2, $3, $4, $5)";

/// Most rotations one `ROTATE_MANY` carries.
const MAX_BATCH: usize = 64;

/// Batches in flight at once per store: while one waits for its commit to be flushed, the next
/// one collects the rotations that arrive meanwhile.
const BATCH_WORKERS: usize = 2;

/// Rotations waiting for a batch; beyond this a refresh waits for room (the HTTP connection
/// limit bounds them long before).
const QUEUED: usize = 4096;

/// What a batch did with one rotation.
enum Batched {
    Rotated(Session),
    /// Nothing changed: the transaction diagnoses (or rotates after all).
    Unchanged,
    /// The batch failed for a reason that may be one rotation's: run this one alone.
    Alone,
}

struct Job {
    rotation: Rotation,
    reply: oneshot::Sender<Result<Batched, StoreError>>,
}

/// Group commit for `rotate_at_once`: rotations arriving together run as one `ROTATE_MANY`,
/// one statement and one commit (synchronous, as every other), each caller getting its own
/// outcome. Nothing waits to fill a batch: a worker takes whatever is queued when it is free,
/// so an idle service runs a lone rotation at once. The workers start on first use (within
/// the runtime) and end when the last clone of the store is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    pool: PgPool,
    queue: Arc<OnceLock<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

impl GroupCommit {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Arc::new(OnceLock::new()),
        }
    }

    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (send, receive) = mpsc::channel(QUEUED);
            let receive = Arc::new(tokio::sync::Mutex::new(receive));
            for _ in 0..BATCH_WORKERS {
                tokio::spawn(batch_worker(self.pool.clone(), receive.clone()));
            }
            send
        })
    }
}

async fn batch_worker(pool: PgPool, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        // Waits for one rotation, then takes whatever else is queued (up to a full batch).
        if queue.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        run_batch(&pool, std::mem::take(&mut jobs)).await;
    }
}

/// Runs one batch and answers each of its rotations. A second rotation of a token already in
/// the batch is left out and answered `Unchanged` once the batch has committed: the
/// transaction then finds the token consumed by the first, the replay (or reuse) the rules
/// decide, exactly as when the two had come one after the other.
async fn run_batch(pool: &PgPool, jobs: Vec<Job>) {
    let mut seen = HashSet::with_capacity(jobs.len());
    let (batch, again): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|job| seen.insert(job.rotation.presented));
    let result = match batch.as_slice() {
        [one] => rotate_at_once(pool, &one.rotation).await.map(|s| vec![s]),
        _ => rotate_many(pool, &batch).await,
    };
    match result {
        Ok(sessions) => {
            for (job, session) in batch.into_iter().zip(sessions) {
                let _ = job
                    .reply
                    .send(Ok(session.map_or(Batched::Unchanged, Batched::Rotated)));
            }
            for job in again {
                let _ = job.reply.send(Ok(Batched::Unchanged));
            }
        }
        // The database is out of reach: nothing of the one statement was written, and alone
        // each would wait for the pool again.
        Err(StoreError::Unavailable(e)) => {
            let why = format!("{e:#}");
            for job in batch.into_iter().chain(again) {
                let _ = job.reply.send(Err(StoreError::Unavailable(anyhow::anyhow!(
                    "a batch of rotations failed: {why}"
                ))));
            }
        }
        // Possibly one rotation's fault (the statement is atomic: nothing was written), so
        // each runs alone and only that one fails.
        Err(StoreError::Unknown(e)) => {
            tracing::warn!(
                event = "rotation_batch_failed",
                size = batch.len(),
                error = %e,
                "a batch of refresh rotations failed; each runs alone"
            );
            for job in batch.into_iter().chain(again) {
                let _ = job.reply.send(Ok(Batched::Alone));
            }
        }
    }
}

/// `n, session id, user id, created_at, expires_at, idle_expires_at` of a rotated session.
type BatchRow = (i64, Id, Id, i64, i64, Option<i64>);

/// `ROTATE_MANY` over `batch`: the rotated session of each rotation, in order, or `None`.
async fn rotate_many(pool: &PgPool, batch: &[Job]) -> Result<Vec<Option<Session>>, StoreError> {
    let rotations = || batch.iter().map(|job| &job.rotation);
    let presented: Vec<&[u8]> = rotations()
        .map(|r| common::hash_bytes(&r.presented))
        .collect();
    let successors: Vec<&[u8]> = rotations()
        .map(|r| common::hash_bytes(&r.successor))
        .collect();
    let now: Vec<i64> = rotations().map(|r| common::to_db(r.now)).collect();
    let idle: Vec<Option<i64>> = rotations()
        .map(|r| r.idle_expires_at.map(common::to_db))
        .collect();
    let rows = sqlx::query_as::<_, BatchRow>(ROTATE_MANY)
        .bind(presented)
        .bind(successors)
        .bind(now)
        .bind(idle)
        .bind(common::kept_consumed())
        .fetch_all(pool)
        .await
        .map_err(store)?;
    let mut sessions: Vec<Option<Session>> = batch.iter().map(|_| None).collect();
    for (n, id, user, created, expires, idle) in rows {
        let slot = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| sessions.get_mut(i))
            .ok_or_else(|| StoreError::Unknown(anyhow::anyhow!("batch row {n} out of range")))?;
        *slot = Some(common::session_of(
            (id, user, created, expires, idle),
            uuid,
        )?);
    }
    Ok(sessions)
}

/// `rotate_at_once` through the group commit.
async fn rotate_grouped(
    group: &GroupCommit,
    rotation: &Rotation,
) -> Result<Option<Session>, StoreError> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        rotation: *rotation,
        reply,
    };
    if group.queue().send(job).await.is_ok() {
        match answer.await {
            Ok(Ok(Batched::Rotated(session))) => return Ok(Some(session)),
            Ok(Ok(Batched::Unchanged)) => return Ok(None),
            Ok(Err(e)) => return Err(e),
            // Alone, or the workers are gone (their runtime ended): whether or not their
            // batch committed, the statement alone or the transaction after it finds out (a
            // committed rotation is found consumed, its successor current: the replay).
            Ok(Ok(Batched::Alone)) | Err(_) => {}
        }
    }
    rotate_at_once(&group.pool, rotation).await
}

common::sql_stores!(
    db: Postgres,
    users: PostgresUserRepo,
    sessions: PostgresRefreshStore,
    fast_rotate: rotate_grouped,
    state: GroupCommit,
);

//! `WebhookOutbox` on the `webhook_outbox` table, for PostgreSQL and SQLite. On PostgreSQL a
//! claim skips the rows another worker is claiming (`FOR UPDATE SKIP LOCKED`), so instances
//! on one database share the work without waiting on each other; SQLite has one writer at a
//! time, so its claim statement is atomic as it is.

use crate::ports::{OutboxEntry, OutboxStats, StoreError, WebhookOutbox};

use super::common::limit_to_db;

fn to_db(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// What the backends differ in: the SQL and how an id is stored.
struct Sql {
    enqueue: &'static str,
    claim: &'static str,
    delivered: &'static str,
    retry: &'static str,
    release: &'static str,
    dead: &'static str,
    stats: &'static str,
    requeue: &'static str,
    purge_dead: &'static str,
}

macro_rules! outbox {
    ($name:ident, $db:ty, $store:path, $sql:expr, $id:ty, $to_id:expr, $parse:expr) => {
        /// The outbox in `webhook_outbox`.
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: sqlx::Pool<$db>,
        }

        impl $name {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }
        }

        #[async_trait::async_trait]
        impl WebhookOutbox for $name {
            async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
                let sql: &Sql = &$sql;
                let mut tx = self.pool.begin().await.map_err($store)?;
                for e in entries {
                    sqlx::query(sql.enqueue)
                        .bind(($to_id)(e.id))
                        .bind(&e.kind)
                        .bind(&e.body)
                        .bind(to_db(e.created_at))
                        .execute(&mut *tx)
                        .await
                        .map_err($store)?;
                }
                tx.commit().await.map_err($store)
            }

            async fn claim(
                &self,
                claim: uuid::Uuid,
                now: u64,
                lease_ms: u64,
                limit: usize,
            ) -> Result<Vec<OutboxEntry>, StoreError> {
                let sql: &Sql = &$sql;
                let rows: Vec<(i64, $id, String, String, i64, i64)> = sqlx::query_as(sql.claim)
                    .bind(($to_id)(claim))
                    .bind(to_db(now))
                    .bind(to_db(now.saturating_add(lease_ms)))
                    .bind(limit_to_db(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($store)?;
                let mut rows: Vec<_> = rows
                    .into_iter()
                    .filter_map(|(seq, id, kind, body, created_at, attempts)| {
                        Some((
                            seq,
                            OutboxEntry {
                                id: ($parse)(id)?,
                                kind,
                                body,
                                created_at: u64::try_from(created_at).unwrap_or(0),
                                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                            },
                        ))
                    })
                    .collect();
                // RETURNING has no order of its own.
                rows.sort_by_key(|(seq, _)| *seq);
                Ok(rows.into_iter().map(|(_, e)| e).collect())
            }

            async fn delivered(&self, id: uuid::Uuid, claim: uuid::Uuid) -> Result<(), StoreError> {
                let sql: &Sql = &$sql;
                sqlx::query(sql.delivered)
                    .bind(($to_id)(id))
                    .bind(($to_id)(claim))
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(())
            }

            async fn retry(
                &self,
                id: uuid::Uuid,
                claim: uuid::Uuid,
                next_at: Option<u64>,
                error: &str,
            ) -> Result<(), StoreError> {
                let sql: &Sql = &$sql;
                let query = match next_at {
                    Some(at) => sqlx::query(sql.retry)
                        .bind(($to_id)(id))
                        .bind(($to_id)(claim))
                        .bind(to_db(at))
                        .bind(error.to_owned()),
                    None => sqlx::query(sql.release)
                        .bind(($to_id)(id))
                        .bind(($to_id)(claim)),
                };
                query.execute(&self.pool).await.map_err($store)?;
                Ok(())
            }

            async fn dead_letter(
                &self,
                id: uuid::Uuid,
                claim: uuid::Uuid,
                now: u64,
                error: &str,
            ) -> Result<(), StoreError> {
                let sql: &Sql = &$sql;
                sqlx::query(sql.dead)
                    .bind(($to_id)(id))
                    .bind(($to_id)(claim))
                    .bind(to_db(now))
                    .bind(error.to_owned())
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(())
            }

            async fn stats(&self) -> Result<OutboxStats, StoreError> {
                let sql: &Sql = &$sql;
                let (pending, dead): (i64, i64) = sqlx::query_as(sql.stats)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(OutboxStats {
                    pending: u64::try_from(pending).unwrap_or(0),
                    dead: u64::try_from(dead).unwrap_or(0),
                })
            }

            async fn requeue_dead(&self, now: u64) -> Result<u64, StoreError> {
                let sql: &Sql = &$sql;
                let done = sqlx::query(sql.requeue)
                    .bind(to_db(now))
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(done.rows_affected())
            }

            async fn purge_dead(&self, dead_before: u64) -> Result<u64, StoreError> {
                let sql: &Sql = &$sql;
                let done = sqlx::query(sql.purge_dead)
                    .bind(to_db(dead_before))
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(done.rows_affected())
            }
        }
    };
}

const POSTGRES: Sql = Sql {
    enqueue: "INSERT INTO webhook_outbox (id, kind, body, created_at, next_attempt_at) \
              VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
    claim: "UPDATE webhook_outbox SET claim = $1, locked_until = $3 WHERE id IN ( \
                SELECT id FROM webhook_outbox \
                WHERE dead_at IS NULL AND next_attempt_at <= $2 AND locked_until <= $2 \
                ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
            RETURNING seq, id, kind, body, created_at, attempts::bigint",
    delivered: "DELETE FROM webhook_outbox WHERE id = $1 AND claim = $2",
    retry: "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $3, \
            last_error = $4, locked_until = 0, claim = NULL WHERE id = $1 AND claim = $2",
    release: "UPDATE webhook_outbox SET locked_until = 0, claim = NULL \
              WHERE id = $1 AND claim = $2",
    dead: "UPDATE webhook_outbox SET attempts = attempts + 1, dead_at = $3, last_error = $4, \
           locked_until = 0, claim = NULL WHERE id = $1 AND claim = $2",
    stats: "SELECT count(*) FILTER (WHERE dead_at IS NULL), \
                   count(*) FILTER (WHERE dead_at IS NOT NULL) FROM webhook_outbox",
    requeue: "UPDATE webhook_outbox SET dead_at = NULL, attempts = 0, created_at = $1, \
              next_attempt_at = $1 WHERE dead_at IS NOT NULL",
    purge_dead: "DELETE FROM webhook_outbox WHERE dead_at IS NOT NULL AND dead_at < $1",
};

const SQLITE: Sql = Sql {
    enqueue: "INSERT INTO webhook_outbox (id, kind, body, created_at, next_attempt_at) \
              VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) DO NOTHING",
    claim: "UPDATE webhook_outbox SET claim = ?1, locked_until = ?3 WHERE id IN ( \
                SELECT id FROM webhook_outbox \
                WHERE dead_at IS NULL AND next_attempt_at <= ?2 AND locked_until <= ?2 \
                ORDER BY seq LIMIT ?4) \
            RETURNING seq, id, kind, body, created_at, attempts",
    delivered: "DELETE FROM webhook_outbox WHERE id = ?1 AND claim = ?2",
    retry: "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?3, \
            last_error = ?4, locked_until = 0, claim = NULL WHERE id = ?1 AND claim = ?2",
    release: "UPDATE webhook_outbox SET locked_until = 0, claim = NULL \
              WHERE id = ?1 AND claim = ?2",
    dead: "UPDATE webhook_outbox SET attempts = attempts + 1, dead_at = ?3, last_error = ?4, \
           locked_until = 0, claim = NULL WHERE id = ?1 AND claim = ?2",
    stats: "SELECT count(*) FILTER (WHERE dead_at IS NULL), \
                   count(*) FILTER (WHERE dead_at IS NOT NULL) FROM webhook_outbox",
    requeue: "UPDATE webhook_outbox SET dead_at = NULL, attempts = 0, created_at = ?1, \
              next_attempt_at = ?1 WHERE dead_at IS NOT NULL",
    purge_dead: "DELETE FROM webhook_outbox WHERE dead_at IS NOT NULL AND dead_at < ?1",
};

outbox!(
    PostgresWebhookOutbox,
    sqlx::Postgres,
    super::postgres::store,
    POSTGRES,
    uuid::Uuid,
    |id: uuid::Uuid| id,
    Some
);

outbox!(
    SqliteWebhookOutbox,
    sqlx::Sqlite,
    super::sqlite::store,
    SQLITE,
    String,
    |id: uuid::Uuid| id.to_string(),
    |id: String| id.parse::<uuid::Uuid>().ok()
);

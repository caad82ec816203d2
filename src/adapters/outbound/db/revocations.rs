//! `RevocationFeed` on the `session_revocations` table (written by a trigger on
//! `sessions.revoked_at`), for PostgreSQL and SQLite. Times are the database's clock.

use crate::domain::SessionId;
use crate::ports::{Revocation, RevocationFeed, StoreError};

use super::common::limit_to_db;

macro_rules! feed {
    ($name:ident, $db:ty, $store:path, $now:expr, $since:expr, $purge:expr, $id:ty, $parse:expr) => {
        /// Revocations in `session_revocations`.
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
        impl RevocationFeed for $name {
            async fn revoked_since(
                &self,
                since: Option<u64>,
                window_secs: u64,
                limit: usize,
            ) -> Result<(Vec<Revocation>, u64), StoreError> {
                let now: i64 = sqlx::query_scalar($now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($store)?;
                let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
                let oldest = now.saturating_sub(window);
                let since = since.map_or(oldest, |s| i64::try_from(s).unwrap_or(i64::MAX));
                let rows: Vec<($id, i64)> = sqlx::query_as($since)
                    .bind(since.max(oldest))
                    .bind(limit_to_db(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($store)?;
                let entries = rows
                    .into_iter()
                    .filter_map(|(id, at)| {
                        Some(Revocation {
                            session: SessionId::from_uuid(($parse)(id)?),
                            revoked_at: u64::try_from(at).ok()?,
                        })
                    })
                    .collect();
                Ok((entries, u64::try_from(now).unwrap_or(0)))
            }

            async fn purge_revocations(&self, window_secs: u64) -> Result<u64, StoreError> {
                let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
                let done = sqlx::query($purge)
                    .bind(window)
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(done.rows_affected())
            }
        }
    };
}

feed!(
    PostgresRevocationFeed,
    sqlx::Postgres,
    super::postgres::store,
    "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
    "SELECT session_id, revoked_at FROM session_revocations WHERE revoked_at >= $1 \
     ORDER BY revoked_at LIMIT $2",
    "DELETE FROM session_revocations \
     WHERE revoked_at < floor(extract(epoch FROM clock_timestamp()))::bigint - $1",
    uuid::Uuid,
    Some
);

feed!(
    SqliteRevocationFeed,
    sqlx::Sqlite,
    super::sqlite::store,
    "SELECT CAST(strftime('%s', 'now') AS INTEGER)",
    "SELECT session_id, revoked_at FROM session_revocations WHERE revoked_at >= ?1 \
     ORDER BY revoked_at LIMIT ?2",
    "DELETE FROM session_revocations \
     WHERE revoked_at < CAST(strftime('%s', 'now') AS INTEGER) - ?1",
    String,
    |id: String| id.parse::<uuid::Uuid>().ok()
);

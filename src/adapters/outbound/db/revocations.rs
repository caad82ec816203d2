//! `RevocationFeed` on the `session_revocations` table (written by a trigger on
//! `sessions.revoked_at`), for PostgreSQL and SQLite. Times are the database's clock.

use crate::domain::{FeedPosition, SessionId};
use crate::ports::{Revocation, RevocationFeed, StoreError};

use super::common::limit_to_db;

macro_rules! feed {
    (
        $name:ident, $db:ty, $store:path, $now:expr,
        $from:expr, $of_second:expr, $after:expr, $purge:expr, $id:ty, $parse:expr
    ) => {
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
                since: Option<FeedPosition>,
                window_secs: u64,
                limit: usize,
            ) -> Result<(Vec<Revocation>, u64), StoreError> {
                let now: i64 = sqlx::query_scalar($now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($store)?;
                let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
                let oldest = now.saturating_sub(window);
                let since = since.unwrap_or_default();
                let second = i64::try_from(since.second).unwrap_or(i64::MAX);
                let skip = i64::try_from(since.skip).unwrap_or(i64::MAX);
                let rows: Vec<($id, i64)> = if second < oldest || skip == 0 {
                    sqlx::query_as($from)
                        .bind(second.max(oldest))
                        .bind(limit_to_db(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err($store)?
                } else {
                    // The rest of that second (the index walks past the skipped ones),
                    // then the seconds after it.
                    let mut rows: Vec<($id, i64)> = sqlx::query_as($of_second)
                        .bind(second)
                        .bind(limit_to_db(limit))
                        .bind(skip)
                        .fetch_all(&self.pool)
                        .await
                        .map_err($store)?;
                    let rest = limit.saturating_sub(rows.len());
                    if rest > 0 {
                        rows.extend(
                            sqlx::query_as::<_, ($id, i64)>($after)
                                .bind(second)
                                .bind(limit_to_db(rest))
                                .fetch_all(&self.pool)
                                .await
                                .map_err($store)?,
                        );
                    }
                    rows
                };
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
     ORDER BY revoked_at, session_id LIMIT $2",
    "SELECT session_id, revoked_at FROM session_revocations WHERE revoked_at = $1 \
     ORDER BY session_id LIMIT $2 OFFSET $3",
    "SELECT session_id, revoked_at FROM session_revocations WHERE revoked_at > $1 \
     ORDER BY revoked_at, session_id LIMIT $2",
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
     ORDER BY revoked_at, session_id LIMIT ?2",
    "SELECT session_id, revoked_at FROM session_revocations WHERE revoked_at = ?1 \
     ORDER BY session_id LIMIT ?2 OFFSET ?3",
    "SELECT session_id, revoked_at FROM session_revocations WHERE revoked_at > ?1 \
     ORDER BY revoked_at, session_id LIMIT ?2",
    "DELETE FROM session_revocations \
     WHERE revoked_at < CAST(strftime('%s', 'now') AS INTEGER) - ?1",
    String,
    |id: String| id.parse::<uuid::Uuid>().ok()
);

//! `AuditLog` on the `audit_events` table, for PostgreSQL and SQLite. One statement per
//! backend and operation; the optional filters are `NULL`-or-equal parameters, so the SQL is
//! static and every value is bound, never spliced.

use crate::domain::{EventKind, SessionId, Timestamp, UserId};
use crate::ports::{AuditLog, AuditQuery, AuditRecord, StoreError};

use super::common::limit_to_db;

fn to_db(t: Timestamp) -> i64 {
    i64::try_from(t.unix()).unwrap_or(i64::MAX)
}

struct Sql {
    append: &'static str,
    query: &'static str,
    purge: &'static str,
}

const POSTGRES: Sql = Sql {
    append: "INSERT INTO audit_events \
             (id, at, kind, user_id, session_id, client, user_agent, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    query: "SELECT id, at, kind, user_id, session_id, client, user_agent, detail \
            FROM audit_events \
            WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR kind = $2) \
              AND at >= $3 \
            ORDER BY at DESC, seq DESC LIMIT $4",
    purge: "DELETE FROM audit_events WHERE id IN \
            (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
};

const SQLITE: Sql = Sql {
    append: "INSERT INTO audit_events \
             (id, at, kind, user_id, session_id, client, user_agent, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
    query: "SELECT id, at, kind, user_id, session_id, client, user_agent, detail \
            FROM audit_events \
            WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR kind = ?2) AND at >= ?3 \
            ORDER BY at DESC, seq DESC LIMIT ?4",
    purge: "DELETE FROM audit_events WHERE seq IN \
            (SELECT seq FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)",
};

type Row<Id> = (
    Id,
    i64,
    String,
    Option<Id>,
    Option<Id>,
    Option<String>,
    Option<String>,
    Option<String>,
);

macro_rules! audit_log {
    ($name:ident, $db:ty, $store:path, $sql:expr, $id:ty, $to_id:expr, $parse:expr) => {
        /// The audit trail in `audit_events`.
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
        impl AuditLog for $name {
            async fn append(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
                if records.is_empty() {
                    return Ok(());
                }
                let sql: &Sql = &$sql;
                // One transaction per batch: one commit (one fsync) for many events.
                let mut tx = self.pool.begin().await.map_err($store)?;
                for r in records {
                    sqlx::query(sql.append)
                        .bind(($to_id)(r.id))
                        .bind(to_db(r.at))
                        .bind(r.kind.as_str())
                        .bind(r.user.map(|u| ($to_id)(*u.as_uuid())))
                        .bind(r.session.map(|s| ($to_id)(*s.as_uuid())))
                        .bind(r.client.as_deref())
                        .bind(r.user_agent.as_deref())
                        .bind(r.detail.as_deref())
                        .execute(&mut *tx)
                        .await
                        .map_err($store)?;
                }
                tx.commit().await.map_err($store)
            }

            async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
                let sql: &Sql = &$sql;
                let rows: Vec<Row<$id>> = sqlx::query_as(sql.query)
                    .bind(q.user.map(|u| ($to_id)(*u.as_uuid())))
                    .bind(q.kind.map(EventKind::as_str))
                    .bind(q.since.map_or(0, to_db))
                    .bind(limit_to_db(q.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, at, kind, user, session, client, ua, detail)| {
                        // A row this binary cannot read (a kind from a newer version) is
                        // skipped rather than failing the whole listing.
                        Some(AuditRecord {
                            id: ($parse)(id)?,
                            at: Timestamp::from_unix(u64::try_from(at).unwrap_or(0)),
                            kind: EventKind::parse(&kind)?,
                            user: user.and_then($parse).map(UserId::from_uuid),
                            session: session.and_then($parse).map(SessionId::from_uuid),
                            client,
                            user_agent: ua,
                            detail,
                        })
                    })
                    .collect())
            }

            async fn purge_before(
                &self,
                before: Timestamp,
                limit: usize,
            ) -> Result<u64, StoreError> {
                let sql: &Sql = &$sql;
                let done = sqlx::query(sql.purge)
                    .bind(to_db(before))
                    .bind(limit_to_db(limit))
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(done.rows_affected())
            }
        }
    };
}

audit_log!(
    PostgresAuditLog,
    sqlx::Postgres,
    super::postgres::store,
    POSTGRES,
    uuid::Uuid,
    |id: uuid::Uuid| id,
    Some
);

audit_log!(
    SqliteAuditLog,
    sqlx::Sqlite,
    super::sqlite::store,
    SQLITE,
    String,
    |id: uuid::Uuid| id.to_string(),
    |id: String| id.parse::<uuid::Uuid>().ok()
);

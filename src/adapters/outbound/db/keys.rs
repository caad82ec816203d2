//! `KeyStore` on the `signing_keys` table, for PostgreSQL and SQLite (one body, two dialects
//! of placeholders).

use crate::domain::{KeyState, SigningAlgorithm, StoredKey, Timestamp};
use crate::ports::{KeyStore, StoreError};

use super::common::{from_db, to_db};

const LIST: &str = "SELECT kid, algorithm, state, created_at, activated_at, deactivated_at, \
                    sealed_key FROM signing_keys WHERE algorithm = $1 AND state <> 'retired' \
                    ORDER BY created_at, kid";
const INSERT: &str = "INSERT INTO signing_keys (kid, algorithm, state, created_at, activated_at, \
                      deactivated_at, sealed_key) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Demotes the current key only while `kid` is still next, so a second promotion of the same
/// key (another instance, a moment later) changes nothing.
const DEMOTE: &str = "UPDATE signing_keys SET state = 'previous', deactivated_at = $2 \
                      WHERE state = 'current' AND algorithm = \
                      (SELECT algorithm FROM signing_keys WHERE kid = $1 AND state = 'next')";
const PROMOTE: &str = "UPDATE signing_keys SET state = 'current', activated_at = $2 \
                       WHERE kid = $1 AND state = 'next'";
// The sealed private key goes with the retirement: a row set back by hand to `previous` has
// nothing left that opens.
const RETIRE: &str = "UPDATE signing_keys SET state = 'retired', sealed_key = '', deactivated_at = \
                      COALESCE(deactivated_at, $2) WHERE kid = $1 AND state IN ('next', 'previous')";

type Row = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
);

fn key_of(row: Row) -> Option<StoredKey> {
    let (kid, algorithm, state, created, activated, deactivated, sealed) = row;
    Some(StoredKey {
        kid,
        algorithm: SigningAlgorithm::from_name(&algorithm)?,
        state: KeyState::from_name(&state)?,
        created_at: from_db(created),
        activated_at: activated.map(from_db),
        deactivated_at: deactivated.map(from_db),
        sealed,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

macro_rules! key_store {
    ($name:ident, $db:ty, $sql:expr, $store:path) => {
        /// Signing keys in the `signing_keys` table.
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
        impl KeyStore for $name {
            async fn list(
                &self,
                algorithm: SigningAlgorithm,
            ) -> Result<Vec<StoredKey>, StoreError> {
                let rows: Vec<Row> = sqlx::query_as(&$sql(LIST))
                    .bind(algorithm.name())
                    .fetch_all(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(rows.into_iter().filter_map(key_of).collect())
            }

            async fn insert(&self, key: &StoredKey) -> Result<bool, StoreError> {
                let done = sqlx::query(&$sql(INSERT))
                    .bind(&key.kid)
                    .bind(key.algorithm.name())
                    .bind(key.state.name())
                    .bind(to_db(key.created_at))
                    .bind(key.activated_at.map(to_db))
                    .bind(key.deactivated_at.map(to_db))
                    .bind(&key.sealed)
                    .execute(&self.pool)
                    .await;
                match done {
                    Ok(_) => Ok(true),
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    Err(e) => Err($store(e)),
                }
            }

            async fn promote(&self, kid: &str, now: Timestamp) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err($store)?;
                sqlx::query(&$sql(DEMOTE))
                    .bind(kid)
                    .bind(to_db(now))
                    .execute(&mut *tx)
                    .await
                    .map_err($store)?;
                let promoted = sqlx::query(&$sql(PROMOTE))
                    .bind(kid)
                    .bind(to_db(now))
                    .execute(&mut *tx)
                    .await
                    .map_err($store)?
                    .rows_affected();
                if promoted == 1 {
                    tx.commit().await.map_err($store)?;
                    Ok(true)
                } else {
                    tx.rollback().await.map_err($store)?;
                    Ok(false)
                }
            }

            async fn retire(&self, kid: &str, now: Timestamp) -> Result<bool, StoreError> {
                let done = sqlx::query(&$sql(RETIRE))
                    .bind(kid)
                    .bind(to_db(now))
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

fn postgres_sql(sql: &str) -> String {
    sql.to_owned()
}

/// SQLite numbers its placeholders `?N`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

key_store!(
    PostgresKeyStore,
    sqlx::Postgres,
    postgres_sql,
    super::postgres::store
);
key_store!(
    SqliteKeyStore,
    sqlx::Sqlite,
    sqlite_sql,
    super::sqlite::store
);

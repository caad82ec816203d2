//! `ResetTokens` on the `password_reset_tokens` table, and the same store of single-use tokens
//! on `email_verification_tokens` for email verification, for PostgreSQL and SQLite. Each
//! purpose has its own table, so a token of one is never found as the other.

use crate::domain::{ResetTokenHash, Timestamp, UserId};
use crate::ports::{ResetTokens, StoreError};

use super::common::{corrupt, to_db};

macro_rules! reset_tokens {
    ($name:ident, $table:literal, $db:ty, $store:path, $issue:expr, $consume:expr, $id:ty, $to_id:expr, $parse:expr) => {
        #[doc = concat!("Single-use tokens in `", $table, "`.")]
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
        impl ResetTokens for $name {
            async fn issue(
                &self,
                user: UserId,
                hash: ResetTokenHash,
                expires_at: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query($issue)
                    .bind(($to_id)(*user.as_uuid()))
                    .bind(&hash.as_bytes()[..])
                    .bind(to_db(expires_at))
                    .execute(&self.pool)
                    .await
                    .map_err($store)?;
                Ok(())
            }

            async fn consume(
                &self,
                hash: ResetTokenHash,
                now: Timestamp,
            ) -> Result<Option<UserId>, StoreError> {
                // One DELETE ... RETURNING: of concurrent consumes only one gets the row. An
                // expired token is deleted too, and answered `None`.
                let row: Option<($id, i64)> = sqlx::query_as($consume)
                    .bind(&hash.as_bytes()[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($store)?;
                let Some((id, expires_at)) = row else {
                    return Ok(None);
                };
                if expires_at <= to_db(now) {
                    return Ok(None);
                }
                let id = ($parse)(id).ok_or_else(|| corrupt(concat!($table, ".user_id")))?;
                Ok(Some(UserId::from_uuid(id)))
            }
        }
    };
}

reset_tokens!(
    PostgresResetTokens,
    "password_reset_tokens",
    sqlx::Postgres,
    super::postgres::store,
    "INSERT INTO password_reset_tokens (user_id, token_hash, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id) DO UPDATE \
     SET token_hash = excluded.token_hash, expires_at = excluded.expires_at",
    "DELETE FROM password_reset_tokens WHERE token_hash = $1 RETURNING user_id, expires_at",
    uuid::Uuid,
    |id: uuid::Uuid| id,
    Some
);

reset_tokens!(
    SqliteResetTokens,
    "password_reset_tokens",
    sqlx::Sqlite,
    super::sqlite::store,
    "INSERT INTO password_reset_tokens (user_id, token_hash, expires_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user_id) DO UPDATE \
     SET token_hash = excluded.token_hash, expires_at = excluded.expires_at",
    "DELETE FROM password_reset_tokens WHERE token_hash = ?1 RETURNING user_id, expires_at",
    String,
    |id: uuid::Uuid| id.to_string(),
    |id: String| id.parse::<uuid::Uuid>().ok()
);

reset_tokens!(
    PostgresVerificationTokens,
    "email_verification_tokens",
    sqlx::Postgres,
    super::postgres::store,
    "INSERT INTO email_verification_tokens (user_id, token_hash, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id) DO UPDATE \
     SET token_hash = excluded.token_hash, expires_at = excluded.expires_at",
    "DELETE FROM email_verification_tokens WHERE token_hash = $1 RETURNING user_id, expires_at",
    uuid::Uuid,
    |id: uuid::Uuid| id,
    Some
);

reset_tokens!(
    SqliteVerificationTokens,
    "email_verification_tokens",
    sqlx::Sqlite,
    super::sqlite::store,
    "INSERT INTO email_verification_tokens (user_id, token_hash, expires_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user_id) DO UPDATE \
     SET token_hash = excluded.token_hash, expires_at = excluded.expires_at",
    "DELETE FROM email_verification_tokens WHERE token_hash = ?1 RETURNING user_id, expires_at",
    String,
    |id: uuid::Uuid| id.to_string(),
    |id: String| id.parse::<uuid::Uuid>().ok()
);

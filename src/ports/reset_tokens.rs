//! Password-reset tokens: at most one live token per account, single use.

use async_trait::async_trait;

use crate::domain::{InfraError as StoreError, ResetTokenHash, Timestamp, UserId};

/// Where reset tokens are kept (only their SHA-256).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ResetTokens: Send + Sync {
    /// Stores `hash` as `user`'s reset token until `expires_at`, replacing any older one: a
    /// newer token voids the older ones.
    ///
    /// # Errors
    /// `StoreError` when the store fails (nothing changed).
    async fn issue(
        &self,
        user: UserId,
        hash: ResetTokenHash,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Atomically takes the token: the user it was issued to, and the token is gone (of
    /// concurrent consumes of one token, exactly one gets `Some`). `None` for an unknown,
    /// used or expired (`expires_at <= now`) token.
    ///
    /// # Errors
    /// `StoreError` when the store fails (the token, if any, is left as it was).
    async fn consume(
        &self,
        hash: ResetTokenHash,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError>;
}

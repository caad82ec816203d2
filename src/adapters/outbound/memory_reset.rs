//! `ResetTokens` in process memory, for `dev` and tests (lost at a restart).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::{ResetTokenHash, Timestamp, UserId};
use crate::ports::{ResetTokens, StoreError};

/// One token per user, looked up by its hash.
#[derive(Debug, Default)]
pub struct InMemoryResetTokens {
    by_hash: Mutex<HashMap<ResetTokenHash, (UserId, Timestamp)>>,
}

impl InMemoryResetTokens {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ResetTokens for InMemoryResetTokens {
    async fn issue(
        &self,
        user: UserId,
        hash: ResetTokenHash,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (owner, _)| *owner != user);
        map.insert(hash, (user, expires_at));
        Ok(())
    }

    async fn consume(
        &self,
        hash: ResetTokenHash,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError> {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .remove(&hash)
            .and_then(|(user, expires_at)| (expires_at > now).then_some(user)))
    }
}

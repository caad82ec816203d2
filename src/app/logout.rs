use std::sync::Arc;

use crate::domain::{LogoutError, RefreshToken};
use crate::ports::RefreshStore;

/// Revokes the session behind a refresh token. Idempotent: no token, a malformed one or an
/// unknown one all succeed without touching anything.
pub struct Logout {
    pub sessions: Arc<dyn RefreshStore>,
}

impl Logout {
    /// `presented` is `None` when the request had no well-formed refresh token.
    ///
    /// # Errors
    /// `Infra` when the store is down (the session may still be live).
    pub async fn execute(&self, presented: Option<RefreshToken>) -> Result<(), LogoutError> {
        let Some(token) = presented else {
            return Ok(());
        };
        let revoked = self.sessions.revoke_by_token(token.hash()).await?;
        tracing::info!(event = "logout", revoked, "logout");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::down;
    use crate::domain::InfraError;
    use crate::ports::{MockRefreshStore, StoreError};

    #[tokio::test]
    async fn revokes_the_session_of_a_well_formed_token() {
        let token = RefreshToken::generate();
        let hash = token.hash();
        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .withf(move |h| *h == hash)
            .times(1)
            .return_once(|_| Ok(true));
        let logout = Logout {
            sessions: Arc::new(sessions),
        };
        logout.execute(Some(token)).await.unwrap();
    }

    #[tokio::test]
    async fn absent_malformed_or_unknown_tokens_succeed() {
        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .times(1)
            .return_once(|_| Ok(false));
        let logout = Logout {
            sessions: Arc::new(sessions),
        };
        logout.execute(None).await.unwrap();
        logout
            .execute(RefreshToken::parse("not-a-token"))
            .await
            .unwrap();
        logout
            .execute(Some(RefreshToken::generate()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn store_failures_are_reported() {
        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .return_once(|_| Err(down()));
        let logout = Logout {
            sessions: Arc::new(sessions),
        };
        let err = logout
            .execute(Some(RefreshToken::generate()))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            LogoutError::Infra(InfraError::Unavailable(_))
        ));

        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .return_once(|_| Err(StoreError::Unknown(anyhow::anyhow!("bug"))));
        let logout = Logout {
            sessions: Arc::new(sessions),
        };
        let err = logout
            .execute(Some(RefreshToken::generate()))
            .await
            .unwrap_err();
        assert!(matches!(err, LogoutError::Infra(InfraError::Unknown(_))));
    }
}

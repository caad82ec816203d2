use std::sync::Arc;

use crate::domain::{LogoutError, RefreshToken};
use crate::ports::{RefreshStore, StoreError};

/// Revokes the session behind a refresh token. Idempotent: no token, a malformed one or an
/// unknown one all succeed without touching anything.
pub struct Logout {
    pub sessions: Arc<dyn RefreshStore>,
}

impl Logout {
    /// # Errors
    /// `Unavailable` when the store is down (the session may still be live).
    pub async fn execute(&self, presented: Option<&str>) -> Result<(), LogoutError> {
        let Some(token) = presented.and_then(RefreshToken::parse) else {
            return Ok(());
        };
        match self.sessions.revoke_by_token(token.hash()).await {
            Ok(revoked) => {
                tracing::info!(event = "logout", revoked, "logout");
                Ok(())
            }
            Err(StoreError::Unavailable(e)) => Err(LogoutError::Unavailable(e)),
            Err(StoreError::Unknown(e)) => Err(LogoutError::Unknown(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::down;
    use crate::ports::MockRefreshStore;

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
        logout.execute(Some(token.as_str())).await.unwrap();
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
        logout.execute(Some("not-a-token")).await.unwrap();
        logout
            .execute(Some(RefreshToken::generate().as_str()))
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
            .execute(Some(RefreshToken::generate().as_str()))
            .await
            .unwrap_err();
        assert!(matches!(err, LogoutError::Unavailable(_)));

        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .return_once(|_| Err(StoreError::Unknown(anyhow::anyhow!("bug"))));
        let logout = Logout {
            sessions: Arc::new(sessions),
        };
        let err = logout
            .execute(Some(RefreshToken::generate().as_str()))
            .await
            .unwrap_err();
        assert!(matches!(err, LogoutError::Unknown(_)));
    }
}

use std::sync::Arc;

use crate::domain::{LogoutError, LogoutScope, RefreshToken};
use crate::ports::{Clock, RefreshStore};

/// Ends the session behind a refresh token, or with `scope` every other (or every) session of
/// its user. Idempotent: no token, a malformed one or an unknown one all succeed without
/// touching anything.
pub struct Logout {
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    /// `REFRESH_REUSE_GRACE_SECS`: a token rotated this recently still speaks for its session
    /// (a tab whose refresh raced the logout).
    pub reuse_grace_secs: u64,
}

impl Logout {
    /// `presented` is `None` when the request had no well-formed refresh token. Returns how
    /// many sessions were ended.
    ///
    /// # Errors
    /// `Infra` when the store is down (the sessions may still be live).
    pub async fn execute(
        &self,
        presented: Option<RefreshToken>,
        scope: LogoutScope,
    ) -> Result<u64, LogoutError> {
        let Some(token) = presented else {
            return Ok(0);
        };
        let revoked = self
            .sessions
            .revoke_by_token(token.hash(), scope, self.clock.now(), self.reuse_grace_secs)
            .await?;
        tracing::info!(event = "logout", scope = ?scope, revoked, "logout");
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::{clock_at, down, NOW};
    use crate::domain::InfraError;
    use crate::ports::{MockRefreshStore, StoreError};

    fn logout(sessions: MockRefreshStore) -> Logout {
        Logout {
            sessions: Arc::new(sessions),
            clock: Arc::new(clock_at(NOW)),
            reuse_grace_secs: 5,
        }
    }

    #[tokio::test]
    async fn revokes_by_a_well_formed_token_with_its_scope() {
        for scope in [LogoutScope::Local, LogoutScope::Others, LogoutScope::Global] {
            let token = RefreshToken::generate();
            let hash = token.hash();
            let mut sessions = MockRefreshStore::new();
            sessions
                .expect_revoke_by_token()
                .withf(move |h, s, now, grace| {
                    *h == hash && *s == scope && now.unix() == NOW && *grace == 5
                })
                .times(1)
                .return_once(|_, _, _, _| Ok(2));
            assert_eq!(
                logout(sessions).execute(Some(token), scope).await.unwrap(),
                2
            );
        }
    }

    #[tokio::test]
    async fn absent_malformed_or_unknown_tokens_succeed() {
        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .times(1)
            .return_once(|_, _, _, _| Ok(0));
        let logout = logout(sessions);
        let local = LogoutScope::Local;
        logout.execute(None, LogoutScope::Global).await.unwrap();
        logout
            .execute(RefreshToken::parse("not-a-token"), local)
            .await
            .unwrap();
        logout
            .execute(Some(RefreshToken::generate()), local)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn store_failures_are_reported() {
        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .return_once(|_, _, _, _| Err(down()));
        let err = logout(sessions)
            .execute(Some(RefreshToken::generate()), LogoutScope::Local)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            LogoutError::Infra(InfraError::Unavailable(_))
        ));

        let mut sessions = MockRefreshStore::new();
        sessions
            .expect_revoke_by_token()
            .return_once(|_, _, _, _| Err(StoreError::Unknown(anyhow::anyhow!("bug"))));
        let err = logout(sessions)
            .execute(Some(RefreshToken::generate()), LogoutScope::Local)
            .await
            .unwrap_err();
        assert!(matches!(err, LogoutError::Infra(InfraError::Unknown(_))));
    }
}

use std::sync::Arc;

use crate::domain::{
    ClientAddress, EventKind, LogoutError, LogoutScope, RefreshToken, SecurityEvent,
};
use crate::ports::{Clock, RefreshStore, SecurityEvents};

/// Ends the session behind a refresh token, or with `scope` every other (or every) session of
/// its user. Idempotent: no token, a malformed one or an unknown one all succeed without
/// touching anything.
pub struct Logout {
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    /// `REFRESH_REUSE_GRACE_SECS`: a token rotated this recently still speaks for its session
    /// (a tab whose refresh raced the logout).
    pub reuse_grace_secs: u64,
    pub events: Arc<dyn SecurityEvents>,
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
        client: &ClientAddress,
    ) -> Result<u64, LogoutError> {
        let Some(token) = presented else {
            return Ok(0);
        };
        let now = self.clock.now();
        let out = self
            .sessions
            .revoke_by_token(token.hash(), scope, now, self.reuse_grace_secs)
            .await?;
        tracing::info!(event = "logout", scope = ?scope, revoked = out.revoked, "logout");
        // Only a logout that spoke for a live session is one; a stale cookie is nobody's.
        if let Some((session, user)) = out.session {
            self.events.record(
                SecurityEvent::new(EventKind::Logout, now)
                    .user(user)
                    .session(session)
                    .client(client.clone())
                    .detail(scope.as_str()),
            );
        }
        Ok(out.revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::{clock_at, down, Recorder, NOW};
    use crate::domain::{InfraError, SessionId, UserId};
    use crate::ports::{LoggedOut, MockRefreshStore, NoSecurityEvents, StoreError};

    fn logout(sessions: MockRefreshStore) -> Logout {
        Logout {
            sessions: Arc::new(sessions),
            clock: Arc::new(clock_at(NOW)),
            reuse_grace_secs: 5,
            events: Arc::new(NoSecurityEvents),
        }
    }

    fn client() -> ClientAddress {
        ClientAddress::from_ip([192, 0, 2, 1].into())
    }

    fn ended(revoked: u64) -> Result<LoggedOut, StoreError> {
        Ok(LoggedOut {
            revoked,
            session: Some((SessionId::new_random(), UserId::new_random())),
        })
    }

    #[tokio::test]
    async fn a_logout_of_a_live_session_is_reported_with_its_scope_and_an_unknown_one_is_not() {
        let (session, user) = (SessionId::new_random(), UserId::new_random());
        let mut sessions = MockRefreshStore::new();
        let mut answers = vec![
            LoggedOut::default(),
            LoggedOut {
                revoked: 3,
                session: Some((session, user)),
            },
        ];
        sessions
            .expect_revoke_by_token()
            .times(2)
            .returning(move |_, _, _, _| Ok(answers.pop().unwrap()));
        let recorder = Arc::new(Recorder::default());
        let logout = Logout {
            events: recorder.clone(),
            ..logout(sessions)
        };
        let token = Some(RefreshToken::generate());
        assert_eq!(
            logout
                .execute(token.clone(), LogoutScope::Global, &client())
                .await
                .unwrap(),
            3
        );
        logout
            .execute(token, LogoutScope::Local, &client())
            .await
            .unwrap();
        let events = recorder.events();
        assert_eq!(events.len(), 1, "the second logout ended nothing");
        let e = &events[0];
        assert_eq!(e.kind, EventKind::Logout);
        assert_eq!((e.user, e.session), (Some(user), Some(session)));
        assert_eq!(e.detail.as_deref(), Some("global"));
        assert_eq!(
            e.client.as_ref().map(ClientAddress::as_str),
            Some("192.0.2.1")
        );
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
                .return_once(|_, _, _, _| ended(2));
            assert_eq!(
                logout(sessions)
                    .execute(Some(token), scope, &client())
                    .await
                    .unwrap(),
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
            .return_once(|_, _, _, _| Ok(LoggedOut::default()));
        let logout = logout(sessions);
        let local = LogoutScope::Local;
        logout
            .execute(None, LogoutScope::Global, &client())
            .await
            .unwrap();
        logout
            .execute(RefreshToken::parse("not-a-token"), local, &client())
            .await
            .unwrap();
        logout
            .execute(Some(RefreshToken::generate()), local, &client())
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
            .execute(
                Some(RefreshToken::generate()),
                LogoutScope::Local,
                &client(),
            )
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
            .execute(
                Some(RefreshToken::generate()),
                LogoutScope::Local,
                &client(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LogoutError::Infra(InfraError::Unknown(_))));
    }
}

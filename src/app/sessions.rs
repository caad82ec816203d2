use std::sync::Arc;

use super::Me;
use crate::domain::{AccessToken, EventKind, MeError, SecurityEvent, SessionId, SessionInfo};
use crate::ports::{Clock, RefreshStore, SecurityEvents};

/// The most sessions one list returns: `MAX_SESSIONS_PER_USER`'s upper bound, so a list is
/// complete under any cap.
pub const MAX_LISTED_SESSIONS: usize = 1000;

/// "Where am I signed in": the caller's live sessions, and ending one of them. The caller is
/// whoever holds a valid access token of a live session (the `/auth/me` check).
pub struct Sessions {
    pub auth: Me,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn SecurityEvents>,
}

/// The caller's live sessions, most recently used first.
#[derive(Debug)]
pub struct SessionList {
    /// The session of the access token that asked.
    pub current: SessionId,
    pub sessions: Vec<SessionInfo>,
}

impl Sessions {
    /// # Errors
    /// As `Me::execute`.
    pub async fn list(&self, bearer: &AccessToken) -> Result<SessionList, MeError> {
        let (user, claims) = self.auth.authenticate(bearer).await?;
        let sessions = self
            .sessions
            .list_sessions(user.id, self.clock.now(), MAX_LISTED_SESSIONS)
            .await?;
        Ok(SessionList {
            current: claims.sid,
            sessions,
        })
    }

    /// Ends `session` if it is a live session of the caller (the caller's own included);
    /// returns whether it did. Someone else's session and an unknown one answer alike, so the
    /// answer tells nothing about other accounts.
    ///
    /// # Errors
    /// As `Me::execute`.
    pub async fn end(&self, bearer: &AccessToken, session: SessionId) -> Result<bool, MeError> {
        let (user, _) = self.auth.authenticate(bearer).await?;
        let now = self.clock.now();
        let ended = self.sessions.revoke_session(user.id, session, now).await?;
        if ended {
            self.events.record(
                SecurityEvent::new(EventKind::SessionRevoked, now)
                    .user(user.id)
                    .session(session)
                    .detail("ended_by_owner"),
            );
        }
        tracing::info!(
            event = "session_ended",
            user = %user.id,
            session = %session,
            ended,
            "session end requested by its owner"
        );
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::domain::{AccessClaims, Timestamp};
    use crate::ports::{MockRefreshStore, MockTokenIssuer, TokenError};

    fn with(issuer: MockTokenIssuer, sessions: MockRefreshStore) -> Sessions {
        let sessions: Arc<dyn RefreshStore> = Arc::new(sessions);
        let clock: Arc<dyn Clock> = Arc::new(clock_at(NOW));
        Sessions {
            auth: Me {
                issuer: Arc::new(issuer),
                sessions: sessions.clone(),
                clock: clock.clone(),
            },
            sessions,
            clock,
            events: Arc::new(crate::ports::NoSecurityEvents),
        }
    }

    fn claims(user: &crate::domain::User, sid: SessionId) -> AccessClaims {
        AccessClaims {
            sub: user.id,
            sid,
            iat: Timestamp::from_unix(NOW),
            exp: Timestamp::from_unix(NOW + 900),
            nbf: None,
            jti: uuid::Uuid::new_v4(),
        }
    }

    #[tokio::test]
    async fn ending_asks_the_store_for_the_callers_own_session_only() {
        let owner = user(false);
        let mine = SessionId::new_random();
        let target = SessionId::new_random();
        let mut issuer = MockTokenIssuer::new();
        let c = claims(&owner, mine);
        issuer.expect_verify_access().return_once(move |_, _| Ok(c));
        let mut store = MockRefreshStore::new();
        let found = owner.clone();
        store
            .expect_live_session_user()
            .return_once(move |_, _| Ok(Some(found)));
        let owner_id = owner.id;
        store
            .expect_revoke_session()
            .withf(move |u, s, now| *u == owner_id && *s == target && now.unix() == NOW)
            .times(1)
            .return_once(|_, _, _| Ok(false));
        let ended = with(issuer, store)
            .end(&AccessToken::new("t".into()), target)
            .await
            .unwrap();
        assert!(!ended);
    }

    #[tokio::test]
    async fn an_invalid_token_lists_nothing() {
        let mut issuer = MockTokenIssuer::new();
        issuer
            .expect_verify_access()
            .return_once(|_, _| Err(TokenError::Invalid("expired".into())));
        let mut store = MockRefreshStore::new();
        store.expect_list_sessions().never();
        store.expect_revoke_session().never();
        let s = with(issuer, store);
        let err = s.list(&AccessToken::new("t".into())).await.unwrap_err();
        assert!(matches!(err, MeError::InvalidToken(_)));
    }
}

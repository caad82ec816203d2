use std::sync::Arc;

use crate::domain::{AccessClaims, AccessToken, MeError, User};
use crate::ports::{Clock, RefreshStore, TokenError, TokenIssuer};

/// The query behind `/auth/me`: who holds this access token.
///
/// Beyond the signature and claims, the token's session must still be live, belong to the
/// token's subject, and its user be enabled, so logout, reuse detection and disabling a user
/// cut access at once instead of at the token's `exp`, and a token pairing one user's session
/// with another user's id is worth nothing. One store look-up answers all of it.
pub struct Me {
    pub issuer: Arc<dyn TokenIssuer>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
}

impl Me {
    /// # Errors
    /// `InvalidToken` for a token that fails verification, whose session is revoked, over or
    /// another user's, or whose user is gone or disabled; `Infra` when a store or the
    /// verifier fails.
    pub async fn execute(&self, bearer: &AccessToken) -> Result<User, MeError> {
        self.authenticate(bearer).await.map(|(user, _)| user)
    }

    /// `execute`, with the token's claims: for the operations that act on the caller's own
    /// sessions.
    ///
    /// # Errors
    /// As `execute`.
    pub async fn authenticate(
        &self,
        bearer: &AccessToken,
    ) -> Result<(User, AccessClaims), MeError> {
        let now = self.clock.now();
        let claims = self
            .issuer
            .verify_access(bearer.as_str(), now)
            .map_err(|e| match e {
                TokenError::Invalid(why) => MeError::InvalidToken(why),
                other @ (TokenError::Unknown(_) | TokenError::NoSigningKey) => {
                    MeError::Infra(other.into())
                }
            })?;
        match self.sessions.live_session_user(claims.sid, now).await? {
            None => Err(MeError::InvalidToken(
                "session revoked or ended, or user not found".into(),
            )),
            Some(user) if user.id != claims.sub => {
                Err(MeError::InvalidToken("session of another user".into()))
            }
            Some(user) if user.disabled => Err(MeError::InvalidToken("user disabled".into())),
            Some(user) => Ok((user, claims)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::domain::{InfraError, SessionId, Timestamp};
    use crate::ports::{MockRefreshStore, MockTokenIssuer, StoreError};

    fn tok() -> AccessToken {
        AccessToken::new("tok".into())
    }

    fn claims_for(u: &User) -> AccessClaims {
        AccessClaims {
            sub: u.id,
            sid: SessionId::new_random(),
            iat: Timestamp::from_unix(NOW),
            exp: Timestamp::from_unix(NOW + 900),
            nbf: None,
            jti: uuid::Uuid::new_v4(),
        }
    }

    fn build(issuer: MockTokenIssuer, sessions: MockRefreshStore) -> Me {
        Me {
            issuer: Arc::new(issuer),
            sessions: Arc::new(sessions),
            clock: Arc::new(clock_at(NOW)),
        }
    }

    #[tokio::test]
    async fn valid_token_live_session_enabled_user_is_returned() {
        let u = user(false);
        let claims = claims_for(&u);
        let sid = claims.sid;
        let (mut issuer, mut sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
        issuer
            .expect_verify_access()
            .withf(|t, now| t == "tok" && now.unix() == NOW)
            .return_once(move |_, _| Ok(claims));
        let found = u.clone();
        sessions
            .expect_live_session_user()
            .withf(move |s, now| *s == sid && now.unix() == NOW)
            .times(1)
            .return_once(move |_, _| Ok(Some(found)));
        assert_eq!(build(issuer, sessions).execute(&tok()).await.unwrap(), u);
    }

    #[tokio::test]
    async fn invalid_token_stops_before_any_store() {
        let (mut issuer, mut sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
        issuer
            .expect_verify_access()
            .return_once(|_, _| Err(TokenError::Invalid("bad signature".into())));
        sessions.expect_live_session_user().never();
        let err = build(issuer, sessions).execute(&tok()).await.unwrap_err();
        assert!(matches!(err, MeError::InvalidToken(_)));
    }

    #[tokio::test]
    async fn revoked_session_disabled_or_missing_user_are_invalid() {
        // No live session (revoked, ended, or its user gone), a disabled owner.
        for found in [None, Some(user(true))] {
            let u = user(false);
            let mut claims = claims_for(&u);
            if let Some(owner) = &found {
                claims.sub = owner.id;
            }
            let (mut issuer, mut sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
            issuer
                .expect_verify_access()
                .return_once(move |_, _| Ok(claims));
            sessions
                .expect_live_session_user()
                .return_once(move |_, _| Ok(found));
            let err = build(issuer, sessions).execute(&tok()).await.unwrap_err();
            assert!(matches!(err, MeError::InvalidToken(_)));
        }
    }

    #[tokio::test]
    async fn a_live_session_of_another_user_is_invalid() {
        let (subject, owner) = (user(false), user(false));
        let claims = claims_for(&subject);
        let (mut issuer, mut sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
        issuer
            .expect_verify_access()
            .return_once(move |_, _| Ok(claims));
        sessions
            .expect_live_session_user()
            .return_once(move |_, _| Ok(Some(owner)));
        let err = build(issuer, sessions).execute(&tok()).await.unwrap_err();
        assert!(matches!(err, MeError::InvalidToken(_)));
    }

    #[tokio::test]
    async fn store_failures_are_unavailable_or_unknown() {
        let u = user(false);
        let (mut issuer, mut sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
        let claims = claims_for(&u);
        issuer
            .expect_verify_access()
            .return_once(move |_, _| Ok(claims));
        sessions
            .expect_live_session_user()
            .return_once(|_, _| Err(down()));
        let err = build(issuer, sessions).execute(&tok()).await.unwrap_err();
        assert!(matches!(err, MeError::Infra(InfraError::Unavailable(_))));

        let (mut issuer, mut sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
        let claims = claims_for(&u);
        issuer
            .expect_verify_access()
            .return_once(move |_, _| Ok(claims));
        sessions
            .expect_live_session_user()
            .return_once(|_, _| Err(StoreError::Unknown(anyhow::anyhow!("bug"))));
        let err = build(issuer, sessions).execute(&tok()).await.unwrap_err();
        assert!(matches!(err, MeError::Infra(InfraError::Unknown(_))));

        let (mut issuer, sessions) = (MockTokenIssuer::new(), MockRefreshStore::new());
        issuer
            .expect_verify_access()
            .return_once(|_, _| Err(TokenError::Unknown(anyhow::anyhow!("verifier"))));
        let err = build(issuer, sessions).execute(&tok()).await.unwrap_err();
        assert!(matches!(err, MeError::Infra(InfraError::Unknown(_))));
    }
}

use std::sync::Arc;

use crate::domain::{AccessToken, MeError, User};
use crate::ports::{Clock, RefreshStore, TokenError, TokenIssuer, UserRepo};

/// The query behind `/auth/me`: who holds this access token.
///
/// Beyond the signature and claims, the token's session must still be live and its user
/// enabled, so logout, reuse detection and disabling a user cut access at once instead of
/// at the token's `exp`.
pub struct Me {
    pub users: Arc<dyn UserRepo>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
}

impl Me {
    /// # Errors
    /// `InvalidToken` for a token that fails verification, whose session is revoked or over,
    /// or whose user is gone or disabled; `Infra` when a store or the verifier fails.
    pub async fn execute(&self, bearer: &AccessToken) -> Result<User, MeError> {
        let now = self.clock.now();
        let claims = self
            .issuer
            .verify_access(bearer.as_str(), now)
            .map_err(|e| match e {
                TokenError::Invalid(why) => MeError::InvalidToken(why),
                unknown @ TokenError::Unknown(_) => MeError::Infra(unknown.into()),
            })?;
        if !self.sessions.is_active(claims.sid, now).await? {
            return Err(MeError::InvalidToken("session revoked or ended".into()));
        }
        match self.users.find_by_id(claims.sub).await? {
            Some(user) if !user.disabled => Ok(user),
            Some(_) => Err(MeError::InvalidToken("user disabled".into())),
            None => Err(MeError::InvalidToken("user not found".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::domain::{AccessClaims, InfraError, SessionId, Timestamp};
    use crate::ports::{MockRefreshStore, MockTokenIssuer, MockUserRepo, StoreError};

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

    fn build(users: MockUserRepo, issuer: MockTokenIssuer, sessions: MockRefreshStore) -> Me {
        Me {
            users: Arc::new(users),
            issuer: Arc::new(issuer),
            sessions: Arc::new(sessions),
            clock: Arc::new(clock_at(NOW)),
        }
    }

    #[tokio::test]
    async fn valid_token_live_session_enabled_user_is_returned() {
        let u = user(false);
        let claims = claims_for(&u);
        let (mut users, mut issuer, mut sessions) = (
            MockUserRepo::new(),
            MockTokenIssuer::new(),
            MockRefreshStore::new(),
        );
        issuer
            .expect_verify_access()
            .withf(|t, now| t == "tok" && now.unix() == NOW)
            .return_once(move |_, _| Ok(claims));
        sessions.expect_is_active().return_once(|_, _| Ok(true));
        let found = u.clone();
        users
            .expect_find_by_id()
            .return_once(move |_| Ok(Some(found)));
        assert_eq!(
            build(users, issuer, sessions)
                .execute(&tok())
                .await
                .unwrap(),
            u
        );
    }

    #[tokio::test]
    async fn invalid_token_stops_before_any_store() {
        let (mut users, mut issuer, mut sessions) = (
            MockUserRepo::new(),
            MockTokenIssuer::new(),
            MockRefreshStore::new(),
        );
        issuer
            .expect_verify_access()
            .return_once(|_, _| Err(TokenError::Invalid("bad signature".into())));
        sessions.expect_is_active().never();
        users.expect_find_by_id().never();
        let err = build(users, issuer, sessions)
            .execute(&tok())
            .await
            .unwrap_err();
        assert!(matches!(err, MeError::InvalidToken(_)));
    }

    #[tokio::test]
    async fn revoked_session_disabled_or_missing_user_are_invalid() {
        for (active, found) in [
            (false, Some(user(false))),
            (true, Some(user(true))),
            (true, None),
        ] {
            let u = user(false);
            let claims = claims_for(&u);
            let (mut users, mut issuer, mut sessions) = (
                MockUserRepo::new(),
                MockTokenIssuer::new(),
                MockRefreshStore::new(),
            );
            issuer
                .expect_verify_access()
                .return_once(move |_, _| Ok(claims));
            sessions
                .expect_is_active()
                .return_once(move |_, _| Ok(active));
            users
                .expect_find_by_id()
                .returning(move |_| Ok(found.clone()));
            let err = build(users, issuer, sessions)
                .execute(&tok())
                .await
                .unwrap_err();
            assert!(matches!(err, MeError::InvalidToken(_)));
        }
    }

    #[tokio::test]
    async fn store_failures_are_unavailable_or_unknown() {
        let u = user(false);
        let (users, mut issuer, mut sessions) = (
            MockUserRepo::new(),
            MockTokenIssuer::new(),
            MockRefreshStore::new(),
        );
        let claims = claims_for(&u);
        issuer
            .expect_verify_access()
            .return_once(move |_, _| Ok(claims));
        sessions.expect_is_active().return_once(|_, _| Err(down()));
        let err = build(users, issuer, sessions)
            .execute(&tok())
            .await
            .unwrap_err();
        assert!(matches!(err, MeError::Infra(InfraError::Unavailable(_))));

        let (mut users, mut issuer, mut sessions) = (
            MockUserRepo::new(),
            MockTokenIssuer::new(),
            MockRefreshStore::new(),
        );
        let claims = claims_for(&u);
        issuer
            .expect_verify_access()
            .return_once(move |_, _| Ok(claims));
        sessions.expect_is_active().return_once(|_, _| Ok(true));
        users
            .expect_find_by_id()
            .return_once(|_| Err(StoreError::Unknown(anyhow::anyhow!("bug"))));
        let err = build(users, issuer, sessions)
            .execute(&tok())
            .await
            .unwrap_err();
        assert!(matches!(err, MeError::Infra(InfraError::Unknown(_))));

        let (users, mut issuer, sessions) = (
            MockUserRepo::new(),
            MockTokenIssuer::new(),
            MockRefreshStore::new(),
        );
        issuer
            .expect_verify_access()
            .return_once(|_, _| Err(TokenError::Unknown(anyhow::anyhow!("verifier"))));
        let err = build(users, issuer, sessions)
            .execute(&tok())
            .await
            .unwrap_err();
        assert!(matches!(err, MeError::Infra(InfraError::Unknown(_))));
    }
}

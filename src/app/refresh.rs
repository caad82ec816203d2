use std::sync::Arc;

use super::{issue_tokens, TokenPolicy};
use crate::domain::{ClientAddress, IssuedTokens, RefreshError, RefreshToken, RotationRefusal};
use crate::ports::{Clock, RefreshStore, RotateError, TokenIssuer};

/// Consumes a refresh token and issues its successor in the same session.
///
/// The store's rotation checks the user too, so once it has consumed the token nothing is
/// left that can fail on I/O: a client never ends up holding a spent cookie.
pub struct Refresh {
    pub issuer: Arc<dyn TokenIssuer>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    pub policy: TokenPolicy,
}

impl Refresh {
    /// `presented` is `None` when the request had no well-formed refresh token.
    ///
    /// # Errors
    /// `InvalidRefreshToken` for a missing, malformed, unknown, expired, revoked or reused
    /// token, or one whose user is gone or disabled (all that user's sessions are revoked);
    /// `Infra` when a store is down (nothing rotated) or signing fails.
    pub async fn execute(
        &self,
        presented: Option<RefreshToken>,
        client: &ClientAddress,
    ) -> Result<IssuedTokens, RefreshError> {
        let presented =
            presented.ok_or(RefreshError::InvalidRefreshToken("missing or malformed"))?;
        let now = self.clock.now();
        let successor = RefreshToken::generate();
        let session = self
            .sessions
            .rotate(presented.hash(), successor.hash(), now)
            .await
            .map_err(|e| refused(e, client))?;
        Ok(issue_tokens(
            &self.issuer,
            self.policy,
            &session,
            successor,
            now,
        )?)
    }
}

/// The one place that knows the shape of `RotateError`: each refusal becomes a reason for the
/// logs; a reuse and a gone user are also reported on their own, with the session, its account
/// and the client, so an operator can investigate (never the token).
fn refused(e: RotateError, client: &ClientAddress) -> RefreshError {
    let (why, session) = match e {
        RotateError::Refused { why, session } => (why, session),
        RotateError::Store(e) => return e.into(),
    };
    let session_id = session.as_ref().map(|s| s.id.to_string());
    let user = session.as_ref().map(|s| s.user_id.to_string());
    match why {
        RotationRefusal::NotFound => RefreshError::InvalidRefreshToken("unknown"),
        RotationRefusal::Expired => RefreshError::InvalidRefreshToken("expired"),
        RotationRefusal::Reused => {
            tracing::warn!(
                event = "refresh_token_reuse",
                session = session_id,
                user,
                client = client.as_str(),
                "consumed refresh token presented; session revoked"
            );
            RefreshError::InvalidRefreshToken("reused")
        }
        RotationRefusal::UserInactive => {
            tracing::info!(
                event = "refresh_user_gone",
                session = session_id,
                user,
                client = client.as_str(),
                "user disabled or deleted; all their sessions revoked"
            );
            RefreshError::InvalidRefreshToken("user disabled or deleted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::domain::AccessToken;
    use crate::domain::InfraError;
    use crate::ports::{MockRefreshStore, MockTokenIssuer, StoreError, TokenError};

    struct Mocks {
        issuer: MockTokenIssuer,
        sessions: MockRefreshStore,
    }

    impl Mocks {
        fn new() -> Self {
            Self {
                issuer: MockTokenIssuer::new(),
                sessions: MockRefreshStore::new(),
            }
        }

        fn build(self) -> Refresh {
            Refresh {
                issuer: Arc::new(self.issuer),
                sessions: Arc::new(self.sessions),
                clock: Arc::new(clock_at(NOW)),
                policy: TokenPolicy {
                    access_ttl_secs: 900,
                    session_ttl_secs: 30 * 86_400,
                },
            }
        }
    }

    fn presented() -> RefreshToken {
        RefreshToken::generate()
    }

    #[tokio::test]
    async fn rotation_keeps_the_session_end_and_returns_a_new_token() {
        let session = session_of(&user(false));
        let old = presented();
        let old_hash = old.hash();
        let mut m = Mocks::new();
        let s = session.clone();
        m.sessions
            .expect_rotate()
            .withf(move |p, succ, now| *p == old_hash && *succ != old_hash && now.unix() == NOW)
            .times(1)
            .return_once(move |_, _, _| Ok(s));
        let sid = session.id;
        m.issuer
            .expect_issue_access()
            .withf(move |c| c.sid == sid)
            .return_once(|_| Ok(AccessToken::new("jwt".into())));
        let tokens = m
            .build()
            .execute(Some(old.clone()), &ClientAddress::unknown())
            .await
            .unwrap();
        assert_ne!(tokens.refresh_token, old);
        assert_eq!(tokens.session_expires_at, session.expires_at);
    }

    #[tokio::test]
    async fn missing_or_malformed_cookie_never_reaches_the_store() {
        // The edge parses the cookie with `RefreshToken::parse`: each of these reaches the use
        // case as no token at all.
        for raw in [None, Some(""), Some("garbage"), Some(&*"x".repeat(4096))] {
            let presented = raw.and_then(RefreshToken::parse);
            assert!(presented.is_none(), "{raw:?}");
            let mut m = Mocks::new();
            m.sessions.expect_rotate().never();
            let err = m
                .build()
                .execute(presented, &ClientAddress::unknown())
                .await
                .unwrap_err();
            assert!(matches!(err, RefreshError::InvalidRefreshToken(_)));
        }
    }

    #[tokio::test]
    async fn each_rotate_error_maps_to_its_use_case_error() {
        type Make = fn() -> RotateError;
        let cases: Vec<(Make, &str)> = vec![
            (|| RotationRefusal::NotFound.into(), "invalid"),
            (|| RotationRefusal::Reused.into(), "invalid"),
            (|| RotationRefusal::Expired.into(), "invalid"),
            (|| RotationRefusal::UserInactive.into(), "invalid"),
            (|| RotateError::Store(down()), "unavailable"),
            (
                || RotateError::Store(StoreError::Unknown(anyhow::anyhow!("x"))),
                "unknown",
            ),
        ];
        for (make, want) in cases {
            let mut m = Mocks::new();
            m.sessions
                .expect_rotate()
                .return_once(move |_, _, _| Err(make()));
            m.issuer.expect_issue_access().never();
            let got = match m
                .build()
                .execute(Some(presented()), &ClientAddress::unknown())
                .await
                .unwrap_err()
            {
                RefreshError::InvalidRefreshToken(_) => "invalid",
                RefreshError::Infra(InfraError::Unavailable(_)) => "unavailable",
                RefreshError::Infra(InfraError::Unknown(_)) => "unknown",
            };
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn after_a_rotation_only_signing_is_left() {
        // The user check is the store's (`RotationRefusal::UserInactive`): no other port is
        // called once the token is consumed, so nothing can fail after it but the signer.
        let session = session_of(&user(false));
        let mut m = Mocks::new();
        m.sessions
            .expect_rotate()
            .times(1)
            .return_once(move |_, _, _| Ok(session));
        m.sessions.expect_revoke_user_sessions().never();
        m.issuer
            .expect_issue_access()
            .times(1)
            .return_once(|_| Ok(AccessToken::new("jwt".into())));
        m.build()
            .execute(Some(presented()), &ClientAddress::unknown())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn signer_failure_is_unknown() {
        let session = session_of(&user(false));
        let mut m = Mocks::new();
        m.sessions
            .expect_rotate()
            .return_once(move |_, _, _| Ok(session));
        m.issuer
            .expect_issue_access()
            .return_once(|_| Err(TokenError::Unknown(anyhow::anyhow!("signer"))));
        let err = m
            .build()
            .execute(Some(presented()), &ClientAddress::unknown())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Infra(InfraError::Unknown(_))));
    }
}

use std::sync::Arc;

use super::{issue_tokens, TokenPolicy};
use crate::domain::{
    ClientAddress, EventKind, IssuedTokens, RefreshError, RefreshOutcome, RefreshToken,
    RotationRefusal, SecurityEvent, Timestamp,
};
use crate::ports::{
    Clock, RefreshStore, RotateError, Rotation, SecurityEvents, Successors, TokenIssuer,
};

/// Consumes a refresh token and issues its successor in the same session.
///
/// The successor is derived from the presented token (`Successors`), so the
/// requests of several tabs that present one token at once all get the one successor the
/// first of them made current, within the grace window. The store's rotation checks the user
/// too, so once it has consumed the token nothing is left that can fail on I/O: a client
/// never ends up holding a spent cookie.
pub struct Refresh {
    pub issuer: Arc<dyn TokenIssuer>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    pub policy: TokenPolicy,
    pub successors: Arc<dyn Successors>,
    pub events: Arc<dyn SecurityEvents>,
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
        let Some(presented) = presented else {
            self.events.refresh_outcome(RefreshOutcome::Unknown);
            return Err(RefreshError::InvalidRefreshToken("missing or malformed"));
        };
        let now = self.clock.now();
        let successor = self.successors.successor_of(&presented);
        let previous = self.successors.previous_successor_of(&presented);
        let rotated = self
            .sessions
            .rotate(Rotation {
                presented: presented.hash(),
                successor: successor.hash(),
                previous_successor: previous.as_ref().map(RefreshToken::hash),
                now,
                idle_expires_at: self.policy.idle_end(now),
                reuse_grace_secs: self.policy.reuse_grace_secs,
            })
            .await
            .map_err(|e| self.refused(e, client, now))?;
        self.events.refresh_outcome(if rotated.replayed {
            RefreshOutcome::Grace
        } else {
            RefreshOutcome::Rotated
        });
        if rotated.replayed {
            tracing::info!(
                event = "refresh_replayed",
                session = %rotated.session.id,
                client = client.as_str(),
                "refresh token presented again within the grace window; same successor"
            );
        }
        // The one the store made (or found) current: under the previous key only when an
        // instance still on it rotated this token.
        let current = match previous {
            Some(old) if rotated.successor == old.hash() => old,
            _ => successor,
        };
        Ok(issue_tokens(
            &self.issuer,
            self.policy,
            &rotated.session,
            current,
            now,
        )?)
    }
}

impl Refresh {
    /// The one place that knows the shape of `RotateError`: each refusal becomes a reason for
    /// the logs; a reuse and a gone user are also reported as security events, with the
    /// session, its account and the client, so an operator can investigate (never the token).
    fn refused(&self, e: RotateError, client: &ClientAddress, now: Timestamp) -> RefreshError {
        let (why, session) = match e {
            RotateError::Refused { why, session } => (why, session),
            RotateError::Store(e) => {
                self.events.refresh_outcome(RefreshOutcome::Error);
                return e.into();
            }
        };
        self.events.refresh_outcome(match why {
            RotationRefusal::NotFound => RefreshOutcome::Unknown,
            RotationRefusal::Expired => RefreshOutcome::Expired,
            RotationRefusal::Reused => RefreshOutcome::Reused,
            RotationRefusal::UserInactive => RefreshOutcome::AccountInactive,
        });
        let session_id = session.as_ref().map(|s| s.id.to_string());
        let user = session.as_ref().map(|s| s.user_id.to_string());
        let report = |kind, detail: Option<&str>| {
            let mut event = SecurityEvent::new(kind, now).client(client.clone());
            if let Some(s) = &session {
                event = event.user(s.user_id).session(s.id);
            }
            if let Some(detail) = detail {
                event = event.detail(detail);
            }
            self.events.record(event);
        };
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
                report(EventKind::RefreshReuse, None);
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
                report(EventKind::SessionRevoked, Some("account_inactive"));
                RefreshError::InvalidRefreshToken("user disabled or deleted")
            }
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
                policy: policy(),
                successors: Arc::new(Reversed),
                events: Arc::new(crate::ports::NoSecurityEvents),
            }
        }
    }

    /// A stand-in derivation: the token's text reversed.
    struct Reversed;

    impl Successors for Reversed {
        fn successor_of(&self, token: &RefreshToken) -> RefreshToken {
            RefreshToken::parse(&token.as_str().chars().rev().collect::<String>()).unwrap()
        }

        fn previous_successor_of(&self, _: &RefreshToken) -> Option<RefreshToken> {
            None
        }
    }

    fn presented() -> RefreshToken {
        RefreshToken::generate()
    }

    fn rotated(session: crate::domain::Session) -> crate::ports::Rotated {
        crate::ports::Rotated {
            session,
            replayed: false,
            successor: RefreshToken::generate().hash(),
        }
    }

    #[tokio::test]
    async fn rotation_keeps_the_session_end_and_returns_a_new_token() {
        let session = session_of(&user(false));
        let old = presented();
        let old_hash = old.hash();
        let mut m = Mocks::new();
        let s = session.clone();
        let want = Reversed.successor_of(&old).hash();
        m.sessions
            .expect_rotate()
            .withf(move |r| {
                r.presented == old_hash
                    && r.successor == want
                    && r.now.unix() == NOW
                    && r.reuse_grace_secs == 5
                    && r.idle_expires_at.is_none()
            })
            .times(1)
            .return_once(move |_| Ok(rotated(s)));
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
        assert_eq!(tokens.refresh_token, Reversed.successor_of(&old));
        assert_eq!(tokens.session_expires_at, session.expires_at);
    }

    #[tokio::test]
    async fn a_reuse_and_a_gone_user_are_reported_and_other_refusals_are_not() {
        let session = session_of(&user(false));
        for (why, reported) in [
            (
                RotationRefusal::Reused,
                Some((EventKind::RefreshReuse, None)),
            ),
            (
                RotationRefusal::UserInactive,
                Some((EventKind::SessionRevoked, Some("account_inactive"))),
            ),
            (RotationRefusal::Expired, None),
            (RotationRefusal::NotFound, None),
        ] {
            let mut m = Mocks::new();
            let s = session.clone();
            m.sessions
                .expect_rotate()
                .return_once(move |_| Err(RotateError::refused_in(why, s)));
            let recorder = Arc::new(Recorder::default());
            let refresh = Refresh {
                events: recorder.clone(),
                ..m.build()
            };
            let client = ClientAddress::from_ip([198, 51, 100, 7].into());
            assert!(refresh.execute(Some(presented()), &client).await.is_err());
            let events = recorder.events();
            match reported {
                None => assert!(events.is_empty(), "{why:?}"),
                Some((kind, detail)) => {
                    assert_eq!(events.len(), 1, "{why:?}");
                    let e = &events[0];
                    assert_eq!(e.kind, kind);
                    assert_eq!(e.detail.as_deref(), detail);
                    assert_eq!(
                        (e.user, e.session),
                        (Some(session.user_id), Some(session.id))
                    );
                    assert_eq!(e.client.as_ref(), Some(&client));
                }
            }
        }
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
            m.sessions.expect_rotate().return_once(move |_| Err(make()));
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
            .return_once(move |_| Ok(rotated(session)));
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
            .return_once(move |_| Ok(rotated(session)));
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

use std::sync::Arc;

use super::{Me, Refresh};
use crate::domain::{
    AccessToken, Attempt, ChangePasswordError, ClientAddress, EventKind, IssuedTokens, MeError,
    Password, RefreshError, RefreshToken, SecurityEvent, UserAgent,
};
use crate::ports::{Clock, LoginAttempts, PasswordHasher, RefreshStore, SecurityEvents};

/// A password change, already parsed at the edge (`new` follows the rules for a new
/// account's password).
#[derive(Debug)]
pub struct ChangePasswordCommand {
    pub bearer: AccessToken,
    pub current: Password,
    pub new: Password,
    /// The request's refresh cookie, if it had a well-formed one: rotated after the change.
    pub cookie: Option<RefreshToken>,
    pub client: ClientAddress,
    pub user_agent: Option<UserAgent>,
}

/// What a change did.
#[derive(Debug)]
pub struct PasswordChanged {
    /// The user's other sessions that were live and are now revoked.
    pub sessions_revoked: u64,
    /// The rotated cookie's successor, when the request carried a cookie that could be
    /// rotated; `None` otherwise (the session stays, its cookie unchanged).
    pub rotated: Option<IssuedTokens>,
}

/// Changes the password of the bearer token's account and ends every other session of it.
///
/// The current password is checked under the login throttle, as a login is: the same
/// account-and-client budget, so a stolen access token cannot be used to guess the password
/// any faster than the login form allows. The store writes the new hash only if the account
/// still has the hash that was checked, and revokes the other sessions in the same step: of
/// two concurrent changes from one password, one wins and the loser's session is among those
/// revoked.
pub struct ChangePassword {
    pub auth: Me,
    pub hasher: Arc<dyn PasswordHasher>,
    pub sessions: Arc<dyn RefreshStore>,
    pub throttle: Arc<dyn LoginAttempts>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn SecurityEvents>,
    /// Rotates the kept session's cookie, exactly as `/auth/refresh` would.
    pub refresh: Refresh,
}

impl ChangePassword {
    fn event(&self, kind: EventKind, cmd: &ChangePasswordCommand) -> SecurityEvent {
        SecurityEvent::new(kind, self.clock.now())
            .client(cmd.client.clone())
            .user_agent(cmd.user_agent.clone())
    }

    /// # Errors
    /// `InvalidToken` for a bearer token `/auth/me` would refuse (before anything is counted);
    /// `Throttled` while the login throttle holds this account and client back (before any
    /// check); `InvalidCredentials` for a wrong current password (counted as a failed login)
    /// or one that another change replaced meanwhile; `Infra` when a store or the hasher fails
    /// (nothing changed).
    pub async fn execute(
        &self,
        cmd: ChangePasswordCommand,
    ) -> Result<PasswordChanged, ChangePasswordError> {
        let (user, claims) = self
            .auth
            .authenticate(&cmd.bearer)
            .await
            .map_err(|e| match e {
                MeError::InvalidToken(why) => ChangePasswordError::InvalidToken(why),
                MeError::Infra(e) => ChangePasswordError::Infra(e),
            })?;
        let attempt = match self.throttle.begin(&user.email, &cmd.client).await? {
            Attempt::Admitted(attempt) => attempt,
            Attempt::Refused { retry_after_secs } => {
                tracing::info!(
                    event = "password_change_throttled",
                    user = %user.id,
                    client = %cmd.client,
                    retry_after_secs,
                    "password change throttled"
                );
                self.events
                    .record(self.event(EventKind::LoginThrottled, &cmd).user(user.id));
                return Err(ChangePasswordError::Throttled { retry_after_secs });
            }
        };
        let matches = match self
            .hasher
            .verify(&cmd.current, Some(user.password_hash.clone()))
            .await
        {
            Ok(matches) => matches,
            Err(e) => {
                let _ = self.throttle.abandoned(attempt).await;
                return Err(e.into());
            }
        };
        if !matches {
            let locks = attempt.locks;
            self.throttle.failed(attempt).await?;
            tracing::info!(
                event = "password_change_refused",
                user = %user.id,
                client = %cmd.client,
                "wrong current password"
            );
            let failed = |kind| self.event(kind, &cmd).user(user.id).session(claims.sid);
            self.events
                .record(failed(EventKind::LoginFailed).detail("wrong_current_password"));
            if let Some(lock) = locks {
                self.events
                    .record(failed(EventKind::AccountLocked).detail(lock.as_str()));
            }
            return Err(ChangePasswordError::InvalidCredentials);
        }
        // The password was right, whatever happens next.
        self.throttle.succeeded(attempt).await?;
        let new_hash = self.hasher.hash(&cmd.new).await?;
        let now = self.clock.now();
        let Some(sessions_revoked) = self
            .sessions
            .change_password(
                user.id,
                &user.password_hash,
                &new_hash,
                Some(claims.sid),
                now,
            )
            .await?
        else {
            tracing::info!(
                event = "password_change_lost",
                user = %user.id,
                "password replaced, account disabled or session ended during the change"
            );
            return Err(ChangePasswordError::InvalidCredentials);
        };
        tracing::info!(
            event = "password_changed",
            user = %user.id,
            session = %claims.sid,
            sessions_revoked,
            "password changed; other sessions revoked"
        );
        self.events.record(
            self.event(EventKind::PasswordChanged, &cmd)
                .user(user.id)
                .session(claims.sid),
        );
        let rotated = match cmd.cookie {
            None => None,
            Some(cookie) => match self.refresh.execute(Some(cookie), &cmd.client).await {
                Ok(tokens) => Some(tokens),
                // The change stands; the cookie is left as it is (a revoked one is refused at
                // its next use).
                Err(RefreshError::InvalidRefreshToken(why)) => {
                    tracing::info!(
                        event = "password_change_cookie_kept",
                        why,
                        "refresh cookie not rotated"
                    );
                    None
                }
                Err(RefreshError::Infra(e)) => {
                    tracing::warn!(error = %e, "refresh cookie not rotated after password change");
                    None
                }
            },
        };
        Ok(PasswordChanged {
            sessions_revoked,
            rotated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::outbound::memory_throttle::InMemoryLoginAttempts;
    use crate::app::test_support::*;
    use crate::domain::{
        AccessClaims, InfraError, PasswordHash, Reservation, SessionId, ThrottleSettings,
        Timestamp, User,
    };
    use crate::ports::{
        HashError, MockLoginAttempts, MockPasswordHasher, MockRefreshStore, MockTokenIssuer,
        Rotated, Successors,
    };

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

    struct Mocks {
        user: User,
        sid: SessionId,
        issuer: MockTokenIssuer,
        sessions: MockRefreshStore,
        hasher: MockPasswordHasher,
        events: Arc<Recorder>,
    }

    impl Mocks {
        /// A valid bearer token of a live session of an enabled account.
        fn new() -> Self {
            let user = user(false);
            let sid = SessionId::new_random();
            let claims = AccessClaims {
                sub: user.id,
                sid,
                iat: Timestamp::from_unix(NOW),
                exp: Timestamp::from_unix(NOW + 900),
                nbf: None,
                jti: uuid::Uuid::new_v4(),
            };
            let mut issuer = MockTokenIssuer::new();
            issuer
                .expect_verify_access()
                .returning(move |_, _| Ok(claims.clone()));
            let mut sessions = MockRefreshStore::new();
            let owner = user.clone();
            sessions
                .expect_live_session_user()
                .withf(move |s, _| *s == sid)
                .returning(move |_, _| Ok(Some(owner.clone())));
            Self {
                user,
                sid,
                issuer,
                sessions,
                hasher: MockPasswordHasher::new(),
                events: Arc::new(Recorder::default()),
            }
        }

        fn build(self, throttle: Arc<dyn LoginAttempts>) -> ChangePassword {
            let issuer: Arc<dyn crate::ports::TokenIssuer> = Arc::new(self.issuer);
            let sessions: Arc<dyn RefreshStore> = Arc::new(self.sessions);
            let clock: Arc<dyn Clock> = Arc::new(clock_at(NOW));
            ChangePassword {
                auth: Me {
                    issuer: issuer.clone(),
                    sessions: sessions.clone(),
                    clock: clock.clone(),
                },
                hasher: Arc::new(self.hasher),
                sessions: sessions.clone(),
                throttle,
                clock: clock.clone(),
                events: self.events.clone(),
                refresh: Refresh {
                    issuer,
                    sessions,
                    clock,
                    policy: policy(),
                    successors: Arc::new(Reversed),
                    events: self.events,
                },
            }
        }

        fn build_default(self) -> ChangePassword {
            self.build(Arc::new(InMemoryLoginAttempts::new(
                ThrottleSettings::default(),
                Arc::new(clock_at(NOW)),
            )))
        }
    }

    fn cmd() -> ChangePasswordCommand {
        ChangePasswordCommand {
            bearer: AccessToken::new("tok".into()),
            current: Password::parse("old password".into()).unwrap(),
            new: Password::parse_new("new password".into()).unwrap(),
            cookie: None,
            client: ClientAddress::from_ip([192, 0, 2, 1].into()),
            user_agent: None,
        }
    }

    fn admitted(e: &crate::domain::Email, c: &ClientAddress) -> Result<Attempt, InfraError> {
        Ok(Attempt::Admitted(Reservation::new(e, c, NOW)))
    }

    #[tokio::test]
    async fn a_right_password_stores_the_new_hash_keeping_only_this_session() {
        let mut m = Mocks::new();
        let (id, sid, stored) = (m.user.id, m.sid, m.user.password_hash.clone());
        let checked = stored.clone();
        m.hasher
            .expect_verify()
            .withf(move |p, h| p.expose() == "old password" && h.as_ref() == Some(&checked))
            .times(1)
            .return_once(|_, _| Ok(true));
        m.hasher
            .expect_hash()
            .withf(|p| p.expose() == "new password")
            .times(1)
            .return_once(|_| Ok(PasswordHash::new("$new$".into())));
        m.sessions
            .expect_change_password()
            .withf(move |u, current, new, keep, now| {
                *u == id
                    && *current == stored
                    && new.as_str() == "$new$"
                    && *keep == Some(sid)
                    && now.unix() == NOW
            })
            .times(1)
            .return_once(|_, _, _, _, _| Ok(Some(3)));
        m.sessions.expect_rotate().never();
        let mut throttle = MockLoginAttempts::new();
        throttle
            .expect_begin()
            .withf(|e, c| e.as_str() == "jywan@test.com" && c.as_str() == "192.0.2.1")
            .times(1)
            .return_once(admitted);
        throttle.expect_succeeded().times(1).return_once(|_| Ok(()));
        throttle.expect_failed().never();
        let events = m.events.clone();
        let out = m.build(Arc::new(throttle)).execute(cmd()).await.unwrap();
        assert_eq!(out.sessions_revoked, 3);
        assert!(out.rotated.is_none(), "no cookie, nothing rotated");
        assert_eq!(events.kinds(), [EventKind::PasswordChanged]);
        let e = &events.events()[0];
        assert_eq!((e.user, e.session), (Some(id), Some(sid)));
        assert_eq!(
            e.client.as_ref().map(ClientAddress::as_str),
            Some("192.0.2.1")
        );
    }

    #[tokio::test]
    async fn with_a_cookie_the_kept_session_gets_its_successor() {
        let mut m = Mocks::new();
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.hasher
            .expect_hash()
            .return_once(|_| Ok(PasswordHash::new("$new$".into())));
        m.sessions
            .expect_change_password()
            .return_once(|_, _, _, _, _| Ok(Some(0)));
        let cookie = RefreshToken::generate();
        let presented = cookie.hash();
        let session = session_of(&m.user);
        m.sessions
            .expect_rotate()
            .withf(move |r| r.presented == presented)
            .times(1)
            .return_once(move |r| {
                Ok(Rotated {
                    session,
                    replayed: false,
                    successor: r.successor,
                })
            });
        m.issuer
            .expect_issue_access()
            .return_once(|_| Ok(AccessToken::new("jwt".into())));
        let out = m
            .build_default()
            .execute(ChangePasswordCommand {
                cookie: Some(cookie.clone()),
                ..cmd()
            })
            .await
            .unwrap();
        let rotated = out.rotated.expect("rotated");
        assert_eq!(rotated.refresh_token, Reversed.successor_of(&cookie));
    }

    #[tokio::test]
    async fn a_wrong_password_is_a_failed_login_and_changes_nothing() {
        let mut m = Mocks::new();
        m.hasher.expect_verify().return_once(|_, _| Ok(false));
        m.hasher.expect_hash().never();
        m.sessions.expect_change_password().never();
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().times(1).return_once(admitted);
        throttle.expect_failed().times(1).return_once(|_| Ok(()));
        throttle.expect_succeeded().never();
        let events = m.events.clone();
        let err = m
            .build(Arc::new(throttle))
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, ChangePasswordError::InvalidCredentials));
        assert_eq!(events.kinds(), [EventKind::LoginFailed]);
        assert_eq!(
            events.events()[0].detail.as_deref(),
            Some("wrong_current_password")
        );
    }

    #[tokio::test]
    async fn the_login_budget_holds_back_guesses_before_any_check() {
        let mut m = Mocks::new();
        m.hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));
        m.sessions.expect_change_password().never();
        let events = m.events.clone();
        let change = m.build(Arc::new(InMemoryLoginAttempts::new(
            ThrottleSettings {
                pair_max_failures: 1,
                ..ThrottleSettings::default()
            },
            Arc::new(clock_at(NOW)),
        )));
        assert!(matches!(
            change.execute(cmd()).await,
            Err(ChangePasswordError::InvalidCredentials)
        ));
        match change.execute(cmd()).await {
            Err(ChangePasswordError::Throttled { retry_after_secs }) => {
                assert!(retry_after_secs > 0);
            }
            other => panic!("expected throttled, got {other:?}"),
        }
        assert_eq!(
            events.kinds(),
            [
                EventKind::LoginFailed,
                EventKind::AccountLocked,
                EventKind::LoginThrottled
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_bearer_token_counts_nothing_and_checks_nothing() {
        let mut m = Mocks::new();
        m.sessions = MockRefreshStore::new();
        m.sessions
            .expect_live_session_user()
            .return_once(|_, _| Ok(None));
        m.hasher.expect_verify().never();
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().never();
        let err = m
            .build(Arc::new(throttle))
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, ChangePasswordError::InvalidToken(_)));

        // A disabled account's token is refused the same way.
        let mut m = Mocks::new();
        m.sessions = MockRefreshStore::new();
        let mut disabled = m.user.clone();
        disabled.disabled = true;
        m.sessions
            .expect_live_session_user()
            .return_once(move |_, _| Ok(Some(disabled)));
        m.hasher.expect_verify().never();
        let err = m.build_default().execute(cmd()).await.unwrap_err();
        assert!(matches!(err, ChangePasswordError::InvalidToken(_)));
    }

    #[tokio::test]
    async fn a_change_that_lost_the_race_is_invalid_credentials_and_reports_nothing() {
        let mut m = Mocks::new();
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.hasher
            .expect_hash()
            .return_once(|_| Ok(PasswordHash::new("$new$".into())));
        m.sessions
            .expect_change_password()
            .times(1)
            .return_once(|_, _, _, _, _| Ok(None));
        m.sessions.expect_rotate().never();
        let events = m.events.clone();
        let err = m
            .build_default()
            .execute(ChangePasswordCommand {
                cookie: Some(RefreshToken::generate()),
                ..cmd()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ChangePasswordError::InvalidCredentials));
        assert!(events.kinds().is_empty());
    }

    #[tokio::test]
    async fn hasher_and_store_failures_change_nothing() {
        let mut m = Mocks::new();
        m.hasher
            .expect_verify()
            .return_once(|_, _| Err(HashError::busy()));
        m.sessions.expect_change_password().never();
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().return_once(admitted);
        throttle.expect_abandoned().times(1).return_once(|_| Ok(()));
        throttle.expect_failed().never();
        let err = m
            .build(Arc::new(throttle))
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ChangePasswordError::Infra(InfraError::Unavailable(_))
        ));

        let mut m = Mocks::new();
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.hasher
            .expect_hash()
            .return_once(|_| Ok(PasswordHash::new("$new$".into())));
        m.sessions
            .expect_change_password()
            .return_once(|_, _, _, _, _| Err(down()));
        let events = m.events.clone();
        let err = m.build_default().execute(cmd()).await.unwrap_err();
        assert!(matches!(
            err,
            ChangePasswordError::Infra(InfraError::Unavailable(_))
        ));
        assert!(events.kinds().is_empty());
    }
}

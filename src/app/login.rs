use std::sync::Arc;

use super::MAX_LISTED_SESSIONS;
use super::{issue_tokens, TokenPolicy};
use crate::domain::{
    Attempt, ClientAddress, Email, EventKind, IssuedTokens, LoginError, Password, RefreshToken,
    Reservation, SecurityEvent, Session, SessionId, SessionOrigin, Timestamp, User, UserAgent,
};
use crate::ports::{
    Clock, LoginAttempts, PasswordHasher, PasswordUpgrades, RefreshStore, SecurityEvents,
    TokenIssuer, UserRepo,
};

/// A login attempt, already parsed at the edge.
#[derive(Debug)]
pub struct LoginCommand {
    pub email: Email,
    pub password: Password,
    /// The client's address as the edge sees it; the key of the per-address throttle.
    pub client: ClientAddress,
    /// Recorded with the session, for its owner's sessions list.
    pub user_agent: Option<UserAgent>,
}

/// Checks a password and opens a new session (a new refresh-token family).
pub struct Login {
    pub users: Arc<dyn UserRepo>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    pub throttle: Arc<dyn LoginAttempts>,
    pub upgrades: Arc<dyn PasswordUpgrades>,
    pub events: Arc<dyn SecurityEvents>,
    pub policy: TokenPolicy,
    /// An account that never authenticates here, whatever its password (the `dev` demo
    /// account under `prod`): answered like a wrong password, after the same full check.
    pub refused: Option<Email>,
    /// `REQUIRE_EMAIL_VERIFICATION`: an unverified account's right password opens no session.
    pub require_verified_email: bool,
}

impl Login {
    /// The account, if any, and whether the password matches it (a dummy check without one).
    async fn check_password(&self, cmd: &LoginCommand) -> Result<(Option<User>, bool), LoginError> {
        let user = self.users.find_by_email(&cmd.email).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let matches = self.hasher.verify(&cmd.password, stored_hash).await?;
        Ok((user, matches))
    }

    /// An event about this attempt's client.
    fn event(&self, kind: EventKind, cmd: &LoginCommand, now: Timestamp) -> SecurityEvent {
        SecurityEvent::new(kind, now)
            .client(cmd.client.clone())
            .user_agent(cmd.user_agent.clone())
    }

    /// Settles a refused attempt as failed: `InvalidCredentials`, or `Infra` when the throttle
    /// cannot be reached. `why` is the event's detail: `unknown_account`, `wrong_password`,
    /// `disabled` (a disabled account, or the refused demo account, with its right password).
    async fn failed(
        &self,
        attempt: Reservation,
        user: Option<&User>,
        cmd: &LoginCommand,
        why: &'static str,
    ) -> LoginError {
        let locks = attempt.locks;
        if let Err(e) = self.throttle.failed(attempt).await {
            return e.into();
        }
        tracing::info!(
            event = "login_failed",
            user = user.map(|u| tracing::field::display(u.id)),
            client = %cmd.client,
            why,
            "login failed"
        );
        let now = self.clock.now();
        let kind = if why == "disabled" {
            EventKind::LoginDisabled
        } else {
            EventKind::LoginFailed
        };
        let with_user = |e: SecurityEvent| match user {
            Some(u) => e.user(u.id),
            None => e,
        };
        self.events
            .record(with_user(self.event(kind, cmd, now)).detail(why));
        if let Some(lock) = locks {
            self.events.record(
                with_user(self.event(EventKind::AccountLocked, cmd, now)).detail(lock.as_str()),
            );
        }
        LoginError::InvalidCredentials
    }

    /// Whether none of the account's live sessions came from this client (address bucket and
    /// user agent). A store failure answers `false`: the login does not fail for an event.
    /// Whether the password checked is still the account's, now that the session exists. A
    /// password change (or reset) that committed while this login was hashing would otherwise
    /// leave it a session opened with the old password: the store takes the account's row in
    /// both steps, so either the change ends this session (it came first) or this read sees
    /// the new hash. A hash rewritten by an upgrade is of the same password: checked again, it
    /// still matches. Otherwise the session is revoked and the login fails.
    async fn still_the_password(
        &self,
        user: &User,
        cmd: &LoginCommand,
        session: &Session,
        now: Timestamp,
    ) -> Result<bool, LoginError> {
        let current = match self.users.find_by_id(user.id).await? {
            Some(current) if current.password_hash == user.password_hash => return Ok(true),
            Some(current) => {
                self.hasher
                    .verify(&cmd.password, Some(current.password_hash))
                    .await?
            }
            None => false,
        };
        if !current {
            self.sessions
                .revoke_session(user.id, session.id, now)
                .await?;
            tracing::info!(
                event = "login_superseded",
                user = %user.id,
                "the password changed while the login was checked; its session is ended"
            );
        }
        Ok(current)
    }

    async fn is_new_client(&self, user: &User, cmd: &LoginCommand, now: Timestamp) -> bool {
        match self
            .sessions
            .list_sessions(user.id, now, MAX_LISTED_SESSIONS)
            .await
        {
            Ok(live) => !live.iter().any(|s| {
                s.client_address.as_deref() == Some(cmd.client.as_str())
                    && s.user_agent.as_deref() == cmd.user_agent.as_ref().map(UserAgent::as_str)
            }),
            Err(e) => {
                tracing::warn!(error = %e, "sessions not listed: new_login not judged");
                false
            }
        }
    }

    /// # Errors
    /// `InvalidCredentials` for an unknown email, a wrong password or a disabled account, all
    /// after one full password check (also for an account disabled during the check); `Throttled` before any check while the throttle holds
    /// the attempt back (the attempt is counted before the check, so a parallel burst cannot
    /// outrun it);
    /// `Infra` when a store (the throttle's included) is down or the hasher or signer fails.
    pub async fn execute(&self, cmd: LoginCommand) -> Result<IssuedTokens, LoginError> {
        let attempt = match self.throttle.begin(&cmd.email, &cmd.client).await? {
            Attempt::Admitted(attempt) => attempt,
            Attempt::Refused { retry_after_secs } => {
                // No account id: finding it would cost a store read on every refused request.
                tracing::info!(
                    event = "login_throttled",
                    client = %cmd.client,
                    retry_after_secs,
                    "login throttled"
                );
                self.events
                    .record(self.event(EventKind::LoginThrottled, &cmd, self.clock.now()));
                return Err(LoginError::Throttled { retry_after_secs });
            }
        };
        let (user, matches) = match self.check_password(&cmd).await {
            Ok(checked) => checked,
            Err(e) => {
                // Not judged: neither a failure nor a success. If settling fails too, the
                // attempt simply stays counted.
                let _ = self.throttle.abandoned(attempt).await;
                return Err(e);
            }
        };
        let user = match user {
            None => return Err(self.failed(attempt, None, &cmd, "unknown_account").await),
            Some(user) if !matches => {
                return Err(self
                    .failed(attempt, Some(&user), &cmd, "wrong_password")
                    .await)
            }
            Some(user) if user.disabled || self.refused.as_ref() == Some(&user.email) => {
                return Err(self.failed(attempt, Some(&user), &cmd, "disabled").await)
            }
            Some(user) => user,
        };
        if self.require_verified_email && !user.email_verified {
            // The password was right: not a failure for the throttle, and only someone who
            // has it learns that the address is unverified.
            self.throttle.succeeded(attempt).await?;
            tracing::info!(
                event = "login_unverified",
                user = %user.id,
                client = %cmd.client,
                "login refused: email not verified"
            );
            return Err(LoginError::EmailNotVerified);
        }

        let now = self.clock.now();
        let new_client = self.is_new_client(&user, &cmd, now).await;
        let expires_at = now.plus_secs(self.policy.session_ttl_secs);
        let session = Session {
            id: SessionId::new_random(),
            user_id: user.id,
            created_at: now,
            expires_at,
            idle_expires_at: self.policy.idle_end(now).map(|t| t.min(expires_at)),
        };
        let refresh_token = RefreshToken::generate();
        let origin = SessionOrigin {
            user_agent: cmd.user_agent.clone(),
            client: cmd.client.clone(),
        };
        // The store checks the account again, atomically with the insert: it may have been
        // disabled (and its sessions revoked) while the password was being checked. It also
        // ends the least recently used sessions beyond the cap, in the same step.
        let created = self
            .sessions
            .create_session(
                &session,
                refresh_token.hash(),
                &origin,
                self.policy.max_sessions_per_user,
            )
            .await;
        if matches!(created, Ok(false)) {
            return Err(self.failed(attempt, Some(&user), &cmd, "disabled").await);
        }
        if created.is_ok() && !self.still_the_password(&user, &cmd, &session, now).await? {
            return Err(self
                .failed(attempt, Some(&user), &cmd, "wrong_password")
                .await);
        }
        // The password was right even if the session store then failed.
        self.throttle.succeeded(attempt).await?;
        if self.hasher.needs_rehash(&user.password_hash) {
            self.upgrades
                .schedule(user.id, user.password_hash.clone(), cmd.password.clone());
        }
        created?;
        tracing::info!(event = "login", user = %user.id, session = %session.id, "session opened");
        let opened = |kind| {
            self.event(kind, &cmd, now)
                .user(user.id)
                .session(session.id)
        };
        self.events.record(opened(EventKind::LoginSucceeded));
        if new_client {
            self.events.record(opened(EventKind::NewLogin));
        }
        Ok(issue_tokens(
            &self.issuer,
            self.policy,
            &session,
            refresh_token,
            now,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::outbound::memory_throttle::InMemoryLoginAttempts;
    use crate::app::test_support::*;
    use crate::domain::{AccessToken, InfraError, Reservation, SessionInfo, ThrottleSettings};
    use crate::ports::{
        HashError, MockLoginAttempts, MockPasswordHasher, MockPasswordUpgrades, MockRefreshStore,
        MockTokenIssuer, MockUserRepo, TokenError,
    };
    use mockall::predicate::*;

    struct Mocks {
        users: MockUserRepo,
        hasher: MockPasswordHasher,
        issuer: MockTokenIssuer,
        sessions: MockRefreshStore,
        upgrades: MockPasswordUpgrades,
        events: Arc<dyn SecurityEvents>,
    }

    impl Mocks {
        /// Stored hashes are current unless a test says otherwise.
        fn new() -> Self {
            let mut hasher = MockPasswordHasher::new();
            hasher.expect_needs_rehash().return_const(false);
            let mut upgrades = MockPasswordUpgrades::new();
            upgrades.expect_schedule().never();
            // No live session yet: every login is from a new client.
            let mut sessions = MockRefreshStore::new();
            sessions
                .expect_list_sessions()
                .returning(|_, _, _| Ok(vec![]));
            // Read again once the session exists: the password has not changed meanwhile.
            let mut users = MockUserRepo::new();
            users
                .expect_find_by_id()
                .returning(|_| Ok(Some(crate::app::test_support::user(false))));
            Self {
                users,
                hasher,
                issuer: MockTokenIssuer::new(),
                sessions,
                upgrades,
                events: Arc::new(crate::ports::NoSecurityEvents),
            }
        }

        /// With the in-process throttle, so the lockout tests run the real policy.
        fn build(self, settings: ThrottleSettings) -> Login {
            let clock: Arc<dyn Clock> = Arc::new(clock_at(NOW));
            self.build_with(Arc::new(InMemoryLoginAttempts::new(
                settings,
                clock.clone(),
            )))
        }

        fn build_with(self, throttle: Arc<dyn LoginAttempts>) -> Login {
            Login {
                users: Arc::new(self.users),
                hasher: Arc::new(self.hasher),
                issuer: Arc::new(self.issuer),
                sessions: Arc::new(self.sessions),
                throttle,
                upgrades: Arc::new(self.upgrades),
                events: self.events,
                clock: Arc::new(clock_at(NOW)),
                policy: policy(),
                refused: None,
                require_verified_email: false,
            }
        }
    }

    fn cmd() -> LoginCommand {
        LoginCommand {
            email: Email::parse("jywan@test.com").unwrap(),
            password: Password::parse("test".into()).unwrap(),
            client: ClientAddress::from_ip([127, 0, 0, 1].into()),
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn success_opens_a_session_ending_at_the_absolute_lifetime() {
        let user = user(false);
        let mut m = Mocks::new();
        let found = user.clone();
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(found)));
        m.hasher
            .expect_verify()
            .withf(|p, h| p.expose() == "test" && h.is_some())
            .return_once(|_, _| Ok(true));
        let user_id = user.id;
        m.sessions
            .expect_create_session()
            .withf(move |s, _, origin, max| {
                s.user_id == user_id
                    && s.expires_at.unix() == NOW + 30 * 86_400
                    && s.created_at.unix() == NOW
                    && s.idle_expires_at.is_none()
                    && origin.client.as_str() == "127.0.0.1"
                    && *max == 20
            })
            .times(1)
            .return_once(|_, _, _, _| Ok(true));
        m.issuer
            .expect_issue_access()
            .withf(move |c| c.sub == user_id && c.exp.unix() - c.iat.unix() == 900)
            .return_once(|_| Ok(AccessToken::new("jwt".into())));
        let tokens = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap();
        assert_eq!(tokens.access_token.as_str(), "jwt");
        assert_eq!(tokens.expires_in, 900);
        assert_eq!(tokens.session_expires_at.unix(), NOW + 30 * 86_400);
    }

    /// `REQUIRE_EMAIL_VERIFICATION`: an unverified account's right password opens no session
    /// and mints no token; its wrong password is the usual refusal; a verified account, or an
    /// unverified one with the flag off, logs in.
    #[tokio::test]
    async fn the_verification_flag_refuses_only_an_unverified_accounts_right_password() {
        for (require, verified, right, want) in [
            (true, false, true, "not_verified"),
            (true, false, false, "invalid"),
            (true, true, true, "ok"),
            (false, false, true, "ok"),
        ] {
            let mut user = user(false);
            user.email_verified = verified;
            let mut m = Mocks::new();
            let found = user.clone();
            m.users
                .expect_find_by_email()
                .return_once(move |_| Ok(Some(found)));
            m.hasher.expect_verify().return_once(move |_, _| Ok(right));
            let opens = usize::from(want == "ok");
            m.sessions
                .expect_create_session()
                .times(opens)
                .returning(|_, _, _, _| Ok(true));
            m.issuer
                .expect_issue_access()
                .times(opens)
                .returning(|_| Ok(AccessToken::new("jwt".into())));
            let mut login = m.build(ThrottleSettings::default());
            login.require_verified_email = require;
            let got = match login.execute(cmd()).await {
                Ok(_) => "ok",
                Err(LoginError::EmailNotVerified) => "not_verified",
                Err(LoginError::InvalidCredentials) => "invalid",
                Err(e) => panic!("{e}"),
            };
            assert_eq!(
                got, want,
                "require {require}, verified {verified}, right {right}"
            );
        }
    }

    /// A password change that committed while the login was hashing: the login's session is
    /// ended and the login fails, as with the wrong password.
    #[tokio::test]
    async fn a_password_changed_during_the_check_ends_the_new_session() {
        for (still_matches, ok) in [(false, false), (true, true)] {
            let user = user(false);
            let mut m = Mocks::new();
            let mut changed = user.clone();
            changed.password_hash =
                crate::domain::PasswordHash::new("$bcrypt-hmac-sha256$v=1$r=4$new".into());
            // Fresh expectations: the account's hash is another one when read again.
            m.users = MockUserRepo::new();
            let found = user.clone();
            m.users
                .expect_find_by_email()
                .return_once(move |_| Ok(Some(found)));
            m.users
                .expect_find_by_id()
                .return_once(move |_| Ok(Some(changed)));
            let mut seq = mockall::Sequence::new();
            m.hasher
                .expect_verify()
                .withf(|_, h| h.as_ref().is_some_and(|h| h.as_str() == "$2b$04$hash"))
                .times(1)
                .in_sequence(&mut seq)
                .return_once(|_, _| Ok(true));
            m.hasher
                .expect_verify()
                .withf(|_, h| h.as_ref().is_some_and(|h| h.as_str().contains("$new")))
                .times(1)
                .in_sequence(&mut seq)
                .return_once(move |_, _| Ok(still_matches));
            m.sessions
                .expect_create_session()
                .return_once(|_, _, _, _| Ok(true));
            let user_id = user.id;
            m.sessions
                .expect_revoke_session()
                .withf(move |u, _, _| *u == user_id)
                .times(usize::from(!still_matches))
                .returning(|_, _, _| Ok(true));
            m.issuer
                .expect_issue_access()
                .times(usize::from(ok))
                .returning(|_| Ok(AccessToken::new("jwt".into())));
            let outcome = m.build(ThrottleSettings::default()).execute(cmd()).await;
            if ok {
                assert!(outcome.is_ok(), "an upgraded hash of the same password");
            } else {
                assert!(matches!(outcome, Err(LoginError::InvalidCredentials)));
            }
        }
    }

    #[tokio::test]
    async fn unknown_email_still_runs_a_full_password_check() {
        let mut m = Mocks::new();
        m.users.expect_find_by_email().return_once(|_| Ok(None));
        m.hasher
            .expect_verify()
            .with(always(), eq(None))
            .times(1)
            .return_once(|_, _| Ok(false));
        m.sessions.expect_create_session().never();
        let err = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn wrong_password_and_disabled_user_are_invalid_credentials() {
        for (disabled, matches) in [(false, false), (true, true)] {
            let mut m = Mocks::new();
            let u = user(disabled);
            m.users
                .expect_find_by_email()
                .return_once(move |_| Ok(Some(u)));
            m.hasher
                .expect_verify()
                .return_once(move |_, _| Ok(matches));
            m.sessions.expect_create_session().never();
            let err = m
                .build(ThrottleSettings::default())
                .execute(cmd())
                .await
                .unwrap_err();
            assert!(
                matches!(err, LoginError::InvalidCredentials),
                "disabled={disabled}"
            );
        }
    }

    #[tokio::test]
    async fn a_hash_of_an_older_policy_is_upgraded_in_the_background_after_success() {
        let u = user(false);
        let (id, stored) = (u.id, u.password_hash.clone());
        let mut m = Mocks::new();
        m.hasher = MockPasswordHasher::new();
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.hasher.expect_needs_rehash().return_const(true);
        m.hasher.expect_hash().never(); // not on the request's path
        m.upgrades = MockPasswordUpgrades::new();
        m.upgrades
            .expect_schedule()
            .withf(move |user, current, password| {
                *user == id && *current == stored && password.expose() == "test"
            })
            .times(1)
            .return_const(());
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.sessions
            .expect_create_session()
            .return_once(|_, _, _, _| Ok(true));
        m.issuer
            .expect_issue_access()
            .return_once(|_| Ok(AccessToken::new("jwt".into())));
        m.build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_failed_login_never_upgrades_a_hash() {
        let u = user(false);
        let mut m = Mocks::new();
        m.hasher = MockPasswordHasher::new();
        m.hasher.expect_verify().return_once(|_, _| Ok(false));
        m.hasher.expect_needs_rehash().return_const(true);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        let err = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn a_refused_account_fails_like_a_wrong_password_after_the_full_check() {
        let mut m = Mocks::new();
        let u = user(false);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.hasher
            .expect_verify()
            .times(1)
            .return_once(|_, _| Ok(true));
        m.sessions.expect_create_session().never();
        let mut login = m.build(ThrottleSettings::default());
        login.refused = Some(cmd().email);
        let err = login.execute(cmd()).await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn user_store_down_is_unavailable() {
        let mut m = Mocks::new();
        m.users.expect_find_by_email().return_once(|_| Err(down()));
        m.hasher.expect_verify().never();
        let err = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Infra(InfraError::Unavailable(_))));
    }

    #[tokio::test]
    async fn session_store_down_is_unavailable_and_issues_nothing() {
        let mut m = Mocks::new();
        let u = user(false);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.sessions
            .expect_create_session()
            .return_once(|_, _, _, _| Err(down()));
        m.issuer.expect_issue_access().never();
        let err = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Infra(InfraError::Unavailable(_))));
    }

    #[tokio::test]
    async fn hasher_and_signer_failures_are_unknown() {
        let mut m = Mocks::new();
        m.users.expect_find_by_email().return_once(|_| Ok(None));
        m.hasher
            .expect_verify()
            .return_once(|_, _| Err(HashError(anyhow::anyhow!("blocking pool gone"))));
        let err = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Infra(InfraError::Unknown(_))));

        let mut m = Mocks::new();
        let u = user(false);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.sessions
            .expect_create_session()
            .return_once(|_, _, _, _| Ok(true));
        m.issuer
            .expect_issue_access()
            .return_once(|_| Err(TokenError::Unknown(anyhow::anyhow!("signer"))));
        let err = m
            .build(ThrottleSettings::default())
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Infra(InfraError::Unknown(_))));
    }

    #[tokio::test]
    async fn lockout_answers_before_touching_any_port() {
        let settings = ThrottleSettings {
            pair_max_failures: 1,
            ..ThrottleSettings::default()
        };
        let mut m = Mocks::new();
        m.users
            .expect_find_by_email()
            .times(1)
            .returning(|_| Ok(None));
        m.hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));
        let login = m.build(settings);
        assert!(matches!(
            login.execute(cmd()).await,
            Err(LoginError::InvalidCredentials)
        ));
        match login.execute(cmd()).await {
            Err(LoginError::Throttled { retry_after_secs }) => assert!(retry_after_secs > 0),
            other => panic!("expected throttled, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn failures_are_reported_and_the_one_that_locks_the_pair_reports_the_lock_once() {
        let settings = ThrottleSettings {
            pair_max_failures: 3,
            ..ThrottleSettings::default()
        };
        let recorder = Arc::new(Recorder::default());
        let mut m = Mocks::new();
        m.events = recorder.clone();
        let u = user(false);
        let id = u.id;
        m.users
            .expect_find_by_email()
            .returning(move |_| Ok(Some(u.clone())));
        m.hasher.expect_verify().returning(|_, _| Ok(false));
        let login = m.build(settings);
        for _ in 0..3 {
            assert!(matches!(
                login.execute(cmd()).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            login.execute(cmd()).await,
            Err(LoginError::Throttled { .. })
        ));
        use EventKind::*;
        assert_eq!(
            recorder.kinds(),
            [
                LoginFailed,
                LoginFailed,
                LoginFailed,
                AccountLocked,
                LoginThrottled
            ]
        );
        let events = recorder.events();
        assert!(events[..4].iter().all(|e| e.user == Some(id)));
        assert_eq!(events[0].detail.as_deref(), Some("wrong_password"));
        assert_eq!(events[3].detail.as_deref(), Some("pair"));
        assert_eq!(events[4].user, None, "no store read for a refused attempt");
        assert!(events
            .iter()
            .all(|e| e.client.as_ref().map(ClientAddress::as_str) == Some("127.0.0.1")));
    }

    #[tokio::test]
    async fn a_disabled_account_with_its_right_password_is_reported_as_disabled() {
        let recorder = Arc::new(Recorder::default());
        let mut m = Mocks::new();
        m.events = recorder.clone();
        let u = user(true);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        let _ = m.build(ThrottleSettings::default()).execute(cmd()).await;
        assert_eq!(recorder.kinds(), [EventKind::LoginDisabled]);
        assert_eq!(recorder.events()[0].detail.as_deref(), Some("disabled"));
    }

    #[tokio::test]
    async fn a_login_is_new_only_from_a_client_no_live_session_came_from() {
        let ua = UserAgent::parse("Firefox/140");
        let with_cmd = || LoginCommand {
            user_agent: ua.clone(),
            ..cmd()
        };
        for (known_client, known_agent, new) in [
            (None, None, true),
            (Some("127.0.0.1"), Some("Firefox/140"), false),
            (Some("127.0.0.1"), Some("Chrome/140"), true),
            (Some("192.0.2.9"), Some("Firefox/140"), true),
        ] {
            let recorder = Arc::new(Recorder::default());
            let mut m = Mocks::new();
            m.events = recorder.clone();
            let u = user(false);
            let existing = session_of(&u);
            m.sessions = MockRefreshStore::new();
            m.sessions.expect_list_sessions().returning(move |_, _, _| {
                Ok(known_client
                    .map(|client| SessionInfo {
                        session: existing.clone(),
                        last_used_at: existing.created_at,
                        user_agent: known_agent.map(str::to_owned),
                        client_address: Some(client.to_owned()),
                    })
                    .into_iter()
                    .collect())
            });
            m.sessions
                .expect_create_session()
                .return_once(|_, _, _, _| Ok(true));
            m.users
                .expect_find_by_email()
                .return_once(move |_| Ok(Some(u)));
            m.hasher.expect_verify().return_once(|_, _| Ok(true));
            m.issuer
                .expect_issue_access()
                .return_once(|_| Ok(AccessToken::new("jwt".into())));
            m.build(ThrottleSettings::default())
                .execute(with_cmd())
                .await
                .unwrap();
            let expected: &[EventKind] = if new {
                &[EventKind::LoginSucceeded, EventKind::NewLogin]
            } else {
                &[EventKind::LoginSucceeded]
            };
            assert_eq!(
                recorder.kinds(),
                expected,
                "{known_client:?} {known_agent:?}"
            );
            let opened = &recorder.events()[0];
            assert!(opened.user.is_some() && opened.session.is_some());
            assert_eq!(opened.user_agent, ua);
        }
    }

    fn admitted(e: &Email, c: &ClientAddress) -> Result<Attempt, crate::ports::StoreError> {
        Ok(Attempt::Admitted(Reservation::new(e, c, NOW)))
    }

    #[tokio::test]
    async fn the_throttle_port_sees_each_outcome() {
        // A failure is counted against account and client; a success clears the account.
        let mut m = Mocks::new();
        m.users.expect_find_by_email().return_once(|_| Ok(None));
        m.hasher.expect_verify().return_once(|_, _| Ok(false));
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().times(1).return_once(admitted);
        throttle
            .expect_failed()
            .withf(|r| r.email.as_str() == "jywan@test.com" && r.client.as_str() == "127.0.0.1")
            .times(1)
            .return_once(|_| Ok(()));
        throttle.expect_succeeded().never();
        throttle.expect_abandoned().never();
        let err = m.build_with(Arc::new(throttle)).execute(cmd()).await;
        assert!(matches!(err, Err(LoginError::InvalidCredentials)));

        let mut m = Mocks::new();
        let u = user(false);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.sessions
            .expect_create_session()
            .return_once(|_, _, _, _| Ok(true));
        m.issuer
            .expect_issue_access()
            .return_once(|_| Ok(AccessToken::new("jwt".into())));
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().return_once(admitted);
        throttle.expect_failed().never();
        throttle.expect_succeeded().times(1).return_once(|_| Ok(()));
        assert!(m
            .build_with(Arc::new(throttle))
            .execute(cmd())
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn an_account_disabled_during_the_password_check_is_invalid_credentials_and_a_failure() {
        // Enabled when read, disabled by the time the session would be stored: the store
        // refuses it, and the login fails as for a disabled account.
        let mut m = Mocks::new();
        let u = user(false);
        m.users
            .expect_find_by_email()
            .return_once(move |_| Ok(Some(u)));
        m.hasher.expect_verify().return_once(|_, _| Ok(true));
        m.sessions
            .expect_create_session()
            .times(1)
            .return_once(|_, _, _, _| Ok(false));
        m.issuer.expect_issue_access().never();
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().return_once(admitted);
        throttle.expect_failed().times(1).return_once(|_| Ok(()));
        throttle.expect_succeeded().never();
        throttle.expect_abandoned().never();
        let err = m.build_with(Arc::new(throttle)).execute(cmd()).await;
        assert!(
            matches!(err, Err(LoginError::InvalidCredentials)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_attempt_that_could_not_be_judged_is_abandoned_not_failed() {
        let mut m = Mocks::new();
        m.users.expect_find_by_email().return_once(|_| Err(down()));
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().return_once(admitted);
        throttle.expect_abandoned().times(1).return_once(|_| Ok(()));
        throttle.expect_failed().never();
        throttle.expect_succeeded().never();
        let err = m.build_with(Arc::new(throttle)).execute(cmd()).await;
        assert!(matches!(
            err,
            Err(LoginError::Infra(InfraError::Unavailable(_)))
        ));
    }

    #[tokio::test]
    async fn throttle_store_down_is_unavailable_before_any_check() {
        let mut m = Mocks::new();
        m.users.expect_find_by_email().never();
        m.hasher.expect_verify().never();
        let mut throttle = MockLoginAttempts::new();
        throttle.expect_begin().return_once(|_, _| Err(down()));
        let err = m
            .build_with(Arc::new(throttle))
            .execute(cmd())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Infra(InfraError::Unavailable(_))));
    }
}

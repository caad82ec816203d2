use std::sync::Arc;

use crate::domain::{Email, EventKind, SecurityEvent, SetDisabledError, User};
use crate::ports::{Clock, RefreshStore, SecurityEvents, UserRepo};

/// Disables an account, or enables it again. Disabling also revokes every session of the user,
/// so its refresh tokens die at once and its access tokens stop working at `/auth/me`.
/// Used by `jwt-auth user disable` and `jwt-auth user enable`.
pub struct SetDisabled {
    pub users: Arc<dyn UserRepo>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn SecurityEvents>,
}

/// The account after the change, and how many live sessions were revoked.
#[derive(Debug)]
pub struct SetDisabledOutcome {
    pub user: User,
    pub sessions_revoked: u64,
}

impl SetDisabled {
    /// `Ok(None)` when no account has this email. Idempotent: run it again after a failure.
    ///
    /// # Errors
    /// `Infra` when a store is down. The flag is written first: if revoking then fails,
    /// the account is already disabled, which refresh and `/auth/me` check on every call.
    pub async fn execute(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<SetDisabledOutcome>, SetDisabledError> {
        let Some(user) = self.users.set_disabled(email, disabled).await? else {
            return Ok(None);
        };
        let sessions_revoked = if disabled {
            self.sessions.revoke_user_sessions(user.id).await?
        } else {
            0
        };
        tracing::info!(event = "user_disabled_set", user = %user.id, disabled, sessions_revoked);
        let kind = if disabled {
            EventKind::AccountDisabled
        } else {
            EventKind::AccountEnabled
        };
        self.events
            .record(SecurityEvent::new(kind, self.clock.now()).user(user.id));
        Ok(Some(SetDisabledOutcome {
            user,
            sessions_revoked,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::domain::InfraError;
    use crate::ports::{MockRefreshStore, MockUserRepo};

    fn build(users: MockUserRepo, sessions: MockRefreshStore) -> SetDisabled {
        SetDisabled {
            users: Arc::new(users),
            sessions: Arc::new(sessions),
            clock: Arc::new(clock_at(NOW)),
            events: Arc::new(crate::ports::NoSecurityEvents),
        }
    }

    #[tokio::test]
    async fn disabling_revokes_every_session_of_the_user() {
        let u = user(true);
        let id = u.id;
        let (mut users, mut sessions) = (MockUserRepo::new(), MockRefreshStore::new());
        users
            .expect_set_disabled()
            .withf(|_, d| *d)
            .return_once(move |_, _| Ok(Some(u)));
        sessions
            .expect_revoke_user_sessions()
            .withf(move |u| *u == id)
            .times(1)
            .return_once(|_| Ok(3));
        let out = build(users, sessions)
            .execute(&Email::parse("jywan@test.com").unwrap(), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.sessions_revoked, 3);
    }

    #[tokio::test]
    async fn enabling_touches_no_session_and_unknown_email_is_none() {
        let u = user(false);
        let (mut users, mut sessions) = (MockUserRepo::new(), MockRefreshStore::new());
        users
            .expect_set_disabled()
            .times(1)
            .return_once(move |_, _| Ok(Some(u)));
        sessions.expect_revoke_user_sessions().never();
        let email = Email::parse("jywan@test.com").unwrap();
        let out = build(users, sessions).execute(&email, false).await.unwrap();
        assert_eq!(out.unwrap().sessions_revoked, 0);

        let (mut users, mut sessions) = (MockUserRepo::new(), MockRefreshStore::new());
        users.expect_set_disabled().return_once(|_, _| Ok(None));
        sessions.expect_revoke_user_sessions().never();
        assert!(build(users, sessions)
            .execute(&email, true)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_store_outage_is_unavailable() {
        let (mut users, sessions) = (MockUserRepo::new(), MockRefreshStore::new());
        users.expect_set_disabled().return_once(|_, _| Err(down()));
        let email = Email::parse("jywan@test.com").unwrap();
        assert!(matches!(
            build(users, sessions).execute(&email, true).await,
            Err(SetDisabledError::Infra(InfraError::Unavailable(_)))
        ));
    }
}

//! Use cases: structs of ports with one `execute` method each.
//!
//! Imports only `domain` and `ports`; never a web framework, a JWT library, a database driver
//! or bcrypt (a test in `tests/` greps for that).

mod login;
mod logout;
mod me;
mod password;
mod refresh;
mod register;
mod reset;
mod sessions;
mod set_disabled;
mod verify;

pub use login::{Login, LoginCommand};
pub use logout::Logout;
pub use me::Me;
pub use password::{ChangePassword, ChangePasswordCommand, PasswordChanged};
pub use refresh::Refresh;
pub use register::Register;
pub use reset::{ForgotPassword, MailRate, ResetMail, ResetPassword, ResetPasswordError};
pub use sessions::{SessionList, Sessions, MAX_LISTED_SESSIONS};
pub use set_disabled::{SetDisabled, SetDisabledOutcome};
pub use verify::{EmailVerification, VerifyEmailError, VerifyMail};
// The policy lives in the domain; configuration names it here.
pub use crate::domain::ThrottleSettings;

use std::sync::Arc;

use crate::domain::{
    AccessClaims, ChangePasswordError, InfraError, IssuedTokens, LoginError, LogoutError, MeError,
    RefreshError, RefreshToken, RegisterError, Session, SetDisabledError, Timestamp,
};
use crate::ports::{HashError, TokenIssuer};

/// `?` on a hashing failure yields the use case's `Infra` variant (a store failure already is
/// one: `StoreError` is `InfraError`).
macro_rules! infra_from_ports {
    ($($error:ty),*) => {$(
        impl From<HashError> for $error {
            fn from(e: HashError) -> Self {
                Self::Infra(e.into())
            }
        }
    )*};
}

infra_from_ports!(
    LoginError,
    RefreshError,
    LogoutError,
    MeError,
    RegisterError,
    SetDisabledError,
    ChangePasswordError
);

/// Lifetimes the use cases issue tokens with, and the rules sessions live by.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    pub access_ttl_secs: u64,
    pub session_ttl_secs: u64,
    /// `REFRESH_IDLE_TIMEOUT_DAYS` in seconds; `None`: no idle timeout.
    pub idle_ttl_secs: Option<u64>,
    /// `REFRESH_REUSE_GRACE_SECS`.
    pub reuse_grace_secs: u64,
    /// `MAX_SESSIONS_PER_USER`.
    pub max_sessions_per_user: usize,
}

impl TokenPolicy {
    /// The idle end of a session used at `now`.
    pub fn idle_end(&self, now: Timestamp) -> Option<Timestamp> {
        self.idle_ttl_secs.map(|secs| now.plus_secs(secs))
    }
}

/// Signs an access token for `session` at `now` and bundles it with the session's refresh
/// token. Login and Refresh both end here, so the claims are built in one place.
fn issue_tokens(
    issuer: &Arc<dyn TokenIssuer>,
    policy: TokenPolicy,
    session: &Session,
    refresh_token: RefreshToken,
    now: Timestamp,
) -> Result<IssuedTokens, InfraError> {
    let claims = AccessClaims {
        sub: session.user_id,
        sid: session.id,
        iat: now,
        exp: now.plus_secs(policy.access_ttl_secs),
        nbf: None,
        jti: uuid::Uuid::new_v4(),
    };
    Ok(IssuedTokens {
        access_token: issuer.issue_access(&claims)?,
        expires_in: policy.access_ttl_secs,
        refresh_token,
        session_expires_at: session.ends_at(),
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders shared by the use-case unit tests.
    use crate::domain::{
        Email, EventKind, PasswordHash, SecurityEvent, Session, SessionId, Timestamp, User, UserId,
    };
    use crate::ports::{MockClock, SecurityEvents, StoreError};

    pub const NOW: u64 = 1_700_000_000;

    pub fn clock_at(secs: u64) -> MockClock {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp::from_unix(secs));
        clock
    }

    pub fn user(disabled: bool) -> User {
        User {
            id: UserId::new_random(),
            email: Email::parse("jywan@test.com").unwrap(),
            password_hash: PasswordHash::new("$2b$04$hash".into()),
            disabled,
            email_verified: true,
            created_at: Timestamp::from_unix(NOW - 100),
        }
    }

    pub fn session_of(user: &User) -> Session {
        Session {
            id: SessionId::new_random(),
            user_id: user.id,
            created_at: Timestamp::from_unix(NOW - 100),
            expires_at: Timestamp::from_unix(NOW + 1_000),
            idle_expires_at: None,
        }
    }

    pub fn policy() -> super::TokenPolicy {
        super::TokenPolicy {
            access_ttl_secs: 900,
            session_ttl_secs: 30 * 86_400,
            idle_ttl_secs: None,
            reuse_grace_secs: 5,
            max_sessions_per_user: 20,
        }
    }

    pub fn down() -> StoreError {
        StoreError::Unavailable(anyhow::anyhow!("connection refused"))
    }

    /// Keeps every event reported, for the assertions.
    #[derive(Default)]
    pub struct Recorder(std::sync::Mutex<Vec<SecurityEvent>>);

    impl Recorder {
        pub fn events(&self) -> Vec<SecurityEvent> {
            self.0.lock().unwrap().clone()
        }

        pub fn kinds(&self) -> Vec<EventKind> {
            self.events().iter().map(|e| e.kind).collect()
        }
    }

    impl SecurityEvents for Recorder {
        fn record(&self, event: SecurityEvent) {
            self.0.lock().unwrap().push(event);
        }
    }
}

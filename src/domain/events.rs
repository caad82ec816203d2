//! Security events: what happened to an account or a session, for the audit trail, the
//! metrics and the security-event webhooks. An event names ids, the client bucket and the
//! user agent; never a password, a token, a hash or an email.

use super::{ClientAddress, SessionId, Timestamp, UserAgent, UserId};

/// What happened. The names (`as_str`) are stable: they are the audit trail's `kind`, the
/// metrics' label values and the webhooks' `type`, so a rename breaks operators' queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    LoginDisabled,
    /// A login from a client (address bucket and user agent) the account had no live
    /// session from.
    NewLogin,
    /// The failure budget of an account is spent: its logins are refused for a while.
    AccountLocked,
    Logout,
    /// A refresh token was presented again after its window: the session is revoked.
    RefreshReuse,
    SessionRevoked,
    PasswordChanged,
    PasswordReset,
    PasswordResetRequested,
    EmailVerified,
    AccountCreated,
    AccountDisabled,
    AccountEnabled,
    KeyRotated,
}

impl EventKind {
    pub const ALL: [EventKind; 17] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::LoginDisabled,
        Self::NewLogin,
        Self::AccountLocked,
        Self::Logout,
        Self::RefreshReuse,
        Self::SessionRevoked,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::PasswordResetRequested,
        Self::EmailVerified,
        Self::AccountCreated,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::KeyRotated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::LoginDisabled => "login_disabled",
            Self::NewLogin => "new_login",
            Self::AccountLocked => "account_locked",
            Self::Logout => "logout",
            Self::RefreshReuse => "reuse_detected",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::EmailVerified => "email_verified",
            Self::AccountCreated => "account_created",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::KeyRotated => "key_rotated",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event. `detail` is a short machine word from a closed set chosen by the code that
/// records it (a logout scope, a revocation cause, a kid), never user input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub id: uuid::Uuid,
    pub at: Timestamp,
    pub kind: EventKind,
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    pub client: Option<ClientAddress>,
    pub user_agent: Option<UserAgent>,
    pub detail: Option<String>,
}

impl SecurityEvent {
    pub fn new(kind: EventKind, at: Timestamp) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            at,
            kind,
            user: None,
            session: None,
            client: None,
            user_agent: None,
            detail: None,
        }
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.user = Some(user);
        self
    }

    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    pub fn client(mut self, client: ClientAddress) -> Self {
        self.client = Some(client);
        self
    }

    pub fn user_agent(mut self, user_agent: Option<UserAgent>) -> Self {
        self.user_agent = user_agent;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// How a refresh ended, counted for the metrics (every refresh, not only the security events).
/// The names (`as_str`) are the `outcome` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshOutcome {
    /// A fresh successor was issued.
    Rotated,
    /// A replay within the grace window got the same successor again.
    Grace,
    /// A consumed token presented after the window: its session is revoked.
    Reused,
    Expired,
    /// Missing, malformed, never issued, forgotten or revoked.
    Unknown,
    /// The session's account is disabled or gone.
    AccountInactive,
    /// A store failed: nothing was rotated.
    Error,
}

impl RefreshOutcome {
    pub const ALL: [RefreshOutcome; 7] = [
        Self::Rotated,
        Self::Grace,
        Self::Reused,
        Self::Expired,
        Self::Unknown,
        Self::AccountInactive,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Grace => "grace",
            Self::Reused => "reused",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
            Self::AccountInactive => "account_inactive",
            Self::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_name_that_parses_back() {
        let mut names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert_eq!(EventKind::parse("LoginSucceeded"), None);
    }
}

//! Forgotten password: a reset link mailed to the account's address, and the reset it allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{
    ClientAddress, Email, EventKind, InfraError, Password, ResetToken, SecurityEvent, Timestamp,
    UserAgent,
};
use crate::ports::{
    Clock, Mailer, OutgoingMail, PasswordHasher, RefreshStore, ResetTokens, SecurityEvents,
    UserRepo,
};

/// Reset mails one address may be sent per hour.
pub const FORGOT_PER_EMAIL_PER_HOUR: u32 = 3;
/// Forgot requests one client may make per hour.
pub const FORGOT_PER_CLIENT_PER_HOUR: u32 = 20;
const HOUR: u64 = 3600;
/// Past this many counters, the expired ones are dropped (bounds the memory an attacker
/// spraying addresses can take).
const MAX_COUNTERS: usize = 100_000;

/// Fixed one-hour windows per key: the login throttle counts failures, not requests, and a
/// reset request has no failure; this is the simple rate the brief allows, in process only.
/// One instance counts every mail a request can trigger (reset links and verification
/// resends): an address gets at most `FORGOT_PER_EMAIL_PER_HOUR` of them an hour, whichever
/// kind is asked for.
#[derive(Default)]
pub struct MailRate {
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    map: HashMap<String, (u64, u32)>,
    /// The window whose expired counters were last dropped: at most one sweep per window, so a
    /// map kept full of current counters does not cost a full scan on every request.
    swept: Option<u64>,
    /// Sweeps made, for the tests.
    sweeps: u64,
}

impl MailRate {
    /// Counts a request of both keys unless either is over its limit (then counts nothing).
    /// With `MAX_COUNTERS` current counters held, a key not held yet is refused until the
    /// window turns: a spray of addresses can hold back new requests for the rest of the hour
    /// (nothing is sent, the answer is the same 202) but not grow the map or the work per request.
    pub(crate) fn admit(&self, email: &str, client: &str, now: u64) -> bool {
        let window = now / HOUR;
        let mut held = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let Counters { map, swept, sweeps } = &mut *held;
        if map.len() >= MAX_COUNTERS && *swept != Some(window) {
            map.retain(|_, (w, _)| *w == window);
            *swept = Some(window);
            *sweeps += 1;
        }
        let made = |map: &HashMap<String, (u64, u32)>, key: &str| {
            map.get(key)
                .filter(|(w, _)| *w == window)
                .map_or(0, |(_, n)| *n)
        };
        let (email_key, client_key) = (format!("e:{email}"), format!("c:{client}"));
        if made(map, &email_key) >= FORGOT_PER_EMAIL_PER_HOUR
            || made(map, &client_key) >= FORGOT_PER_CLIENT_PER_HOUR
        {
            return false;
        }
        let new_keys = [&email_key, &client_key]
            .iter()
            .filter(|k| !map.contains_key(k.as_str()))
            .count();
        if map.len() + new_keys > MAX_COUNTERS {
            return false;
        }
        for key in [email_key, client_key] {
            let entry = map.entry(key).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            entry.1 += 1;
        }
        true
    }
}

/// Where reset mail goes and what it says.
#[derive(Clone)]
pub struct ResetMail {
    pub mailer: Arc<dyn Mailer>,
    /// `PASSWORD_RESET_URL`: the token is appended as the fragment `#token=`, which browsers
    /// never send to a server (nor in a `Referer`).
    pub reset_url: String,
}

/// `POST /auth/password/forgot`. Answers the same whatever the address: the lookup, the token
/// and the mail all happen on a task of their own, after the answer.
pub struct ForgotPassword {
    pub users: Arc<dyn UserRepo>,
    pub tokens: Arc<dyn ResetTokens>,
    /// `None`: no mailer configured; requests are logged and nothing is sent.
    pub mail: Option<ResetMail>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn SecurityEvents>,
    pub expires_secs: u64,
    rate: Arc<MailRate>,
}

impl ForgotPassword {
    pub fn new(
        users: Arc<dyn UserRepo>,
        tokens: Arc<dyn ResetTokens>,
        mail: Option<ResetMail>,
        clock: Arc<dyn Clock>,
        events: Arc<dyn SecurityEvents>,
        expires_secs: u64,
    ) -> Self {
        Self {
            users,
            tokens,
            mail,
            clock,
            events,
            expires_secs,
            rate: Arc::default(),
        }
    }

    /// The rate this use case counts requests by, for the other mails a request can trigger.
    pub fn mail_rate(&self) -> Arc<MailRate> {
        self.rate.clone()
    }

    /// Never fails: whatever happens is logged (without the address or a token) and the
    /// caller answers 202 all the same. The returned handle is for tests to wait on; `None`
    /// when nothing was started (throttled, or no mailer).
    pub fn execute(
        &self,
        email: Email,
        client: ClientAddress,
        user_agent: Option<UserAgent>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let now = self.clock.now();
        if !self.rate.admit(email.as_str(), client.as_str(), now.unix()) {
            tracing::info!(
                event = "password_reset_throttled",
                client = %client,
                "password reset request throttled; nothing sent"
            );
            return None;
        }
        let Some(mail) = self.mail.clone() else {
            tracing::warn!(
                event = "password_reset_no_mailer",
                "password reset requested but no mailer is configured (SMTP_URL); nothing sent"
            );
            self.events.record(
                SecurityEvent::new(EventKind::PasswordResetRequested, now)
                    .client(client)
                    .user_agent(user_agent)
                    .detail("no_mailer"),
            );
            return None;
        };
        let job = Job {
            users: self.users.clone(),
            tokens: self.tokens.clone(),
            events: self.events.clone(),
            expires_at: Timestamp::from_unix(now.unix().saturating_add(self.expires_secs)),
            now,
            mail,
        };
        Some(tokio::spawn(job.run(email, client, user_agent)))
    }
}

struct Job {
    users: Arc<dyn UserRepo>,
    tokens: Arc<dyn ResetTokens>,
    events: Arc<dyn SecurityEvents>,
    mail: ResetMail,
    now: Timestamp,
    expires_at: Timestamp,
}

impl Job {
    async fn run(self, email: Email, client: ClientAddress, user_agent: Option<UserAgent>) {
        let event = SecurityEvent::new(EventKind::PasswordResetRequested, self.now)
            .client(client)
            .user_agent(user_agent);
        let user = match self.users.find_by_email(&email).await {
            Ok(Some(user)) if !user.disabled => user,
            Ok(_) => {
                // Unknown or disabled: no token, no mail.
                self.events.record(event.detail("no_account"));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "password reset: account lookup failed");
                return;
            }
        };
        let token = ResetToken::generate();
        if let Err(e) = self
            .tokens
            .issue(user.id, token.hash(), self.expires_at)
            .await
        {
            tracing::warn!(error = %e, user = %user.id, "password reset: token not stored");
            return;
        }
        let minutes = self.expires_at.unix().saturating_sub(self.now.unix()) / 60;
        let body = format!(
            "Someone asked to reset the password of this account.\n\n\
             To choose a new password, open this link within {minutes} minutes:\n\n\
             {}#token={}\n\n\
             The link works once. Using it signs out every session of the account.\n\
             If you did not ask for this, ignore this message: your password stays as it is.\n",
            self.mail.reset_url,
            token.as_str()
        );
        let sent = self
            .mail
            .mailer
            .send(OutgoingMail {
                to: user.email.clone(),
                subject: "Reset your password".into(),
                body,
            })
            .await;
        match sent {
            Ok(()) => tracing::info!(
                event = "password_reset_mailed",
                user = %user.id,
                "password reset link sent"
            ),
            Err(e) => tracing::warn!(user = %user.id, error = %e, "password reset mail not sent"),
        }
        self.events.record(event.user(user.id));
    }
}

/// Why a reset was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    /// Unknown, expired, used or voided by a newer one; or the account is gone or disabled.
    #[error("invalid reset token")]
    InvalidToken,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// `POST /auth/password/reset`: the mailed token sets a new password and ends every session.
pub struct ResetPassword {
    pub users: Arc<dyn UserRepo>,
    pub tokens: Arc<dyn ResetTokens>,
    pub sessions: Arc<dyn RefreshStore>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn SecurityEvents>,
}

impl ResetPassword {
    /// `new` is already checked against the registration rules (at the edge), so a bad
    /// password never consumes the token. The token is consumed before the (costly) hash, so
    /// a made-up token costs no hashing; if the hasher then fails the token is spent and the
    /// user asks for a new link.
    ///
    /// # Errors
    /// `InvalidToken` as above; `Infra` when a store or the hasher fails.
    pub async fn execute(
        &self,
        token: ResetToken,
        new: Password,
    ) -> Result<(), ResetPasswordError> {
        let now = self.clock.now();
        let Some(user_id) = self.tokens.consume(token.hash(), now).await? else {
            tracing::info!(
                event = "password_reset_refused",
                "unknown, used or expired reset token"
            );
            return Err(ResetPasswordError::InvalidToken);
        };
        let new_hash = self.hasher.hash(&new).await.map_err(InfraError::from)?;
        // The store changes the hash only if it is still the one read; a concurrent change
        // (a login rehash) is retried once against the fresh hash.
        for _ in 0..2 {
            let user = match self.users.find_by_id(user_id).await? {
                Some(user) if !user.disabled => user,
                _ => return Err(ResetPasswordError::InvalidToken),
            };
            if let Some(sessions_revoked) = self
                .sessions
                .change_password(user.id, &user.password_hash, &new_hash, None, now)
                .await?
            {
                tracing::info!(
                    event = "password_reset",
                    user = %user.id,
                    sessions_revoked,
                    "password reset; every session revoked"
                );
                // The link came through the account's mailbox: that proves the address as
                // well as a verification link would.
                // The password is reset by now: a store failure here is logged, not answered.
                if !user.email_verified {
                    match self.users.mark_email_verified(user.id).await {
                        Ok(_) => self.events.record(
                            SecurityEvent::new(EventKind::EmailVerified, now)
                                .user(user.id)
                                .detail("password_reset"),
                        ),
                        Err(e) => tracing::warn!(
                            error = %e,
                            user = %user.id,
                            "password reset: email not marked verified"
                        ),
                    }
                }
                self.events
                    .record(SecurityEvent::new(EventKind::PasswordReset, now).user(user.id));
                return Ok(());
            }
        }
        Err(ResetPasswordError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills the counters with distinct clients and addresses in one window.
    fn full(rate: &MailRate, now: u64) {
        for i in 0..MAX_COUNTERS / 2 {
            assert!(rate.admit(&format!("a{i}@x.test"), &format!("c{i}"), now));
        }
    }

    #[test]
    fn a_full_map_refuses_new_keys_until_the_window_turns_and_then_shrinks() {
        let rate = MailRate::default();
        let now = 10 * HOUR;
        full(&rate, now);
        assert!(
            !rate.admit("new@x.test", "new-client", now),
            "a new key past the cap"
        );
        assert!(
            rate.admit("a1@x.test", "c1", now + 1),
            "held keys still count"
        );
        let held = rate.counters.lock().unwrap();
        assert_eq!(held.map.len(), MAX_COUNTERS);
        assert_eq!(
            held.swept,
            Some(10),
            "swept once in this window, found nothing to drop"
        );
        drop(held);
        assert!(rate.admit("new@x.test", "new-client", now + HOUR));
        let held = rate.counters.lock().unwrap();
        assert_eq!(held.map.len(), 2, "the expired window was dropped");
        assert_eq!(held.swept, Some(11));
    }

    #[test]
    fn a_full_map_is_swept_at_most_once_per_window() {
        let rate = MailRate::default();
        let now = 10 * HOUR;
        full(&rate, now);
        for i in 0..1000 {
            assert!(!rate.admit(&format!("n{i}@x.test"), &format!("n{i}"), now));
        }
        assert_eq!(
            rate.counters.lock().unwrap().sweeps,
            1,
            "not a scan per refusal"
        );
    }
}

//! Email verification: a link mailed at sign-up (and on request), and the verification it
//! allows.

use std::sync::Arc;

use super::reset::MailRate;
use crate::domain::{
    ClientAddress, Email, EventKind, InfraError, ResetToken, SecurityEvent, Timestamp, User,
    UserAgent,
};
use crate::ports::{Clock, Mailer, OutgoingMail, ResetTokens, SecurityEvents, UserRepo};

/// Where verification mail goes and what it links to.
#[derive(Clone)]
pub struct VerifyMail {
    pub mailer: Arc<dyn Mailer>,
    /// `EMAIL_VERIFICATION_URL`: the token is appended as the fragment `#token=`, which
    /// browsers never send to a server (nor in a `Referer`).
    pub verify_url: String,
}

/// Why a verification was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// Unknown, expired, used or voided by a newer one; or the account is gone or disabled.
    #[error("invalid verification token")]
    InvalidToken,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Verification tokens are stored apart from reset tokens (`tokens` is another store of the
/// same shape), so a token of one purpose is never accepted as the other.
pub struct EmailVerification {
    pub users: Arc<dyn UserRepo>,
    pub tokens: Arc<dyn ResetTokens>,
    /// `None`: no mailer configured; nothing is sent (logged).
    pub mail: Option<VerifyMail>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn SecurityEvents>,
    pub expires_secs: u64,
    /// The forgot-password rate, shared: one address gets at most so many mails an hour.
    pub rate: Arc<MailRate>,
}

impl EmailVerification {
    /// After a sign-up from the network: mails a link to the new account, on a task of its
    /// own (the sign-up's answer neither waits for it nor depends on it). Counted by the mail
    /// rate like a resend, by address and by client: sign-ups of `victim+1@`, `victim+2@`, ...
    /// are distinct addresses of one mailbox, and the sign-up rate alone would let one client
    /// mail a stranger hundreds of times an hour. Past the rate no mail (a resend later can).
    pub fn mail_new_account(
        &self,
        user: &User,
        client: &ClientAddress,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.rate.admit(
            user.email.as_str(),
            client.as_str(),
            self.clock.now().unix(),
        ) {
            tracing::info!(
                event = "email_verification_throttled",
                user = %user.id,
                "verification mail after sign-up not sent: mail rate reached"
            );
            return None;
        }
        let job = self.job()?;
        let user = user.clone();
        Some(tokio::spawn(async move { job.send(&user).await }))
    }

    /// `POST /auth/verify-email/resend`. Answers the same whatever the address: the lookup,
    /// the token and the mail happen on a task of their own, and only an existing, enabled,
    /// unverified account gets a mail. The handle is for tests; `None` when nothing started.
    pub fn resend(
        &self,
        email: Email,
        client: ClientAddress,
        user_agent: Option<UserAgent>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let now = self.clock.now();
        if !self.rate.admit(email.as_str(), client.as_str(), now.unix()) {
            tracing::info!(
                event = "email_verification_throttled",
                client = %client,
                "verification resend throttled; nothing sent"
            );
            return None;
        }
        let job = self.job()?;
        Some(tokio::spawn(async move {
            let user = match job.users.find_by_email(&email).await {
                Ok(Some(user)) if !user.disabled && !user.email_verified => user,
                Ok(_) => {
                    tracing::info!(
                        event = "email_verification_not_sent",
                        client = %client,
                        user_agent = user_agent.as_ref().map(UserAgent::as_str),
                        "verification resend for no unverified account; nothing sent"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "verification resend: account lookup failed");
                    return;
                }
            };
            job.send(&user).await;
        }))
    }

    fn job(&self) -> Option<Job> {
        let Some(mail) = self.mail.clone() else {
            tracing::warn!(
                event = "email_verification_no_mailer",
                "email verification mail not sent: no mailer is configured (SMTP_URL)"
            );
            return None;
        };
        let now = self.clock.now();
        Some(Job {
            users: self.users.clone(),
            tokens: self.tokens.clone(),
            mail,
            now,
            expires_at: Timestamp::from_unix(now.unix().saturating_add(self.expires_secs)),
        })
    }

    /// `POST /auth/verify-email`: the mailed token marks its account verified.
    ///
    /// # Errors
    /// `InvalidToken` as above; `Infra` when a store fails.
    pub async fn verify(&self, token: ResetToken) -> Result<(), VerifyEmailError> {
        let now = self.clock.now();
        let Some(user_id) = self.tokens.consume(token.hash(), now).await? else {
            tracing::info!(
                event = "email_verification_refused",
                "unknown, used or expired verification token"
            );
            return Err(VerifyEmailError::InvalidToken);
        };
        match self.users.find_by_id(user_id).await? {
            Some(user) if !user.disabled => {}
            _ => return Err(VerifyEmailError::InvalidToken),
        }
        if !self.users.mark_email_verified(user_id).await? {
            return Err(VerifyEmailError::InvalidToken);
        }
        tracing::info!(event = "email_verified", user = %user_id, "email verified");
        self.events
            .record(SecurityEvent::new(EventKind::EmailVerified, now).user(user_id));
        Ok(())
    }
}

struct Job {
    users: Arc<dyn UserRepo>,
    tokens: Arc<dyn ResetTokens>,
    mail: VerifyMail,
    now: Timestamp,
    expires_at: Timestamp,
}

impl Job {
    /// A new token (voiding the account's older one) and the mail carrying it.
    async fn send(&self, user: &User) {
        let token = ResetToken::generate();
        if let Err(e) = self
            .tokens
            .issue(user.id, token.hash(), self.expires_at)
            .await
        {
            tracing::warn!(error = %e, user = %user.id, "email verification: token not stored");
            return;
        }
        let hours = self.expires_at.unix().saturating_sub(self.now.unix()) / 3600;
        let body = format!(
            "Please confirm that this address belongs to your account.\n\n\
             Open this link within {hours} hours:\n\n\
             {}#token={}\n\n\
             The link works once; a newer one replaces it.\n\
             If you did not create an account, do not open the link: someone else used this \
             address. To take the account over, ask for a password reset with this address.\n",
            self.mail.verify_url,
            token.as_str()
        );
        let sent = self
            .mail
            .mailer
            .send(OutgoingMail {
                to: user.email.clone(),
                subject: "Confirm your email address".into(),
                body,
            })
            .await;
        match sent {
            Ok(()) => tracing::info!(
                event = "email_verification_mailed",
                user = %user.id,
                "verification link sent"
            ),
            Err(e) => {
                tracing::warn!(user = %user.id, error = %e, "verification mail not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::ports::{MockResetTokens, MockUserRepo, NoSecurityEvents};

    fn build(users: MockUserRepo, tokens: MockResetTokens) -> EmailVerification {
        EmailVerification {
            users: Arc::new(users),
            tokens: Arc::new(tokens),
            mail: None,
            clock: Arc::new(clock_at(NOW)),
            events: Arc::new(NoSecurityEvents),
            expires_secs: 48 * 3600,
            rate: Arc::default(),
        }
    }

    #[tokio::test]
    async fn an_unknown_token_reads_and_marks_no_account() {
        let mut tokens = MockResetTokens::new();
        tokens.expect_consume().return_once(|_, _| Ok(None));
        let mut users = MockUserRepo::new();
        users.expect_find_by_id().never();
        users.expect_mark_email_verified().never();
        let got = build(users, tokens).verify(ResetToken::generate()).await;
        assert!(matches!(got, Err(VerifyEmailError::InvalidToken)));
    }

    #[tokio::test]
    async fn a_disabled_accounts_token_is_spent_and_marks_nothing() {
        let account = user(true);
        let id = account.id;
        let mut tokens = MockResetTokens::new();
        tokens
            .expect_consume()
            .return_once(move |_, _| Ok(Some(id)));
        let mut users = MockUserRepo::new();
        users
            .expect_find_by_id()
            .return_once(move |_| Ok(Some(account)));
        users.expect_mark_email_verified().never();
        let got = build(users, tokens).verify(ResetToken::generate()).await;
        assert!(matches!(got, Err(VerifyEmailError::InvalidToken)));
    }

    #[tokio::test]
    async fn a_store_failure_is_infra_not_a_refusal() {
        let mut tokens = MockResetTokens::new();
        tokens.expect_consume().return_once(|_, _| Err(down()));
        let got = build(MockUserRepo::new(), tokens)
            .verify(ResetToken::generate())
            .await;
        assert!(matches!(
            got,
            Err(VerifyEmailError::Infra(InfraError::Unavailable(_)))
        ));
    }

    #[tokio::test]
    async fn without_a_mailer_nothing_is_started() {
        let v = build(MockUserRepo::new(), MockResetTokens::new());
        assert!(v
            .mail_new_account(&user(false), &ClientAddress::unknown())
            .is_none());
        assert!(v
            .resend(
                Email::parse("a@example.com").unwrap(),
                ClientAddress::unknown(),
                None
            )
            .is_none());
    }
}

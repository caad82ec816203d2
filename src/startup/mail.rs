//! The mailer the settings select, and the password-reset use cases' wiring.

use std::path::Path;
use std::sync::Arc;

use super::Adapters;
use crate::adapters::outbound::mail::{parse_from, FolderOutbox, SmtpMailer};
use crate::app::{
    EmailVerification, ForgotPassword, MailRate, ResetMail, ResetPassword, VerifyMail,
};
use crate::config::{Secret, Settings};
use crate::ports::{Mailer, ResetTokens};

/// `SMTP_URL`, or `MAIL_OUTBOX_DIR` in `dev`; `None` without either (the configuration has
/// checked that `MAIL_FROM` and `PASSWORD_RESET_URL` come with them). Inside the Tokio runtime.
///
/// # Errors
/// When the URL, the sender or the folder is unusable (never the URL itself).
pub fn mailer(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Mailer>>> {
    let from = || parse_from(settings.mail_from.as_deref().unwrap_or_default());
    if let Some(url) = settings.smtp_url.as_ref().map(Secret::expose) {
        return Ok(Some(Arc::new(SmtpMailer::new(url.trim(), from()?)?)));
    }
    if let Some(dir) = settings.mail_outbox_dir.as_deref() {
        return Ok(Some(Arc::new(FolderOutbox::new(Path::new(dir), from()?)?)));
    }
    Ok(None)
}

impl Adapters {
    /// Reset tokens kept in `tokens` (the database's) rather than in process memory.
    #[must_use]
    pub fn with_reset_tokens(mut self, tokens: Arc<dyn ResetTokens>) -> Self {
        self.reset_tokens = tokens;
        self
    }

    /// Verification tokens kept in `tokens` (the database's) rather than in process memory.
    #[must_use]
    pub fn with_verification_tokens(mut self, tokens: Arc<dyn ResetTokens>) -> Self {
        self.verification_tokens = tokens;
        self
    }
}

pub(super) fn forgot_password(settings: &Settings, a: &Adapters) -> ForgotPassword {
    let mail = match (&a.mailer, &settings.password_reset_url) {
        (Some(mailer), Some(url)) => Some(ResetMail {
            mailer: mailer.clone(),
            reset_url: url.trim().to_owned(),
        }),
        _ => None,
    };
    ForgotPassword::new(
        a.users.clone(),
        a.reset_tokens.clone(),
        mail,
        a.clock.clone(),
        a.events.clone(),
        settings.password_reset_expires_min * 60,
    )
}

pub(super) fn reset_password(a: &Adapters) -> ResetPassword {
    ResetPassword {
        users: a.users.clone(),
        tokens: a.reset_tokens.clone(),
        sessions: a.sessions.clone(),
        hasher: a.hasher.clone(),
        clock: a.clock.clone(),
        events: a.events.clone(),
    }
}

/// Sharing `rate` with the forgot-password requests: one address gets so many mails an hour
/// in all.
pub(super) fn email_verification(
    settings: &Settings,
    a: &Adapters,
    rate: Arc<MailRate>,
) -> EmailVerification {
    let mail = match (&a.mailer, &settings.email_verification_url) {
        (Some(mailer), Some(url)) => Some(VerifyMail {
            mailer: mailer.clone(),
            verify_url: url.trim().to_owned(),
        }),
        _ => None,
    };
    EmailVerification {
        users: a.users.clone(),
        tokens: a.verification_tokens.clone(),
        mail,
        clock: a.clock.clone(),
        events: a.events.clone(),
        expires_secs: settings.email_verification_expires_hours * 3600,
        rate,
    }
}

//! Sending mail: the port the account-lifecycle use cases (password reset) send through.

use std::fmt;

use async_trait::async_trait;

use crate::domain::Email;

/// One plain-text message to one address. The body carries a credential (a reset link), so
/// `Debug` shows neither it nor the address.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: Email,
    pub subject: String,
    pub body: String,
}

impl fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The message was not handed over. The text is for logs: it never holds the message.
#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {0}")]
pub struct MailError(pub String);

/// Hands messages to whatever delivers them (an SMTP server, a folder in `dev`).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// # Errors
    /// `MailError` when the message could not be handed over; nothing is retried here.
    async fn send(&self, mail: OutgoingMail) -> Result<(), MailError>;
}

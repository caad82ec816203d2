//! `Mailer` adapters: SMTP through `lettre`, and for `dev` only a folder outbox. Neither ever
//! logs a message body: a reset link is a credential.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::ports::{MailError, Mailer, OutgoingMail};

fn message(from: &Mailbox, mail: &OutgoingMail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .as_str()
        .parse()
        .map_err(|_| MailError("the recipient is not a mailbox".into()))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| MailError(format!("message not built: {e}")))
}

/// Parses `MAIL_FROM` (`name@example.com` or `Name <name@example.com>`).
///
/// # Errors
/// When it is not a mailbox.
pub fn parse_from(raw: &str) -> anyhow::Result<Mailbox> {
    raw.parse()
        .map_err(|_| anyhow::anyhow!("MAIL_FROM is not a mail address"))
}

/// SMTP: `SMTP_URL` as `lettre` reads it: `smtps://host:465` (TLS from the start),
/// `smtp://host:587?tls=required` (STARTTLS), or plain `smtp://host:25` for a local relay;
/// credentials in the URL's user info.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Inside the Tokio runtime only: the pooled transport closes its connections on a task.
    ///
    /// # Errors
    /// When the URL is not an SMTP URL `lettre` understands (the message never repeats the
    /// URL, which may hold a password).
    pub fn new(smtp_url: &str, from: Mailbox) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|_| {
                anyhow::anyhow!("SMTP_URL is not a usable smtp:// or smtps:// URL (see the README)")
            })?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let message = message(&self.from, &mail)?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| MailError(describe(&e)))
    }
}

/// An SMTP failure by its kind and reply code only: the server's reply text often quotes the
/// recipient's address, which must not reach the log.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_tls() {
        "TLS"
    } else if e.is_permanent() {
        "permanent"
    } else if e.is_transient() {
        "transient"
    } else if e.is_client() {
        "client"
    } else {
        "connection"
    };
    match e.status() {
        Some(code) => format!("SMTP {kind} error, reply code {code}"),
        None => format!("SMTP {kind} error"),
    }
}

/// `dev` only: each message becomes an `.eml` file in `MAIL_OUTBOX_DIR`, readable by its owner
/// only, for a developer (or a test) to open. Refused under `prod` by the configuration.
pub struct FolderOutbox {
    dir: PathBuf,
    from: Mailbox,
}

impl FolderOutbox {
    /// # Errors
    /// When the folder cannot be created.
    pub fn new(dir: &Path, from: Mailbox) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("MAIL_OUTBOX_DIR cannot be created: {e}"))?;
        Ok(Self {
            dir: dir.to_owned(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for FolderOutbox {
    async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let bytes = message(&self.from, &mail)?.formatted();
        let path = self.dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
        tokio::task::spawn_blocking(move || write_private(&path, &bytes))
            .await
            .map_err(|e| MailError(format!("outbox: {e}")))?
            .map_err(|e| MailError(format!("outbox: {e}")))
    }
}

/// Creates the file new (never follows or overwrites one), mode 0600 on Unix.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            to: Email::parse("reader@example.com").unwrap(),
            subject: "Reset your password".into(),
            body: "https://app.example/reset#token=canary-token".into(),
        }
    }

    #[tokio::test]
    async fn the_outbox_writes_one_private_file_per_message() {
        let dir = std::env::temp_dir().join(format!("outbox-{}", uuid::Uuid::new_v4()));
        let outbox =
            FolderOutbox::new(&dir, parse_from("Service <no-reply@example.com>").unwrap()).unwrap();
        outbox.send(mail()).await.unwrap();
        outbox.send(mail()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(text.contains("To: reader@example.com"), "{text}");
        assert!(text.contains("Subject: Reset your password"), "{text}");
        assert!(text.contains("canary-token"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = files[0].metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_message_never_shows_its_body_or_address_in_debug() {
        let debug = format!("{:?}", mail());
        assert!(
            !debug.contains("canary") && !debug.contains("reader@"),
            "{debug}"
        );
    }

    // The pooled transport lives on the runtime (its pool is closed by a task when dropped).
    #[tokio::test]
    async fn bad_settings_are_refused_without_echoing_them() {
        assert!(parse_from("not an address").is_err());
        let err = SmtpMailer::new(
            "http://user:hunter2@example.com",
            parse_from("a@example.com").unwrap(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(SmtpMailer::new(
            "smtp://127.0.0.1:2525",
            parse_from("a@example.com").unwrap()
        )
        .is_ok());
        assert!(SmtpMailer::new(
            "smtps://u:p@smtp.example.com:465",
            parse_from("a@example.com").unwrap()
        )
        .is_ok());
    }

    /// A server that refuses the recipient quotes the address in its reply; the error keeps
    /// only the kind and the code.
    #[tokio::test]
    async fn a_refused_recipient_is_reported_without_the_servers_reply_text() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] = match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                    Some("EHLO") => b"250 sink\r\n",
                    Some("MAIL") => b"250 ok\r\n",
                    Some("RCPT") => b"550 5.1.1 <reader@example.com>: no such user\r\n",
                    Some("QUIT") => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                if write.write_all(reply).await.is_err() {
                    break;
                }
            }
        });
        let mailer = SmtpMailer::new(
            &format!("smtp://127.0.0.1:{port}"),
            parse_from("no-reply@example.com").unwrap(),
        )
        .unwrap();
        let e = mailer.send(mail()).await.unwrap_err();
        assert!(e.0.contains("permanent") && e.0.contains("550"), "{}", e.0);
        assert!(!e.0.contains("reader@"), "{}", e.0);
    }
}

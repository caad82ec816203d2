//! The SMTP `Mailer` against a real SMTP server (Python's `aiosmtpd`, from PyPI), started by
//! the test on a local port. Ignored by default; `.ci/run` installs `aiosmtpd` and runs it by
//! name.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jwt_auth::adapters::outbound::mail::{parse_from, SmtpMailer};
use jwt_auth::domain::Email;
use jwt_auth::ports::{Mailer, OutgoingMail};

/// Writes every message it receives to `OUT`, one file per message.
pub const SINK: &str = r#"
import sys, time, pathlib
from aiosmtpd.controller import Controller
port, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
class Keep:
    async def handle_DATA(self, server, session, envelope):
        n = len(list(out.iterdir()))
        (out / f"{n}.eml").write_bytes(envelope.content)
        (out / f"{n}.rcpt").write_text(",".join(envelope.rcpt_tos))
        return "250 OK"
c = Controller(Keep(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
time.sleep(60)
"#;

/// `SINK` on a free local port, writing to a fresh folder; started and listening.
pub struct SmtpSink {
    pub port: u16,
    pub out: PathBuf,
    child: Child,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = std::env::temp_dir().join(format!("smtp-sink-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&out).unwrap();
        let child = Command::new("python3")
            .args(["-c", SINK, &port.to_string(), out.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd");
        // Wait for the server to listen.
        let mut up = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "the SMTP sink did not start");
        Self { port, out, child }
    }

    /// Stops the server and removes its folder.
    pub fn stop(mut self) -> std::io::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.out)
    }
}

#[tokio::test]
#[ignore = "needs Python's aiosmtpd; .ci/run runs it by name"]
async fn the_smtp_mailer_delivers_to_a_real_smtp_server() {
    let sink = SmtpSink::start().await;
    let (port, out) = (sink.port, sink.out.clone());
    let mailer = SmtpMailer::new(
        &format!("smtp://127.0.0.1:{port}"),
        parse_from("jwt-auth <no-reply@example.com>").unwrap(),
    )
    .unwrap();
    mailer
        .send(OutgoingMail {
            to: Email::parse("reader@example.com").unwrap(),
            subject: "Reset your password".into(),
            body: "Open https://app.example/reset#token=canary-token-123".into(),
        })
        .await
        .expect("delivered");
    let text = std::fs::read_to_string(out.join("0.eml")).expect("the sink kept the message");
    let rcpt = std::fs::read_to_string(out.join("0.rcpt")).unwrap();
    sink.stop().unwrap();
    assert_eq!(rcpt, "reader@example.com");
    assert!(
        text.contains("From: jwt-auth <no-reply@example.com>"),
        "{text}"
    );
    assert!(text.contains("Subject: Reset your password"), "{text}");
    assert!(text.contains("canary-token-123"), "{text}");
}

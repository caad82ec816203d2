//! Graceful shutdown: SIGTERM lets an in-flight request finish, then the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TEST_SECRET;

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Cost 12 makes a login take a good fraction of a second (far more in a debug build):
    // long enough to be in flight at the signal.
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-auth"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("BCRYPT_COST", "12")
        .env("JWT_SECRET_KEY", TEST_SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    while !rx.try_iter().any(|l| l.contains("server started")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let login = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/auth/login"))
            .json(&serde_json::json!({ "email": "jywan@test.com", "password": "test" }))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SAFETY: kill only reads its integer arguments; the pid is our own child's.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let resp = login
        .await
        .unwrap()
        .expect("the in-flight login got an answer");
    assert_eq!(resp.status(), 200, "the in-flight login completed");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("shutting down")), "{logs:?}");
}

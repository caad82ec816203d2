//! Graceful shutdown: SIGTERM lets an in-flight request finish, then the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{DEMO_EMAIL, DEMO_PASSWORD, TEST_SECRET};

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Cost 13: a login takes a noticeable time (about half a second; bcrypt is optimized even
    // in test builds), well under the 10 s grace period, so one can be caught in flight.
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-auth"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("BCRYPT_COST", "13")
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
    let login = move || {
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/auth/login"))
                .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
                .send()
                .await
        }
    };
    // How long one login takes on this build and machine, to signal early in the next one:
    // a third of the way in, and never later than 50 ms (a loaded machine can make the first
    // login slow and the second quick; cost 13 keeps any login hashing far longer).
    let timed = Instant::now();
    assert_eq!(login().await.unwrap().status(), 200);
    let one_login = timed.elapsed();
    let login = tokio::spawn(login());
    tokio::time::sleep((one_login / 3).min(Duration::from_millis(50))).await;
    assert!(
        !login.is_finished(),
        "the login must still be in flight when the signal arrives"
    );
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

#[test]
fn a_bad_setting_stops_the_binary_with_one_line_naming_the_key() {
    for (key, value) in [
        ("JWT_ALGORITHM", "RS512"),
        ("ACCESS_TOKEN_EXPIRES_MIN", "soon"),
        ("ENV", "prod"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_jwt-auth"))
            .env_clear()
            .env(key, value)
            .env("PORT", "0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = if key == "ENV" { "JWT_SECRET_KEY" } else { key };
        assert!(stderr.contains(named), "{key}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The binary's first log lines on stderr (not a terminal) with these settings.
fn first_log_lines(extra: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jwt-auth"));
    cmd.env_clear()
        .env("PORT", "0")
        .env("BCRYPT_COST", "4")
        .env("JWT_SECRET_KEY", TEST_SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let started = line.contains("server started");
        lines.push(line);
        if started {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!lines.is_empty(), "the binary logged nothing");
    lines
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    for line in first_log_lines(&[]) {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
    }
}

#[test]
fn log_format_json_writes_one_json_object_a_line() {
    for line in first_log_lines(&[("LOG_FORMAT", "json")]) {
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["fields"].is_object(), "{line}");
    }
}

//! Slow clients over a real socket: unfinished headers and bodies that never arrive are cut
//! off after a bounded time, and idle connections up to the cap do not stop the service.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use jwt_auth::config::Settings;
use jwt_auth::startup::{Adapters, Application};

use crate::helpers::TEST_SECRET;

/// A served app (real socket) with these overrides; its port.
pub async fn serve(
    overrides: &[(&str, &str)],
) -> (u16, tokio::task::JoinHandle<std::io::Result<()>>) {
    let mut pairs = vec![
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ];
    pairs.extend_from_slice(overrides);
    let settings = Settings::from_pairs(&pairs).unwrap();
    let adapters = Adapters::in_memory(&settings).unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let port = app.port();
    (port, tokio::spawn(app.run_until_stopped()))
}

/// Everything the server sends until it closes, or `None` if it is still open after `limit`.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut all = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&all).into_owned())
}

#[tokio::test]
async fn unfinished_headers_are_cut_off_after_the_header_timeout() {
    let (port, server) = serve(&[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half.write_all(b"GET /health/live HT").await.unwrap();
    // A trickle of bytes does not keep the connection either: it is a deadline, not idleness.
    let mut trickle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    trickle
        .write_all(b"GET /health/live HTTP/1.1\r\n")
        .await
        .unwrap();
    let dripping = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if trickle.write_all(b"x-a: b\r\n").await.is_err() {
                return true;
            }
        }
        false
    });
    let started = Instant::now();
    let closed = read_until_closed(&mut half, Duration::from_secs(4)).await;
    assert!(
        closed.is_some(),
        "the half request line was still open after 4 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert!(
        dripping.await.unwrap(),
        "a client trickling header lines was still being read after 4 s"
    );
    // An idle keep-alive connection is closed the same way; the server keeps serving.
    let live = reqwest::get(format!("http://127.0.0.1:{port}/health/live"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    server.abort();
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_after_the_body_timeout() {
    let (port, server) = serve(&[("BODY_READ_TIMEOUT_SECS", "1")]).await;
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\"",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(4))
        .await
        .expect("an answer and a close within the timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
    server.abort();
}

#[tokio::test]
async fn idle_connections_up_to_the_cap_do_not_stop_the_service() {
    let (port, server) =
        serve(&[("MAX_CONNECTIONS", "8"), ("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // Twice the cap: the ones beyond it wait in the backlog, then are cut off in turn.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let started = Instant::now();
    let live = tokio::time::timeout(
        Duration::from_secs(8),
        reqwest::get(format!("http://127.0.0.1:{port}/health/live")),
    )
    .await
    .expect("a fresh client is served within a few header timeouts")
    .unwrap();
    assert_eq!(live.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(8));
    for stream in &mut idle {
        assert!(
            read_until_closed(stream, Duration::from_secs(8))
                .await
                .is_some(),
            "every idle connection is closed in the end"
        );
    }
    let again = reqwest::get(format!("http://127.0.0.1:{port}/health/live"))
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "still serving");
    server.abort();
}

#[tokio::test]
async fn beyond_max_connections_new_connections_wait_for_a_free_slot() {
    let (port, server) =
        serve(&[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT_SECS", "30")]).await;
    let first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let url = format!("http://127.0.0.1:{port}/health/live");
    let fresh = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fresh.is_finished(),
        "a third connection is not served at a cap of two"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), fresh)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    server.abort();
}

/// A client that asks for large answers and never reads them (its receive window full) must
/// not keep its connection slot: a write that makes no progress for `SEND_TIMEOUT_SECS`
/// closes the connection, and the service keeps serving newcomers.
#[tokio::test]
async fn clients_that_never_read_lose_their_slot_after_the_send_timeout() {
    let (port, server) = serve(&[
        ("MAX_CONNECTIONS", "2"),
        ("SEND_TIMEOUT_SECS", "1"),
        ("HEADER_READ_TIMEOUT_SECS", "30"),
    ])
    .await;
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let mut hog = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        // Pipelined: far more answer bytes than any socket buffer holds.
        let ask = "GET /docs/ HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(64);
        hog.write_all(ask.as_bytes()).await.unwrap();
        hogs.push(hog);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("http://127.0.0.1:{port}/health/live");
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), reqwest::get(url))
        .await
        .expect("served once the stalled writers are cut off")
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(hogs);
    server.abort();
}

/// Without a trusted proxy, one address may hold at most `MAX_CONNECTIONS_PER_CLIENT`
/// connections; one more is closed at once, and the others are unaffected.
#[tokio::test]
async fn one_address_cannot_take_every_connection_slot() {
    let (port, server) = serve(&[
        ("MAX_CONNECTIONS_PER_CLIENT", "2"),
        ("HEADER_READ_TIMEOUT_SECS", "30"),
    ])
    .await;
    let _a = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _b = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut third = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(
        read_until_closed(&mut third, Duration::from_secs(3)).await,
        Some(String::new()),
        "closed at once, nothing sent"
    );
    drop(_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = reqwest::get(format!("http://127.0.0.1:{port}/health/live"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "a freed slot serves the address again");
    server.abort();
}

//! `GET /revocations/stream` over a real socket: a logout is pushed to an open stream within
//! a bound (on every store; from another instance on the databases), a reconnect resumes from
//! `Last-Event-ID`, the caps refuse the stream one too many with the contract's JSON, and a
//! shutdown is not held up by open streams.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jwt_auth::adapters::inbound::http::{build_app, MAX_ENTRIES};
use jwt_auth::domain::FeedPosition;
use poem::EndpointExt;

use crate::helpers::{
    payload_of, spawn_app_from, spawn_app_with, spawn_second_instance, Store, Stores, TestApp,
    TEST_SECRET,
};
use crate::revocations::revoke_in_one_second;

/// Serves `app`'s state on a loopback socket (the in-process client cannot stream).
pub(crate) async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let endpoint = build_app(app.state.clone()).map_to_response();
    let server = poem::Server::new(poem::listener::TcpListener::bind(format!(
        "127.0.0.1:{port}"
    )));
    tokio::spawn(server.run(endpoint));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/health/live")).await.is_ok() {
            return base;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the test server did not start");
}

/// An open event stream, read event by event.
struct Sse {
    resp: reqwest::Response,
    buf: String,
    /// The service closed the stream (rather than nothing coming in time).
    ended: bool,
}

impl Sse {
    async fn open(base: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = reqwest::Client::new().get(format!("{base}/revocations/stream"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn start(base: &str, headers: &[(&str, &str)]) -> Self {
        let resp = Self::open(base, headers).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            resp,
            buf: String::new(),
            ended: false,
        }
    }

    /// The next event's `id` and `data` (comments skipped); `None` when the stream ends or
    /// nothing comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(u64, serde_json::Value)> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse().expect("a numeric id"));
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("JSON data"));
                    }
                }
                match (id, data) {
                    (Some(id), Some(data)) => return Some((id, data)),
                    (None, None) => continue, // a heartbeat comment
                    other => panic!("an event without id or data: {other:?}"),
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(_) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Reads events until one names `sid`; how long that took.
    async fn wait_for(&mut self, sid: &str, wait: Duration) -> (Duration, u64, serde_json::Value) {
        let start = Instant::now();
        while let Some((id, data)) = self.next(wait.saturating_sub(start.elapsed())).await {
            if data["sid"] == sid {
                return (start.elapsed(), id, data);
            }
        }
        panic!("{sid} not pushed within {wait:?}");
    }
}

async fn login(app: &TestApp) -> (String, String) {
    let resp = app.login_demo().await;
    let sid = payload_of(&resp.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    (sid, resp.refresh_cookie().unwrap())
}

async fn a_logout_is_pushed_to_an_open_stream(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let base = serve(&app).await;
    let mut stream = Sse::start(&base, &[]).await;
    let (sid, cookie) = login(&app).await;
    assert_eq!(app.logout(Some(&cookie)).await.status, 204);
    let (delay, id, entry) = stream.wait_for(&sid, Duration::from_secs(2)).await;
    println!("{store:?}: logout -> pushed after {delay:?}");
    // Woken by this instance's own logout: no poll interval to wait for.
    assert!(delay < Duration::from_millis(500), "{delay:?}");
    let revoked_at = entry["revoked_at"].as_u64().unwrap();
    assert_eq!(
        entry["until"].as_u64().unwrap(),
        revoked_at + app.state.settings.revocation_window_secs
    );
    assert_eq!(
        entry.as_object().unwrap().len(),
        3,
        "the feed's entry: {entry}"
    );
    assert!(id <= revoked_at, "the id resumes at or before the entry");

    // A reconnect from the last id gets the entry again (entries are idempotent), and so
    // does `since`; `Last-Event-ID` wins over `since`.
    let last = id.to_string();
    let mut again = Sse::start(&base, &[("last-event-id", &last)]).await;
    again.wait_for(&sid, Duration::from_secs(2)).await;
    let far = format!("{base}/revocations/stream?since={}", revoked_at + 3600);
    let resp = reqwest::Client::new()
        .get(&far)
        .header("last-event-id", &last)
        .send()
        .await
        .unwrap();
    let mut resumed = Sse {
        resp,
        buf: String::new(),
        ended: false,
    };
    resumed.wait_for(&sid, Duration::from_secs(2)).await;
}

/// Reads a stream until it ends or is silent for a second: the (id, sid) of each event.
async fn drain(stream: &mut Sse) -> Vec<(u64, String)> {
    let mut events = Vec::new();
    while let Some((id, data)) = stream.next(Duration::from_secs(1)).await {
        events.push((id, data["sid"].as_str().unwrap().to_owned()));
    }
    events
}

/// Reconnects from the last id (as an `EventSource` does) until a stream stays open; every
/// sid pushed, and how many connections it took.
async fn resume_until_live(base: &str, mut last: Option<u64>) -> (HashSet<String>, usize) {
    let mut sids = HashSet::new();
    for connections in 1..=20 {
        let id = last.map(|l| l.to_string());
        let headers: Vec<(&str, &str)> = id.iter().map(|i| ("last-event-id", i.as_str())).collect();
        let mut stream = Sse::start(base, &headers).await;
        let events = drain(&mut stream).await;
        assert!(
            events
                .windows(2)
                .all(|w| FeedPosition::from_cursor(w[0].0) <= FeedPosition::from_cursor(w[1].0)),
            "ids never step back within a stream"
        );
        if let Some((id, _)) = events.last() {
            last = Some(*id);
        }
        sids.extend(events.into_iter().map(|(_, sid)| sid));
        if !stream.ended {
            return (sids, connections);
        }
    }
    panic!("the stream never went live");
}

/// A second fuller than a replay page: each full replay ends the stream with ids that are
/// positions inside the second, so reconnecting from the last one goes on where it stopped
/// (a plain-seconds id would replay the same page for ever).
async fn a_flooded_second_is_replayed_across_reconnects(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let (_, revoked) = revoke_in_one_second(&app, 2 * MAX_ENTRIES + 5).await;
    let base = serve(&app).await;
    let (sids, connections) = resume_until_live(&base, None).await;
    assert_eq!(connections, 3, "two full pages, then the rest and live");
    let missed = revoked.difference(&sids).count();
    assert_eq!(missed, 0, "of {}", revoked.len());
}

/// A reader that stops reading during a flood falls more than the lag limit behind: its
/// stream ends, and reconnecting from its last id replays what it missed from the store, in
/// pages, without missing anything.
async fn a_lagged_reader_reconnects_and_misses_nothing(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let base = serve(&app).await;
    let mut stalled = Sse::start(&base, &[]).await;
    assert!(stalled.next(Duration::from_millis(300)).await.is_none());
    // More than the socket buffers hold, so the server-side reader really falls behind.
    let (_, revoked) = revoke_in_one_second(&app, 6 * MAX_ENTRIES).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let events = drain(&mut stalled).await;
    assert!(stalled.ended, "a lagging stream is closed, not queued");
    assert!(
        events.len() < revoked.len(),
        "it ended before the flood was through: {}",
        events.len()
    );
    let last = events.last().map(|(id, _)| *id);
    let mut sids: HashSet<String> = events.into_iter().map(|(_, sid)| sid).collect();
    let (more, connections) = resume_until_live(&base, last).await;
    sids.extend(more);
    println!("{store:?}: a lagged reader caught up in {connections} reconnections");
    let missed = revoked.difference(&sids).count();
    assert_eq!(missed, 0, "of {}", revoked.len());
}

on_every_store!(
    a_logout_is_pushed_to_an_open_stream,
    a_flooded_second_is_replayed_across_reconnects,
    a_lagged_reader_reconnects_and_misses_nothing
);
/// A second instance on the same database revokes; the first one's stream pushes it.
mod instances {
    use super::*;

    async fn another_instances_revocation_is_pushed(store: Store) {
        let Some(stores) = Stores::new(store).await else {
            return;
        };
        let first = spawn_app_from(stores, &[]).await;
        let second = spawn_second_instance(&first, &[]).await;
        let base = serve(&first).await;
        let mut stream = Sse::start(&base, &[]).await;
        let (sid, cookie) = login(&second).await;
        assert_eq!(second.logout(Some(&cookie)).await.status, 204);
        let (delay, _, _) = stream.wait_for(&sid, Duration::from_secs(3)).await;
        println!("{store:?}: logout on another instance -> pushed after {delay:?}");
        // One shared poll interval (250 ms) plus the query.
        assert!(delay < Duration::from_secs(1), "{delay:?}");
    }

    on_databases!(another_instances_revocation_is_pushed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_process_cap_refuses_one_stream_too_many_with_503_json() {
    // The service's own server loop: how soon a closed stream is noticed depends on it.
    let settings = jwt_auth::config::Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("REVOCATION_STREAM_MAX", "2"),
    ])
    .unwrap();
    let adapters = jwt_auth::startup::Adapters::in_memory(&settings).unwrap();
    let service = jwt_auth::startup::Application::build(&settings, &adapters)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", service.port());
    let server = tokio::spawn(service.run_until_stopped());
    let a = Sse::start(&base, &[]).await;
    let _b = Sse::start(&base, &[]).await;
    let resp = Sse::open(&base, &[]).await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
    // A closed stream gives its slot back.
    drop(a);
    let start = Instant::now();
    loop {
        let resp = Sse::open(&base, &[]).await;
        if resp.status() == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the slot of a closed stream did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("slot back after {:?}", start.elapsed());
    server.abort();
}

/// One site's /64s (an IPv6 /56) share a cap: rotating through them does not take every
/// stream of the process (256 by default; 256 /64s with 8 each would be 2048).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_64s_of_one_ipv6_56_cannot_take_every_stream() {
    use jwt_auth::adapters::inbound::http::STREAMS_PER_SITE;
    let app = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "X-Forwarded-For")]).await;
    let base = serve(&app).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for sub in 0..256 {
        let ip = format!("2001:db8:7:{:x}::1", 0x4500 + sub);
        let resp = Sse::open(&base, &[("x-forwarded-for", ip.as_str())]).await;
        match resp.status().as_u16() {
            200 => open.push(resp),
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    assert_eq!(open.len(), STREAMS_PER_SITE);
    assert_eq!(refused, 256 - STREAMS_PER_SITE);
    let other = Sse::open(&base, &[("x-forwarded-for", "2001:db8:7:4600::1")]).await;
    assert_eq!(other.status(), 200, "another /56 still gets one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_opening_a_thousand_streams_gets_eight() {
    let app = spawn_app_with(&[]).await;
    let base = serve(&app).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..1000 {
        let resp = Sse::open(&base, &[]).await;
        match resp.status().as_u16() {
            200 => open.push(resp),
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["error"], "too_many_requests");
                refused += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!(open.len(), 8);
    assert_eq!(refused, 992);
    assert_eq!(app.state.revocation_stream.open_streams(), 8);
}

#[tokio::test]
async fn a_bad_cursor_is_a_400_json_error() {
    let app = spawn_app_with(&[]).await;
    for (path, header) in [
        ("/revocations/stream?since=-1", None),
        ("/revocations/stream?since=abc", None),
        ("/revocations/stream?since=9007199254740992", None),
        ("/revocations/stream", Some("abc")),
        ("/revocations/stream", Some("-5")),
    ] {
        let mut req = app.request(poem::http::Method::GET, path);
        if let Some(h) = header {
            req = req.header("last-event-id", h);
        }
        req.send().await.assert_error(400, "invalid_request");
    }
}

/// SIGTERM with a stream open: the stream ends and the process exits well inside the 10 s
/// grace period the stream would otherwise hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_streams_promptly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-auth"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("BCRYPT_COST", "4")
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
        assert!(started.elapsed() < Duration::from_secs(60), "no start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(Sse::start(&base, &[]).await);
    }
    // SAFETY: kill only reads its integer arguments; the pid is our own child's.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let signalled = Instant::now();
    for s in &mut streams {
        assert!(s.next(Duration::from_secs(5)).await.is_none());
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
}

//! Security-event webhooks against a real receiver over HTTP: a hyper server in the test that
//! checks every signature with its own implementation of the Standard Webhooks scheme (and,
//! in one test, with the Python reference library), is taken down and brought back, answers
//! errors, hangs, redirects or floods. Nothing may be lost; duplicates carry the same id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame};
use jwt_auth::adapters::inbound::cli;
use jwt_auth::adapters::outbound::db::Database;
use jwt_auth::adapters::outbound::webhooks::{
    InMemoryWebhookOutbox, WebhookConfig, WebhookTasks, Webhooks,
};
use jwt_auth::config::Settings;
use jwt_auth::domain::{ClientAddress, EventKind, SecurityEvent, SessionId, Timestamp, UserId};
use jwt_auth::ports::{OutboxEntry, OutboxStats, SecurityEvents, WebhookOutbox};
use serde_json::Value;
use sha2::Sha256;

use crate::db::{test_pool, TestDb};
use crate::helpers::Store;

/// A strong secret in the Standard Webhooks format.
const SECRET: &str = "whsec_q4T9nW2x7LcVb8ZrKp3YhJ6sDf1GmE0uQaXoNiRtBwk=";

fn key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap()
}

/// What the receiver answers.
#[derive(Clone, Debug)]
enum Mode {
    Ok,
    Status(u16),
    /// Never answers: the worker's timeout must end the attempt.
    Hang,
    /// A redirect elsewhere: it must not be followed.
    Redirect(String),
    /// 200 with a body that never ends: it must not be read.
    Flood,
}

#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// Whether the signature verified (by the receiver's own implementation).
    valid: bool,
}

/// A webhook receiver on a fixed port that can be taken down and brought back.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Delivery>>>,
    mode: Arc<Mutex<Mode>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Receiver {
    async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Arc::new(Self {
            port,
            got: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            server: Mutex::new(None),
        });
        receiver.serve(listener);
        receiver
    }

    fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/hooks?token=canary-query-token",
            self.port
        )
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (got, mode) = (self.got.clone(), self.mode.clone());
        let task = tokio::spawn(async move {
            // Dropped with the task: taking the server down closes every open connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (got, mode) = (got.clone(), mode.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (got, mode) = (got.clone(), mode.clone());
                        async move { Ok::<_, Infallible>(answer(req, &got, &mode).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Closes the port and every connection: the receiver is down.
    async fn down(&self) {
        let task = self.server.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the receiver's port is free again");
        self.serve(listener);
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Each distinct id once, in arrival order, after checking that every copy of an id
    /// carries the same body and every signature verified.
    fn distinct(&self) -> Vec<Delivery> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for d in self.deliveries() {
            assert!(d.valid, "a delivery whose signature does not verify: {d:?}");
            match seen.get(&d.id) {
                Some(body) => assert_eq!(body, &d.body, "a duplicate id with another body"),
                None => {
                    seen.insert(d.id.clone(), d.body.clone());
                    out.push(d);
                }
            }
        }
        out
    }

    async fn wait_for(&self, distinct: usize, within: Duration) {
        let start = Instant::now();
        while self.distinct().len() < distinct {
            assert!(
                start.elapsed() < within,
                "{} of {distinct} events arrived within {within:?}",
                self.distinct().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Res = hyper::Response<BoxBody<Bytes, Infallible>>;

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    got: &Mutex<Vec<Delivery>>,
    mode: &Mutex<Mode>,
) -> Res {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let json = header("content-type") == "application/json";
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body = String::from_utf8(body.unwrap_or_default().to_vec()).unwrap_or_default();
    let valid = json && verify(&key(), &id, &timestamp, &body, &signature);
    got.lock().unwrap().push(Delivery {
        id,
        timestamp,
        signature,
        body,
        valid,
    });
    let mode = mode.lock().unwrap().clone();
    let full = |status: u16| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"ok")).boxed())
            .unwrap()
    };
    match mode {
        Mode::Ok => full(200),
        Mode::Status(s) => full(s),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full(200)
        }
        Mode::Redirect(to) => hyper::Response::builder()
            .status(307)
            .header("location", to)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        Mode::Flood => hyper::Response::builder()
            .status(200)
            .body(Endless.boxed())
            .unwrap(),
    }
}

/// A response body that never ends.
struct Endless;

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

/// The receiver's check, written from the Standard Webhooks specification: the signed
/// content is `id.timestamp.body`, any `v1,` signature in the space-separated list may
/// match, and the timestamp must be within five minutes of now.
fn verify(key: &[u8], id: &str, timestamp: &str, body: &str, signatures: &str) -> bool {
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts) > 300 || id.is_empty() {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    signatures.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

/// Webhook settings as the service reads them, for `url`, with fast retries.
fn config(url: &str, overrides: &[(&str, &str)]) -> WebhookConfig {
    let mut pairs = vec![
        ("WEBHOOK_URL", url),
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_TIMEOUT_SECS", "2"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
        ("WEBHOOK_RETRY_MAX_SECS", "1"),
        ("WEBHOOK_MAX_ATTEMPTS", "100"),
    ];
    pairs.extend_from_slice(overrides);
    let settings = Settings::from_pairs(&pairs).expect("webhook settings");
    WebhookConfig {
        url: url.to_owned(),
        key: settings.webhook_key().unwrap(),
        kinds: settings.webhook_kinds().unwrap(),
        timeout: Duration::from_secs(settings.webhook_timeout_secs),
        max_attempts: settings.webhook_max_attempts,
        max_age: Duration::from_secs(settings.webhook_max_age_hours * 3600),
        retry_base: Duration::from_millis(settings.webhook_retry_base_ms),
        retry_max: Duration::from_secs(settings.webhook_retry_max_secs),
        dead_retention: Duration::from_secs(settings.webhook_dead_retention_days * 86_400),
    }
}

fn reuse_event(n: u64) -> SecurityEvent {
    SecurityEvent::new(
        EventKind::RefreshReuse,
        Timestamp::from_unix(1_800_000_000 + n),
    )
    .user(UserId::from_uuid(uuid::Uuid::new_v4()))
    .session(SessionId::from_uuid(uuid::Uuid::new_v4()))
    .client(ClientAddress::from_ip("203.0.113.7".parse().unwrap()))
    .detail("reuse")
}

/// An outbox of this kind, and what keeps its database alive.
async fn outbox(store: Store) -> Option<(Arc<dyn WebhookOutbox>, Option<TestDb>)> {
    if store == Store::Memory {
        return Some((Arc::new(InMemoryWebhookOutbox::new()), None));
    }
    let db = TestDb::new(store).await?;
    Some((db.db.webhook_outbox(), Some(db)))
}

fn started(config: WebhookConfig, outbox: Arc<dyn WebhookOutbox>) -> (Arc<Webhooks>, WebhookTasks) {
    let webhooks = Webhooks::new(config, outbox);
    let tasks = webhooks.start().expect("webhook tasks start");
    (webhooks, tasks)
}

async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_delivery_is_signed_and_shaped_as_documented() {
    let receiver = Receiver::start().await;
    let (webhooks, _tasks) = started(
        config(&receiver.url(), &[]),
        Arc::new(InMemoryWebhookOutbox::new()),
    );
    let event = reuse_event(0);
    // Not in the default selection: never sent.
    webhooks.sink.record(SecurityEvent::new(
        EventKind::LoginFailed,
        Timestamp::from_unix(1_800_000_000),
    ));
    webhooks.sink.record(event.clone());
    receiver.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1, "only the selected kind is sent: {got:?}");
    let d = &got[0];
    assert!(d.valid, "the signature verifies");
    assert!(d.signature.starts_with("v1,"));
    assert_eq!(d.id, event.id.to_string());
    let body: Value = serde_json::from_str(&d.body).unwrap();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["data", "id", "timestamp", "type"]);
    assert_eq!(body["id"], event.id.to_string());
    assert_eq!(body["type"], "reuse_detected");
    assert_eq!(body["timestamp"], "2027-01-15T08:00:00Z");
    assert_eq!(body["data"]["user_id"], event.user.unwrap().to_string());
    assert_eq!(
        body["data"]["session_id"],
        event.session.unwrap().to_string()
    );
    assert_eq!(body["data"]["detail"], "reuse");
    // A signature over another body or id does not verify.
    assert!(!verify(&key(), &d.id, &d.timestamp, "{}", &d.signature));
    assert!(!verify(
        &key(),
        "other",
        &d.timestamp,
        &d.body,
        &d.signature
    ));
    assert_eq!(webhooks.stats().await.unwrap().pending, 0);
    wait_until(
        "the delivery is counted",
        Duration::from_secs(10),
        async || webhooks.delivered() == 1,
    )
    .await;
}

/// Events recorded before, during and after an outage of minutes (here: seconds, with fast
/// retries), with the receiver refusing connections and then answering 503: all arrive.
async fn an_outage_mid_stream_loses_nothing(store: Store) {
    let Some((outbox, _db)) = outbox(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (webhooks, _tasks) = started(config(&receiver.url(), &[]), outbox);
    let mut ids = Vec::new();
    for n in 0..20 {
        let e = reuse_event(n);
        ids.push(e.id.to_string());
        webhooks.sink.record(e);
    }
    receiver.wait_for(10, Duration::from_secs(20)).await;
    receiver.down().await;
    for n in 20..40 {
        let e = reuse_event(n);
        ids.push(e.id.to_string());
        webhooks.sink.record(e);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    receiver.set(Mode::Status(503));
    receiver.up().await;
    for n in 40..50 {
        let e = reuse_event(n);
        ids.push(e.id.to_string());
        webhooks.sink.record(e);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        webhooks.stats().await.unwrap().pending > 0,
        "the receiver failed meanwhile"
    );
    receiver.set(Mode::Ok);
    receiver.wait_for(50, Duration::from_secs(30)).await;
    let mut got: Vec<_> = receiver.distinct().into_iter().map(|d| d.id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every event arrived, no other");
    wait_until("the outbox empties", Duration::from_secs(10), async || {
        webhooks.stats().await.unwrap().pending == 0
    })
    .await;
    assert_eq!(webhooks.stats().await.unwrap().dead, 0);
}

/// The queue outlives the process: what one instance wrote while the receiver was down, a
/// new instance on the same database delivers.
async fn a_restart_on_the_database_keeps_the_queue(store: Store) {
    let Some((outbox, Some(db))) = outbox(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.down().await;
    let (first, tasks) = started(config(&receiver.url(), &[]), outbox);
    let mut ids = Vec::new();
    for n in 0..20 {
        let e = reuse_event(n);
        ids.push(e.id.to_string());
        first.sink.record(e);
    }
    wait_until(
        "the events are in the outbox",
        Duration::from_secs(10),
        async || first.stats().await.unwrap().pending == 20,
    )
    .await;
    // The crash: its tasks stop wherever they are (entries it held come back when their
    // lease ends, two timeouts and 5 s), its pool is gone.
    tasks.abort();
    drop(first);
    receiver.up().await;
    let reopened = Database::connect(&db.url, test_pool()).await.unwrap();
    let (second, _tasks) = started(config(&receiver.url(), &[]), reopened.webhook_outbox());
    receiver.wait_for(20, Duration::from_secs(30)).await;
    let mut got: Vec<_> = receiver.distinct().into_iter().map(|d| d.id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    wait_until("the outbox empties", Duration::from_secs(10), async || {
        second.stats().await.unwrap().pending == 0
    })
    .await;
}

/// Two instances on one database share the work: every event once, none twice.
async fn two_instances_send_each_event_once(store: Store) {
    let Some((outbox, Some(db))) = outbox(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.down().await;
    let other = Database::connect(&db.url, test_pool()).await.unwrap();
    let (a, _ta) = started(config(&receiver.url(), &[]), outbox);
    let (b, _tb) = started(config(&receiver.url(), &[]), other.webhook_outbox());
    for n in 0..100 {
        let sink = if n % 2 == 0 { &a.sink } else { &b.sink };
        sink.record(reuse_event(n));
    }
    wait_until(
        "the events are in the outbox",
        Duration::from_secs(10),
        async || a.stats().await.unwrap().pending == 100,
    )
    .await;
    // Both workers find the backlog at once when the receiver comes back.
    receiver.up().await;
    receiver.wait_for(100, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = receiver.deliveries().len();
    assert_eq!(receiver.distinct().len(), 100);
    // The receiver was down for the first attempts, which never reached it; from then on
    // each event is sent once.
    assert_eq!(all, 100, "no event sent twice");
    // Each worker counts a delivery once its row is gone, which on a loaded machine may
    // trail the receiver's answer.
    wait_until(
        "every delivery is counted",
        Duration::from_secs(10),
        async || a.delivered() + b.delivered() >= 100,
    )
    .await;
    // Which instance claims a batch is up to timing: on SQLite (one writer at a time) one of
    // them may take every batch, so only the sum is asserted; `all` above is the once-only
    // property, with both instances polling the same outbox throughout.
    assert_eq!(a.delivered() + b.delivered(), 100);
}

/// Attempts run out: the event is dead-lettered, counted, and kept for the operator.
async fn exhausted_attempts_are_dead_lettered(store: Store) {
    let Some((outbox, _db)) = outbox(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.set(Mode::Status(500));
    let (webhooks, _tasks) = started(
        config(&receiver.url(), &[("WEBHOOK_MAX_ATTEMPTS", "3")]),
        outbox,
    );
    webhooks.sink.record(reuse_event(0));
    // The worker marks the row, then counts: wait for both, so a loaded machine cannot
    // read the row between the two.
    wait_until("the event is dead", Duration::from_secs(20), async || {
        webhooks.stats().await.unwrap().dead == 1 && webhooks.dead_lettered() == 1
    })
    .await;
    assert_eq!(webhooks.stats().await.unwrap().pending, 0);
    assert_eq!(webhooks.dead_lettered(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.deliveries().len(),
        3,
        "exactly the allowed attempts"
    );
    // The operator sees it, fixes the receiver and sends it again.
    let status = cli::webhooks_status(webhooks.outbox.as_ref())
        .await
        .unwrap();
    assert_eq!(status, "pending: 0\ndead-lettered: 1");
    receiver.set(Mode::Ok);
    let out = cli::webhooks_retry_dead(webhooks.outbox.as_ref())
        .await
        .unwrap();
    assert_eq!(out, "1 dead-lettered event(s) queued again");
    wait_until("the outbox empties", Duration::from_secs(10), async || {
        webhooks.stats().await.unwrap() == OutboxStats::default()
    })
    .await;
    wait_until(
        "the delivery is counted",
        Duration::from_secs(10),
        async || webhooks.delivered() == 1,
    )
    .await;
    assert_eq!(receiver.deliveries().len(), 4);
}

fn entry(created_at: u64) -> OutboxEntry {
    OutboxEntry {
        id: uuid::Uuid::new_v4(),
        kind: "reuse_detected".into(),
        body: "{}".into(),
        created_at,
        attempts: 0,
    }
}

/// Dead letters past their retention are deleted; pending entries never are.
async fn dead_letters_past_their_retention_are_purged(store: Store) {
    let Some((outbox, _db)) = outbox(store).await else {
        return;
    };
    let (old, recent, pending) = (entry(1_000), entry(2_000), entry(3_000));
    outbox
        .enqueue(&[old.clone(), recent.clone(), pending.clone()])
        .await
        .unwrap();
    let claim = uuid::Uuid::new_v4();
    assert_eq!(
        outbox.claim(claim, 4_000, 60_000, 10).await.unwrap().len(),
        3
    );
    outbox
        .dead_letter(old.id, claim, 5_000, "500")
        .await
        .unwrap();
    outbox
        .dead_letter(recent.id, claim, 9_000, "500")
        .await
        .unwrap();
    outbox.retry(pending.id, claim, None, "").await.unwrap();
    assert_eq!(outbox.purge_dead(5_000).await.unwrap(), 0, "not before");
    assert_eq!(outbox.purge_dead(8_000).await.unwrap(), 1);
    assert_eq!(
        outbox.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            dead: 1
        }
    );
    assert_eq!(outbox.purge_dead(u64::MAX / 4).await.unwrap(), 1);
    assert_eq!(
        outbox.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            dead: 0
        },
        "a pending entry is never purged"
    );
}

/// The delivery worker purges at start (and hourly) what is past `WEBHOOK_DEAD_RETENTION_DAYS`.
async fn the_worker_purges_dead_letters_past_the_retention(store: Store) {
    let Some((outbox, _db)) = outbox(store).await else {
        return;
    };
    let now = jwt_auth::adapters::outbound::webhooks::now_ms();
    let day = 86_400_000;
    let (stale, fresh) = (entry(now - 3 * day), entry(now - 3 * day));
    outbox
        .enqueue(&[stale.clone(), fresh.clone()])
        .await
        .unwrap();
    let claim = uuid::Uuid::new_v4();
    outbox.claim(claim, now, 60_000, 10).await.unwrap();
    outbox
        .dead_letter(stale.id, claim, now - 2 * day, "500")
        .await
        .unwrap();
    outbox
        .dead_letter(fresh.id, claim, now - day / 2, "500")
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let (webhooks, _tasks) = started(
        config(&receiver.url(), &[("WEBHOOK_DEAD_RETENTION_DAYS", "1")]),
        outbox,
    );
    wait_until(
        "the stale dead letter is purged",
        Duration::from_secs(10),
        async || {
            webhooks.stats().await.unwrap()
                == OutboxStats {
                    pending: 0,
                    dead: 1,
                }
        },
    )
    .await;
    assert!(
        receiver.deliveries().is_empty(),
        "a dead letter is not sent"
    );
}

mod every_store {
    use super::*;
    on_every_store!(
        an_outage_mid_stream_loses_nothing,
        exhausted_attempts_are_dead_lettered,
        dead_letters_past_their_retention_are_purged,
        the_worker_purges_dead_letters_past_the_retention
    );
}

mod databases {
    use super::*;
    on_databases!(
        a_restart_on_the_database_keeps_the_queue,
        two_instances_send_each_event_once,
        a_crash_mid_delivery_hands_the_event_on_after_the_lease
    );
}

mod ages {
    use super::*;
    on_every_store!(events_past_their_age_are_dead_lettered_at_the_next_failure);
}

/// An instance that dies while its request is in flight: another instance sends the event
/// once the lease has run out, not before (no double send while the lease holds).
async fn a_crash_mid_delivery_hands_the_event_on_after_the_lease(store: Store) {
    let Some((outbox, Some(db))) = outbox(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.set(Mode::Hang);
    let cfg = config(&receiver.url(), &[("WEBHOOK_TIMEOUT_SECS", "1")]);
    let (first, tasks) = started(cfg.clone(), outbox);
    first.sink.record(reuse_event(0));
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let crashed_at = Instant::now();
    tasks.abort();
    receiver.set(Mode::Ok);
    let other = Database::connect(&db.url, test_pool()).await.unwrap();
    let (second, _tasks) = started(cfg, other.webhook_outbox());
    wait_until(
        "the second instance delivers",
        Duration::from_secs(20),
        async || second.delivered() == 1,
    )
    .await;
    // The lease is two timeouts and 5 s from the claim.
    assert!(
        crashed_at.elapsed() >= Duration::from_secs(5),
        "sent again while the crashed instance's lease held: {:?}",
        crashed_at.elapsed()
    );
    assert_eq!(
        receiver.deliveries().len(),
        2,
        "the hung attempt and the delivery"
    );
    assert_eq!(receiver.distinct().len(), 1);
    assert_eq!(second.stats().await.unwrap().pending, 0);
}

/// The age bound: an event queued longer than `WEBHOOK_MAX_AGE_HOURS` ago is given up on at
/// its next failure, whatever attempts it has left.
async fn events_past_their_age_are_dead_lettered_at_the_next_failure(store: Store) {
    let Some((outbox, _db)) = outbox(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.set(Mode::Status(502));
    let two_hours_ago = jwt_auth::adapters::outbound::webhooks::now_ms() - 2 * 3600 * 1000;
    let event = reuse_event(0);
    outbox
        .enqueue(&[jwt_auth::ports::OutboxEntry {
            id: event.id,
            kind: "reuse_detected".into(),
            body: jwt_auth::adapters::outbound::webhooks::payload(&event),
            created_at: two_hours_ago,
            attempts: 0,
        }])
        .await
        .unwrap();
    let (webhooks, _tasks) = started(
        config(&receiver.url(), &[("WEBHOOK_MAX_AGE_HOURS", "1")]),
        outbox,
    );
    wait_until(
        "the old event is dead",
        Duration::from_secs(10),
        async || webhooks.stats().await.unwrap().dead == 1,
    )
    .await;
    assert_eq!(receiver.deliveries().len(), 1, "one attempt, then given up");
}

/// A receiver that hangs, floods or redirects costs the worker one timeout, a few bytes
/// and nothing: the next events still go out, and a redirect is never followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receivers_cannot_hang_flood_or_redirect_the_worker() {
    let receiver = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    receiver.set(Mode::Hang);
    let (webhooks, _tasks) = started(
        config(&receiver.url(), &[("WEBHOOK_TIMEOUT_SECS", "1")]),
        Arc::new(InMemoryWebhookOutbox::new()),
    );
    webhooks.sink.record(reuse_event(0));
    wait_until(
        "a hung attempt times out",
        Duration::from_secs(10),
        async || receiver.deliveries().len() >= 2,
    )
    .await;
    assert_eq!(webhooks.delivered(), 0);

    receiver.set(Mode::Redirect(elsewhere.url()));
    let seen = receiver.deliveries().len();
    wait_until(
        "redirects are retried here",
        Duration::from_secs(10),
        async || receiver.deliveries().len() >= seen + 2,
    )
    .await;
    assert!(elsewhere.deliveries().is_empty(), "a redirect was followed");
    assert_eq!(webhooks.delivered(), 0);

    // An endless 2xx body: delivered at once, the body not read beyond a few KiB.
    receiver.set(Mode::Flood);
    let start = Instant::now();
    wait_until(
        "the flooding receiver got it",
        Duration::from_secs(10),
        async || webhooks.delivered() == 1,
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    receiver.set(Mode::Ok);
    webhooks.sink.record(reuse_event(1));
    receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(elsewhere.deliveries().is_empty());
}

/// The Python reference library of Standard Webhooks accepts what the service sends. Ignored
/// by `cargo test`, which needs nothing installed; `.ci/run` installs the package and runs it
/// by name (and fails unless it passed).
#[tokio::test]
#[ignore = "needs python3 with the standardwebhooks package; .ci/run runs it"]
async fn the_standard_webhooks_reference_library_verifies_deliveries() {
    let receiver = Receiver::start().await;
    let (webhooks, _tasks) = started(
        config(&receiver.url(), &[]),
        Arc::new(InMemoryWebhookOutbox::new()),
    );
    for n in 0..3 {
        webhooks.sink.record(reuse_event(n));
    }
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let deliveries: Vec<Value> = receiver
        .distinct()
        .iter()
        .map(|d| {
            serde_json::json!({
                "headers": {
                    "webhook-id": d.id,
                    "webhook-timestamp": d.timestamp,
                    "webhook-signature": d.signature,
                },
                "body": d.body,
            })
        })
        .collect();
    let mut tampered = deliveries[0].clone();
    tampered["body"] = Value::from(
        deliveries[0]["body"]
            .as_str()
            .unwrap()
            .replace("reuse", "x"),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_webhooks.py");
    let run = |items: &[Value]| {
        let out = std::process::Command::new("python3")
            .arg(script)
            .env("WEBHOOK_SECRET", SECRET)
            .arg(serde_json::to_string(items).unwrap())
            .output()
            .expect("python3 runs (CI installs it with the standardwebhooks package)");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("ModuleNotFoundError"),
            "the standardwebhooks package is missing: `pip install standardwebhooks` ({stderr})"
        );
        (out.status.success(), stderr)
    };
    let (ok, stderr) = run(&deliveries);
    assert!(ok, "the reference library refused a delivery: {stderr}");
    let (ok, _) = run(&[tampered]);
    assert!(!ok, "the reference library accepted a tampered body");
}

/// The composition root sends what the use cases report: `WEBHOOK_URL` set, an event
/// recorded on the app's own sink arrives; other instances' kinds filter as configured.
async fn the_app_sends_what_its_use_cases_report(store: Store) {
    let Some(stores) = crate::db::Stores::new(store).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let app = crate::helpers::spawn_app_from(
        stores,
        &[
            ("WEBHOOK_URL", &url),
            ("WEBHOOK_SECRET", SECRET),
            ("WEBHOOK_EVENTS", "reuse_detected, account_disabled"),
            ("WEBHOOK_RETRY_BASE_MS", "50"),
        ],
    )
    .await;
    let webhooks = app.adapters.webhooks.clone().expect("webhooks are wired");
    let tasks = webhooks.start().unwrap();
    app.adapters.events.record(reuse_event(0));
    app.adapters.events.record(SecurityEvent::new(
        EventKind::AccountDisabled,
        Timestamp::from_unix(1_800_000_000),
    ));
    app.adapters.events.record(SecurityEvent::new(
        EventKind::NewLogin,
        Timestamp::from_unix(1_800_000_000),
    ));
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let mut types: Vec<String> = receiver
        .distinct()
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(&d.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["account_disabled", "reuse_detected"]);
    // The worker deletes a row after the receiver's answer: wait for that before the stop.
    wait_until(
        "the delivered rows are gone",
        Duration::from_secs(10),
        async || webhooks.stats().await.unwrap().pending == 0,
    )
    .await;
    // A graceful stop writes what is still queued, for the next start to deliver.
    receiver.down().await;
    app.adapters.events.record(reuse_event(1));
    webhooks.stop(tasks).await;
    assert_eq!(webhooks.stats().await.unwrap().pending, 1);
}

mod app {
    use super::*;
    on_every_store!(the_app_sends_what_its_use_cases_report);
}

/// An `https://` receiver gets TLS (rustls, with the ring provider): a listener that is not a
/// TLS server sees a ClientHello, never the event in clear, and the event is kept for retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_urls_speak_tls_and_never_send_the_event_in_clear() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/hooks",
        listener.local_addr().unwrap().port()
    );
    let (webhooks, _tasks) = started(config(&url, &[]), Arc::new(InMemoryWebhookOutbox::new()));
    webhooks.sink.record(reuse_event(0));
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the worker connects")
        .unwrap();
    let mut first = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 5, "{n} bytes");
    assert_eq!(first[0], 0x16, "a TLS handshake record");
    assert_eq!(first[1], 0x03, "TLS");
    let text = String::from_utf8_lossy(&first[..n]);
    assert!(!text.contains("POST") && !text.contains("reuse_detected"));
    drop(stream);
    drop(listener);
    wait_until(
        "the attempt failed and was kept",
        Duration::from_secs(10),
        async || webhooks.stats().await.unwrap().pending == 1,
    )
    .await;
    assert_eq!(webhooks.delivered(), 0);
}

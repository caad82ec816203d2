//! Security-event webhooks: a `SecurityEvents` sink that keeps the selected kinds in an outbox,
//! and a worker that POSTs them, signed in the Standard Webhooks style, until the receiver
//! answers 2xx (at-least-once; receivers de-duplicate on `webhook-id`, the event id).
//!
//! `record` never waits: it hands the event to a bounded queue that a writer task appends to
//! the outbox (a full queue drops the event and counts it). The worker claims due entries
//! under a lease, so instances on one database do not send the same entry at once and an
//! instance that dies frees its entries when the lease ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, Notify};

use crate::domain::{EventKind, SecurityEvent};
use crate::ports::{OutboxEntry, OutboxStats, SecurityEvents, StoreError, WebhookOutbox};

/// Events waiting for the outbox writer; beyond this `record` drops and counts.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Entries one worker claims at a time.
const CLAIM_BATCH: usize = 16;
/// Bytes of a response body read at most (only to let the connection finish cleanly).
const MAX_RESPONSE_BYTES: usize = 4 * 1024;
/// The longest the worker waits before looking at the outbox again (other instances add to it).
const MAX_POLL: Duration = Duration::from_secs(1);

/// How often dead letters past `WEBHOOK_DEAD_RETENTION_DAYS` are deleted (and at start).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How deliveries are made and retried.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// The signing key (the decoded `whsec_` secret).
    pub key: Vec<u8>,
    pub kinds: HashSet<EventKind>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Dead letters older than this are deleted.
    pub dead_retention: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor the URL (it may carry a token in its query).
        f.debug_struct("WebhookConfig")
            .field("kinds", &self.kinds)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// The `webhook-signature` value for one delivery: `v1,` and the base64 HMAC-SHA256 of
/// `id.timestamp.body` (Standard Webhooks).
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The JSON body of an event: `{"id","type","timestamp","data":{...}}`.
pub fn payload(event: &SecurityEvent) -> String {
    serde_json::json!({
        "id": event.id.to_string(),
        "type": event.kind.as_str(),
        "timestamp": rfc3339(event.at.unix()),
        "data": {
            "user_id": event.user.map(|u| u.to_string()),
            "session_id": event.session.map(|s| s.to_string()),
            "client": event.client.as_ref().map(|c| c.as_str().to_owned()),
            "user_agent": event.user_agent.as_ref().map(|u| u.as_str().to_owned()),
            "detail": event.detail,
        },
    })
    .to_string()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil-from-days; a date crate for
/// this one format would be a new dependency).
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix milliseconds of the system clock: the worker's schedule is real time, whatever clock
/// the use cases run on.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The wait before retry number `attempt` (1 for the first retry): `base * 2^(attempt-1)`
/// capped at `max`, then a random point in its upper half, so receivers coming back are
/// not hit by every instance at once.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(30))
        .min(max);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let fraction = f64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]])) / f64::from(u32::MAX);
    exp.mul_f64(0.5 + fraction / 2.0)
}

/// The sink the use cases report to: keeps the configured kinds, drops the rest.
pub struct WebhookSink {
    kinds: HashSet<EventKind>,
    tx: mpsc::Sender<OutboxEntry>,
    dropped: AtomicU64,
}

impl WebhookSink {
    /// Events dropped because the writer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl SecurityEvents for WebhookSink {
    fn record(&self, event: SecurityEvent) {
        if !self.kinds.contains(&event.kind) {
            return;
        }
        let entry = OutboxEntry {
            id: event.id,
            kind: event.kind.as_str().to_owned(),
            body: payload(&event),
            created_at: now_ms(),
            attempts: 0,
        };
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                event = "webhook_dropped",
                id = %event.id,
                "webhook queue full: event not kept for delivery"
            );
        }
    }
}

/// The webhook machinery of one instance: its sink, the outbox, and (once started) the writer
/// and delivery tasks.
pub struct Webhooks {
    pub sink: Arc<WebhookSink>,
    pub outbox: Arc<dyn WebhookOutbox>,
    config: WebhookConfig,
    rx: tokio::sync::Mutex<mpsc::Receiver<OutboxEntry>>,
    wake: Arc<Notify>,
    delivered: AtomicU64,
    dead: AtomicU64,
    closing: AtomicBool,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The running tasks; aborting them is what a crash does to them.
pub struct WebhookTasks {
    writer: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
}

impl WebhookTasks {
    pub fn abort(&self) {
        self.writer.abort();
        self.worker.abort();
    }
}

impl Webhooks {
    pub fn new(config: WebhookConfig, outbox: Arc<dyn WebhookOutbox>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Arc::new(Self {
            sink: Arc::new(WebhookSink {
                kinds: config.kinds.clone(),
                tx,
                dropped: AtomicU64::new(0),
            }),
            outbox,
            config,
            rx: tokio::sync::Mutex::new(rx),
            wake: Arc::new(Notify::new()),
            delivered: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        })
    }

    /// Deliveries answered 2xx by this instance.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Entries this instance gave up on (the outbox's `stats` counts every instance's).
    pub fn dead_lettered(&self) -> u64 {
        self.dead.load(Ordering::Relaxed)
    }

    /// What the outbox holds.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.outbox.stats().await
    }

    /// Writes every queued event to the outbox now (at shutdown, and for commands that do
    /// not run the writer).
    ///
    /// # Errors
    /// When the store fails; the events not written are then still queued.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut rx = self.rx.lock().await;
        let mut batch = Vec::new();
        while let Ok(entry) = rx.try_recv() {
            batch.push(entry);
        }
        self.write(&batch).await
    }

    async fn write(&self, batch: &[OutboxEntry]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.outbox.enqueue(batch).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Starts the outbox writer and the delivery worker.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn start(self: &Arc<Self>) -> anyhow::Result<WebhookTasks> {
        let client = reqwest::Client::builder()
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout)
            // A redirect is an answer that is not 2xx: the event is retried at this URL,
            // never sent where the receiver points.
            .redirect(reqwest::redirect::Policy::none())
            // Deliveries go where WEBHOOK_URL says, not through an ambient HTTP(S)_PROXY.
            .no_proxy()
            .user_agent(concat!("jwt-auth-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let writer = tokio::spawn(self.clone().write_loop());
        let worker = tokio::spawn(self.clone().deliver_loop(client));
        Ok(WebhookTasks { writer, worker })
    }

    /// Stops the worker, lets the writer finish the batch in its hands (up to 5 s: a store
    /// that is down then loses it, said in the log) and writes what is still queued.
    pub async fn stop(&self, tasks: WebhookTasks) {
        tasks.worker.abort();
        self.closing.store(true, Ordering::Relaxed);
        let mut writer = tasks.writer;
        if tokio::time::timeout(Duration::from_secs(5), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
            tracing::warn!("webhook events in the writer's hands not written at shutdown");
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "queued webhook events not written at shutdown");
        }
    }

    async fn write_loop(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            if batch.is_empty() {
                let mut rx = self.rx.lock().await;
                // A bounded wait, so that a shutdown is noticed; the lock is released between
                // waits for `flush`.
                let got =
                    tokio::time::timeout(Duration::from_millis(100), rx.recv_many(&mut batch, 256))
                        .await;
                if got == Ok(0) {
                    return;
                }
            }
            if batch.is_empty() {
                if self.closing.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            match self.write(&batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    // Kept in hand and retried; meanwhile new events queue up to the bound.
                    tracing::warn!(error = %e, queued = batch.len(), "webhook outbox write failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn deliver_loop(self: Arc<Self>, client: reqwest::Client) {
        let poll = self.config.retry_base.min(MAX_POLL);
        let mut purged_at: Option<std::time::Instant> = None;
        loop {
            if purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                purged_at = Some(std::time::Instant::now());
                self.purge_dead().await;
            }
            let worked = match self.deliver_due(&client).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox unreachable");
                    false
                }
            };
            if !worked {
                let _ = tokio::time::timeout(poll, self.wake.notified()).await;
            }
        }
    }

    /// Deletes the dead letters older than the retention.
    async fn purge_dead(&self) {
        let retention = u64::try_from(self.config.dead_retention.as_millis()).unwrap_or(u64::MAX);
        match self
            .outbox
            .purge_dead(now_ms().saturating_sub(retention))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                event = "webhook_dead_letters_purged",
                count = n,
                "dead-lettered webhook events past their retention deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "webhook dead letters not purged"),
        }
    }

    /// One round: claims due entries and tries them all at once (a round lasts at most one
    /// timeout, so the lease is short and a crashed instance's entries come back soon);
    /// returns how many were delivered.
    async fn deliver_due(self: &Arc<Self>, client: &reqwest::Client) -> Result<usize, StoreError> {
        let claim = uuid::Uuid::new_v4();
        let lease = self.config.timeout.saturating_mul(2) + Duration::from_secs(5);
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let entries = self
            .outbox
            .claim(claim, now_ms(), lease_ms, CLAIM_BATCH)
            .await?;
        let mut sends = tokio::task::JoinSet::new();
        for entry in entries {
            let (this, client) = (self.clone(), client.clone());
            sends.spawn(async move {
                let result = this.send(&client, &entry).await;
                (entry, result)
            });
        }
        let mut delivered = 0;
        while let Some(done) = sends.join_next().await {
            let Ok((entry, result)) = done else { continue };
            match result {
                Ok(()) => {
                    self.outbox.delivered(entry.id, claim).await?;
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    delivered += 1;
                }
                Err(why) => self.failed(&entry, claim, &why).await?,
            }
        }
        Ok(delivered)
    }

    async fn failed(
        &self,
        entry: &OutboxEntry,
        claim: uuid::Uuid,
        why: &str,
    ) -> Result<(), StoreError> {
        let attempts = entry.attempts.saturating_add(1);
        let now = now_ms();
        let age = Duration::from_millis(now.saturating_sub(entry.created_at));
        if attempts >= self.config.max_attempts || age >= self.config.max_age {
            self.outbox.dead_letter(entry.id, claim, now, why).await?;
            self.dead.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                event = "webhook_dead_lettered",
                id = %entry.id,
                kind = %entry.kind,
                attempts,
                error = why,
                "webhook delivery given up"
            );
            return Ok(());
        }
        let wait = backoff(attempts, self.config.retry_base, self.config.retry_max);
        let next = now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        tracing::warn!(
            event = "webhook_retry",
            id = %entry.id,
            attempts,
            retry_in_ms = wait.as_millis() as u64,
            error = why,
            "webhook delivery failed"
        );
        self.outbox.retry(entry.id, claim, Some(next), why).await
    }

    /// One POST; `Err` says why in a few words (never the URL or the body).
    async fn send(&self, client: &reqwest::Client, entry: &OutboxEntry) -> Result<(), String> {
        let id = entry.id.to_string();
        let timestamp = now_ms() / 1000;
        let request = client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&self.config.key, &id, timestamp, &entry.body),
            )
            .body(entry.body.clone());
        let mut response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        // A few bytes at most, under the same timeout: the answer's content is not used.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        drop(response);
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", status.as_u16()))
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// Entries the in-memory outbox holds at most: events an attacker can cause (failed logins,
/// when selected) while the receiver is down must not grow the process without bound.
pub const MEMORY_OUTBOX_MAX: usize = 100_000;

/// The outbox of the in-memory store: lives in the process and does not survive a restart.
/// Holds at most `MEMORY_OUTBOX_MAX` entries; beyond that new events are dropped and counted.
#[derive(Default)]
pub struct InMemoryWebhookOutbox {
    inner: Mutex<MemoryOutbox>,
    dropped: AtomicU64,
}

#[derive(Default)]
struct MemoryOutbox {
    order: VecDeque<uuid::Uuid>,
    rows: HashMap<uuid::Uuid, MemoryRow>,
}

struct MemoryRow {
    entry: OutboxEntry,
    next_at: u64,
    locked_until: u64,
    claim: Option<uuid::Uuid>,
    /// When it was dead-lettered (Unix milliseconds), if it was.
    dead_at: Option<u64>,
}

impl InMemoryWebhookOutbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events refused because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn with_row(&self, id: uuid::Uuid, claim: uuid::Uuid, f: impl FnOnce(&mut MemoryRow) -> bool) {
        let mut inner = self.inner.lock().expect("outbox lock");
        let remove = match inner.rows.get_mut(&id) {
            Some(row) if row.claim == Some(claim) => f(row),
            _ => false,
        };
        if remove {
            inner.rows.remove(&id);
            inner.order.retain(|i| *i != id);
        }
    }
}

#[async_trait::async_trait]
impl WebhookOutbox for InMemoryWebhookOutbox {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("outbox lock");
        for e in entries {
            if inner.rows.contains_key(&e.id) {
                continue;
            }
            // Full: the oldest dead letter makes room (the operator has had longest to see it);
            // only an outbox full of pending events refuses a new one.
            if inner.rows.len() >= MEMORY_OUTBOX_MAX {
                let oldest_dead = inner
                    .order
                    .iter()
                    .position(|id| inner.rows.get(id).is_some_and(|r| r.dead_at.is_some()));
                if let Some(at) = oldest_dead {
                    if let Some(id) = inner.order.remove(at) {
                        inner.rows.remove(&id);
                    }
                }
            }
            if inner.rows.len() >= MEMORY_OUTBOX_MAX {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event = "webhook_dropped",
                    id = %e.id,
                    "in-memory webhook outbox full: event not kept for delivery"
                );
                continue;
            }
            inner.order.push_back(e.id);
            inner.rows.insert(
                e.id,
                MemoryRow {
                    entry: e.clone(),
                    next_at: e.created_at,
                    locked_until: 0,
                    claim: None,
                    dead_at: None,
                },
            );
        }
        Ok(())
    }

    async fn claim(
        &self,
        claim: uuid::Uuid,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut inner = self.inner.lock().expect("outbox lock");
        let MemoryOutbox { order, rows } = &mut *inner;
        let mut out = Vec::new();
        for id in order.iter() {
            if out.len() >= limit {
                break;
            }
            let Some(row) = rows.get_mut(id) else {
                continue;
            };
            if row.dead_at.is_none() && row.next_at <= now && row.locked_until <= now {
                row.claim = Some(claim);
                row.locked_until = now.saturating_add(lease_ms);
                out.push(row.entry.clone());
            }
        }
        Ok(out)
    }

    async fn delivered(&self, id: uuid::Uuid, claim: uuid::Uuid) -> Result<(), StoreError> {
        self.with_row(id, claim, |_| true);
        Ok(())
    }

    async fn retry(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        next_at: Option<u64>,
        _error: &str,
    ) -> Result<(), StoreError> {
        self.with_row(id, claim, |row| {
            if let Some(at) = next_at {
                row.entry.attempts = row.entry.attempts.saturating_add(1);
                row.next_at = at;
            }
            row.locked_until = 0;
            row.claim = None;
            false
        });
        Ok(())
    }

    async fn dead_letter(
        &self,
        id: uuid::Uuid,
        claim: uuid::Uuid,
        now: u64,
        _error: &str,
    ) -> Result<(), StoreError> {
        self.with_row(id, claim, |row| {
            row.entry.attempts = row.entry.attempts.saturating_add(1);
            row.dead_at = Some(now);
            row.locked_until = 0;
            row.claim = None;
            false
        });
        Ok(())
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        let inner = self.inner.lock().expect("outbox lock");
        let dead = inner.rows.values().filter(|r| r.dead_at.is_some()).count() as u64;
        Ok(OutboxStats {
            pending: inner.rows.len() as u64 - dead,
            dead,
        })
    }

    async fn requeue_dead(&self, now: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock().expect("outbox lock");
        let mut n = 0;
        for row in inner.rows.values_mut().filter(|r| r.dead_at.is_some()) {
            row.dead_at = None;
            row.entry.attempts = 0;
            row.entry.created_at = now;
            row.next_at = now;
            n += 1;
        }
        Ok(n)
    }

    async fn purge_dead(&self, dead_before: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock().expect("outbox lock");
        let before = inner.rows.len();
        inner
            .rows
            .retain(|_, r| r.dead_at.is_none_or(|at| at >= dead_before));
        let MemoryOutbox { order, rows } = &mut *inner;
        order.retain(|id| rows.contains_key(id));
        Ok((before - inner.rows.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_outbox_is_bounded_and_counts_what_it_refuses() {
        let outbox = InMemoryWebhookOutbox::new();
        let entry = |n: usize| OutboxEntry {
            id: uuid::Uuid::new_v4(),
            kind: "login_failed".into(),
            body: format!("{n}"),
            created_at: 0,
            attempts: 0,
        };
        let batch: Vec<_> = (0..MEMORY_OUTBOX_MAX + 5).map(entry).collect();
        outbox.enqueue(&batch).await.unwrap();
        assert_eq!(
            outbox.stats().await.unwrap().pending,
            MEMORY_OUTBOX_MAX as u64
        );
        assert_eq!(outbox.dropped(), 5);
        // The oldest are kept (they are due first); an id already present is not counted.
        outbox.enqueue(&batch[..1]).await.unwrap();
        assert_eq!(outbox.dropped(), 5);
    }

    #[tokio::test]
    async fn a_full_memory_outbox_makes_room_from_its_oldest_dead_letter() {
        let outbox = InMemoryWebhookOutbox::new();
        let entry = |n: usize| OutboxEntry {
            id: uuid::Uuid::new_v4(),
            kind: "reuse_detected".into(),
            body: String::new(),
            created_at: n as u64,
            attempts: 0,
        };
        let batch: Vec<_> = (0..MEMORY_OUTBOX_MAX).map(entry).collect();
        outbox.enqueue(&batch).await.unwrap();
        let claim = uuid::Uuid::new_v4();
        let claimed = outbox.claim(claim, 10, 1_000, 2).await.unwrap();
        assert_eq!(claimed.len(), 2);
        for e in &claimed {
            outbox.dead_letter(e.id, claim, 0, "500").await.unwrap();
        }
        // Full of pending events and two dead letters: a new event evicts a dead letter.
        let alert = entry(7);
        outbox.enqueue(std::slice::from_ref(&alert)).await.unwrap();
        assert_eq!(outbox.dropped(), 0);
        let stats = outbox.stats().await.unwrap();
        assert_eq!(
            (stats.pending, stats.dead),
            (MEMORY_OUTBOX_MAX as u64 - 1, 1)
        );
        outbox.enqueue(&[entry(8)]).await.unwrap();
        outbox.enqueue(&[entry(9)]).await.unwrap();
        assert_eq!(outbox.dropped(), 1, "no dead letter left to make room");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_record_never_waits() {
        let config = WebhookConfig {
            url: "http://127.0.0.1:1/".into(),
            key: vec![7; 32],
            kinds: [EventKind::LoginFailed].into_iter().collect(),
            timeout: Duration::from_secs(1),
            max_attempts: 3,
            max_age: Duration::from_secs(3600),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            dead_retention: Duration::from_secs(86_400),
        };
        let outbox = Arc::new(InMemoryWebhookOutbox::new());
        // Not started: nothing drains the queue.
        let webhooks = Webhooks::new(config, outbox.clone());
        let event = || {
            SecurityEvent::new(
                EventKind::LoginFailed,
                crate::domain::Timestamp::from_unix(0),
            )
        };
        let start = std::time::Instant::now();
        for _ in 0..QUEUE_CAPACITY + 3 {
            webhooks.sink.record(event());
        }
        // Another kind is not queued at all.
        webhooks.sink.record(SecurityEvent::new(
            EventKind::Logout,
            crate::domain::Timestamp::from_unix(0),
        ));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(webhooks.sink.dropped(), 3);
        webhooks.flush().await.unwrap();
        assert_eq!(outbox.stats().await.unwrap().pending, QUEUE_CAPACITY as u64);
        let debug = format!("{webhooks:?}");
        assert!(
            !debug.contains("127.0.0.1") && !debug.contains("[7, 7"),
            "{debug}"
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            let first = backoff(1, base, max);
            assert!(first >= Duration::from_millis(500) && first <= base);
            let fourth = backoff(4, base, max);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = backoff(40, base, max);
            assert!(late >= Duration::from_secs(30) && late <= max);
        }
    }
}

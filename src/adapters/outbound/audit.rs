//! The audit trail: a `SecurityEvents` sink that keeps every event in an `AuditLog`, and the
//! in-memory `AuditLog` (a bounded ring).
//!
//! `record` never waits and never fails: it hands the event to a bounded queue that a writer
//! task appends to the log in batches. A full queue (a store that is slow or down under a
//! flood of failed logins) drops the event and counts it, so neither the request that caused
//! the event nor the process's memory pays for the store's trouble. The same-transaction
//! alternative would make every login wait on an audit insert and fail with it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::domain::{EventKind, SecurityEvent, Timestamp};
use crate::ports::{AuditLog, AuditQuery, AuditRecord, SecurityEvents, StoreError};

/// Events waiting for the writer; beyond this `record` drops and counts.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Events the in-memory log keeps; the oldest go first.
pub const MEMORY_CAPACITY: usize = 10_000;
/// Rows written in one transaction.
const BATCH: usize = 256;
/// At most one "queue full" warning per this many seconds (a flood must not flood the log).
const WARN_EVERY_SECS: u64 = 10;
/// Waits before the writes of one batch after a store failure; then the batch is given up.
const RETRIES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Distinct (client, account) pairs whose throttled logins are kept per minute; past this the
/// minute's further throttled logins are counted, not kept.
pub const THROTTLED_PAIRS_PER_MINUTE: usize = 10_000;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The sink the use cases report to, with its queue and writer.
pub struct AuditTrail {
    log: Arc<dyn AuditLog>,
    tx: mpsc::Sender<AuditRecord>,
    /// Held by the writer while it receives and writes a batch, and by `flush`, so a flush
    /// waits for the batch in the writer's hands instead of missing it.
    rx: tokio::sync::Mutex<mpsc::Receiver<AuditRecord>>,
    dropped: AtomicU64,
    lost: AtomicU64,
    written: AtomicU64,
    last_warn: AtomicU64,
    throttled: Mutex<ThrottledMinute>,
    coalesced: AtomicU64,
}

/// A throttled login is refused before any password hashing, so it costs its sender nothing
/// and one client can send thousands a second: kept one by one, they would fill the store (and
/// push real events out of the queue). The trail keeps the first of each (client, account)
/// pair per minute, which still says who was refused when, and counts the rest.
#[derive(Default)]
struct ThrottledMinute {
    minute: u64,
    /// The pairs kept this minute, and how many of each were not.
    pairs: HashMap<
        (
            Option<crate::domain::ClientAddress>,
            Option<crate::domain::UserId>,
        ),
        u64,
    >,
}

impl ThrottledMinute {
    /// Whether to keep this throttled login.
    fn keep(&mut self, event: &SecurityEvent) -> bool {
        let minute = event.at.unix() / 60;
        if minute != self.minute {
            self.minute = minute;
            self.pairs.clear();
        }
        let key = (event.client.clone(), event.user);
        if let Some(more) = self.pairs.get_mut(&key) {
            *more += 1;
            return false;
        }
        if self.pairs.len() >= THROTTLED_PAIRS_PER_MINUTE {
            return false;
        }
        self.pairs.insert(key, 0);
        true
    }
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("dropped", &self.dropped())
            .field("written", &self.written())
            .finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// A trail into `log` with the default queue bound.
    pub fn new(log: Arc<dyn AuditLog>) -> Arc<Self> {
        Self::with_capacity(log, QUEUE_CAPACITY)
    }

    /// A trail whose queue holds `capacity` events (at least one).
    pub fn with_capacity(log: Arc<dyn AuditLog>, capacity: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Arc::new(Self {
            log,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            written: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
            throttled: Mutex::default(),
            coalesced: AtomicU64::new(0),
        })
    }

    /// The log the trail writes to (the CLI and the housekeeping read and purge it).
    pub fn log(&self) -> Arc<dyn AuditLog> {
        self.log.clone()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events given up after the store failed every retry of their batch.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Throttled logins not kept: beyond the first of their client and account in a minute.
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    /// Events written to the log.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Starts the writer on the current runtime (nothing outside one: `flush` then writes).
    /// The task holds the trail weakly and ends once the trail is dropped.
    pub fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(handle.spawn(write_loop(Arc::downgrade(self))))
    }

    /// Writes every queued event now (at shutdown, and before a command exits), after the
    /// batch the writer may be writing.
    ///
    /// # Errors
    /// When the store fails; the batch then is counted lost and the rest stays queued.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut rx = self.rx.lock().await;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            batch.clear();
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            if let Err(e) = self.log.append(&batch).await {
                self.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return Err(e);
            }
            self.written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }

    /// `flush` within a bound (a store that hangs must not hold a shutdown or a command
    /// forever); what is not written is said in the log.
    pub async fn close(&self) {
        match tokio::time::timeout(Duration::from_secs(5), self.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "queued audit events not written"),
            Err(_) => tracing::warn!(
                lost = self.tx.max_capacity() - self.tx.capacity(),
                "queued audit events not written: the store did not answer within 5 s"
            ),
        }
    }

    /// One batch, retried a few times; then given up and counted, so a store that stays
    /// down cannot hold the queue (which then drops, counted, instead of growing).
    async fn write(&self, batch: &[AuditRecord]) {
        let mut result = self.log.append(batch).await;
        for wait in RETRIES {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(wait).await;
            result = self.log.append(batch).await;
        }
        match result {
            Ok(()) => {
                self.written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    event = "audit_lost",
                    error = %e,
                    lost = batch.len(),
                    "audit events not written: the store failed every retry"
                );
            }
        }
    }

    fn warn_dropped(&self) {
        let now = now_secs();
        let last = self.last_warn.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_SECS
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                event = "audit_dropped",
                dropped_total = self.dropped(),
                "audit queue full: security events dropped (the store is slow or down)"
            );
        }
    }
}

impl SecurityEvents for AuditTrail {
    fn record(&self, event: SecurityEvent) {
        if event.kind == EventKind::LoginThrottled
            && !self
                .throttled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .keep(&event)
        {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.tx.try_send(AuditRecord::from(&event)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.warn_dropped();
        }
    }
}

async fn write_loop(trail: Weak<AuditTrail>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(trail) = trail.upgrade() else { return };
        let mut rx = trail.rx.lock().await;
        // A bounded wait, so that the lock is released for `flush` and a dropped trail is
        // noticed.
        let got =
            tokio::time::timeout(Duration::from_millis(100), rx.recv_many(&mut batch, BATCH)).await;
        if got == Ok(0) {
            return;
        }
        if !batch.is_empty() {
            trail.write(&batch).await;
            batch.clear();
        }
    }
}

/// The audit trail of the in-memory store: the last `MEMORY_CAPACITY` events.
pub struct InMemoryAuditLog {
    inner: Mutex<Ring>,
    capacity: usize,
}

#[derive(Default)]
struct Ring {
    rows: VecDeque<AuditRecord>,
    ids: HashSet<uuid::Uuid>,
}

impl Default for InMemoryAuditLog {
    fn default() -> Self {
        Self::with_capacity(MEMORY_CAPACITY)
    }
}

impl InMemoryAuditLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Ring::default()),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.ring().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut ring = self.ring();
        for r in records {
            if !ring.ids.insert(r.id) {
                continue;
            }
            ring.rows.push_back(r.clone());
            if ring.rows.len() > self.capacity {
                if let Some(old) = ring.rows.pop_front() {
                    ring.ids.remove(&old.id);
                }
            }
        }
        Ok(())
    }

    async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let ring = self.ring();
        let mut rows: Vec<AuditRecord> = ring
            .rows
            .iter()
            .filter(|r| q.user.is_none_or(|u| r.user == Some(u)))
            .filter(|r| q.kind.is_none_or(|k| r.kind == k))
            .filter(|r| q.since.is_none_or(|t| r.at >= t))
            .cloned()
            .collect();
        // Newest first, as the tables answer (stable: the later of one second comes first).
        rows.reverse();
        rows.sort_by_key(|r| std::cmp::Reverse(r.at));
        rows.truncate(q.limit);
        Ok(rows)
    }

    async fn purge_before(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut ring = self.ring();
        let mut purged = 0usize;
        let Ring { rows, ids } = &mut *ring;
        rows.retain(|r| {
            if purged < limit && r.at < before {
                purged += 1;
                ids.remove(&r.id);
                false
            } else {
                true
            }
        });
        Ok(purged as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, UserId};

    fn event(kind: EventKind, at: u64) -> SecurityEvent {
        SecurityEvent::new(kind, Timestamp::from_unix(at))
    }

    #[tokio::test]
    async fn the_ring_keeps_the_newest_events_up_to_its_bound() {
        let log = InMemoryAuditLog::with_capacity(3);
        let records: Vec<_> = (0..5)
            .map(|i| AuditRecord::from(&event(EventKind::LoginFailed, i)))
            .collect();
        log.append(&records).await.unwrap();
        assert_eq!(log.len(), 3);
        let all = log
            .query(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let ats: Vec<_> = all.iter().map(|r| r.at.unix()).collect();
        assert_eq!(ats, [4, 3, 2]);
    }

    #[tokio::test]
    async fn queries_filter_and_purge_is_bounded() {
        let log = InMemoryAuditLog::new();
        let user = UserId::new_random();
        log.append(&[
            AuditRecord::from(&event(EventKind::LoginFailed, 10).user(user)),
            AuditRecord::from(&event(EventKind::LoginSucceeded, 20).user(user)),
            AuditRecord::from(&event(EventKind::LoginSucceeded, 30)),
        ])
        .await
        .unwrap();
        let q = |user, kind, since: Option<u64>| AuditQuery {
            user,
            kind,
            since: since.map(Timestamp::from_unix),
            limit: 10,
        };
        let n = |rows: Vec<AuditRecord>| rows.len();
        assert_eq!(n(log.query(&q(Some(user), None, None)).await.unwrap()), 2);
        let kind = Some(EventKind::LoginSucceeded);
        assert_eq!(n(log.query(&q(None, kind, None)).await.unwrap()), 2);
        assert_eq!(n(log.query(&q(Some(user), kind, None)).await.unwrap()), 1);
        assert_eq!(n(log.query(&q(None, None, Some(20))).await.unwrap()), 2);
        let before = Timestamp::from_unix(100);
        assert_eq!(log.purge_before(before, 2).await.unwrap(), 2);
        assert_eq!(log.purge_before(before, 2).await.unwrap(), 1);
        assert!(log.is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let log = Arc::new(InMemoryAuditLog::new());
        // Not started: nothing drains the queue, as with a store that hangs.
        let trail = AuditTrail::with_capacity(log.clone(), 4);
        for i in 0..10 {
            trail.record(event(EventKind::LoginFailed, i));
        }
        assert_eq!(trail.dropped(), 6);
        trail.flush().await.unwrap();
        assert_eq!(trail.written(), 4);
        assert_eq!(log.len(), 4);
    }

    fn throttled(at: u64, client: std::net::Ipv4Addr, user: Option<UserId>) -> SecurityEvent {
        let e = event(EventKind::LoginThrottled, at)
            .client(crate::domain::ClientAddress::from_ip(client.into()));
        match user {
            Some(u) => e.user(u),
            None => e,
        }
    }

    #[tokio::test]
    async fn throttled_logins_keep_one_per_client_and_account_a_minute() {
        let log = Arc::new(InMemoryAuditLog::new());
        let trail = AuditTrail::new(log.clone());
        let user = UserId::new_random();
        for i in 0..1000 {
            trail.record(throttled(
                600 + i % 60,
                std::net::Ipv4Addr::new(198, 51, 100, 7),
                Some(user),
            ));
        }
        // Another account, another client, and the next minute are each kept once.
        trail.record(throttled(
            610,
            std::net::Ipv4Addr::new(198, 51, 100, 7),
            None,
        ));
        trail.record(throttled(
            610,
            std::net::Ipv4Addr::new(203, 0, 113, 9),
            Some(user),
        ));
        trail.record(throttled(
            660,
            std::net::Ipv4Addr::new(198, 51, 100, 7),
            Some(user),
        ));
        // Other kinds are never coalesced.
        for i in 0..5 {
            trail.record(event(EventKind::LoginFailed, 600 + i).user(user));
        }
        trail.flush().await.unwrap();
        assert_eq!(log.len(), 4 + 5);
        assert_eq!(trail.coalesced(), 999);
    }

    #[tokio::test]
    async fn a_spray_of_clients_keeps_a_bounded_number_of_throttled_logins_a_minute() {
        let log = Arc::new(InMemoryAuditLog::with_capacity(
            THROTTLED_PAIRS_PER_MINUTE * 2,
        ));
        let trail = AuditTrail::with_capacity(log.clone(), THROTTLED_PAIRS_PER_MINUTE * 2);
        for i in 0..THROTTLED_PAIRS_PER_MINUTE + 500 {
            trail.record(throttled(
                600,
                std::net::Ipv4Addr::from(0x0a00_0000 + i as u32),
                None,
            ));
        }
        trail.flush().await.unwrap();
        assert_eq!(log.len(), THROTTLED_PAIRS_PER_MINUTE);
        assert_eq!(trail.coalesced(), 500);
        assert_eq!(trail.dropped(), 0);
    }
}

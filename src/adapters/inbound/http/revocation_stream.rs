//! `GET /revocations/stream`: the revocation feed pushed as Server-Sent Events, so a verifier
//! learns of a revocation within tens of milliseconds instead of one poll interval. Public
//! like the feed, and holding the same entries.
//!
//! One poller per process reads the feed port and fans new entries out to every stream
//! through a bounded `broadcast` channel: the store sees one query per interval however many
//! verifiers listen, and none at all while nobody does. A revocation made by this instance
//! wakes the poller at once (through the security events); one made by another instance on
//! the shared database is seen within `POLL_EVERY`. PostgreSQL's LISTEN/NOTIFY would save
//! that quarter second there, but it needs a trigger on every path that revokes, a dedicated
//! connection per process and a resync after every reconnect anyway (NOTIFY is lost while
//! disconnected); polling an indexed query four times a second is the simpler guarantee and
//! works the same on SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use poem::web::sse::Event;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, OpenApi};
use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::errors::{ErrorBody, TOO_MANY_REQUESTS, UNAVAILABLE};
use super::responses::{infra_failure, InfraFailure};
use super::revocations::{page_end, RevocationEntry, CURSOR_OVERLAP_SECS, MAX_ENTRIES};
use super::{client_ip, AppState, Tag};
use crate::domain::{ClientAddress, EventKind, FeedPosition, SecurityEvent};
use crate::ports::{Revocation, RevocationFeed, SecurityEvents, StoreError};

/// How often the shared poller reads the feed while a stream is open: the bound on how late
/// another instance's revocation is pushed.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// A comment line this often, so proxies and load balancers keep an idle stream open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Streams one client (address, or the trusted proxy header's client) may hold at once: a
/// verifier process needs one; a few more cover restarts overlapping a closing stream.
pub const STREAMS_PER_CLIENT: usize = 8;
/// Streams the /64s of one IPv6 /56 (one site) may hold together: without it a site's 256
/// /64s could take 2048 streams, every slot of a process.
pub const STREAMS_PER_SITE: usize = 4 * STREAMS_PER_CLIENT;
/// Entries a stream may fall behind the poller before it is closed. A reader that stops
/// reading costs at most this many shared entries, never a queue of its own; it resumes
/// with `Last-Event-ID` and replays what it missed from the store.
const LAG_LIMIT: usize = 1024;
/// What a refused stream is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 5;

/// The kinds of security event that follow a revocation committed by this instance.
const REVOKING: [EventKind; 6] = [
    EventKind::Logout,
    EventKind::RefreshReuse,
    EventKind::SessionRevoked,
    EventKind::PasswordChanged,
    EventKind::PasswordReset,
    EventKind::AccountDisabled,
];

/// The streams of one process: the caps, the shared poller and the shutdown signal.
pub struct RevocationHub {
    feed: Arc<dyn RevocationFeed>,
    window_secs: u64,
    sender: broadcast::Sender<RevocationEntry>,
    wake: Arc<Notify>,
    closing: CancellationToken,
    slots: Arc<Semaphore>,
    per_client: Arc<Mutex<Held>>,
    /// Where the poller's first read begins, and what it need not push again: set by the
    /// streams opened while it was idle.
    poll_start: Mutex<PollStart>,
    poller: Once,
}

/// Why a stream was not opened.
#[derive(Debug)]
pub enum Refusal {
    /// `REVOCATION_STREAM_MAX` streams are open.
    Full,
    /// The client holds `STREAMS_PER_CLIENT` already, or its IPv6 /56 `STREAMS_PER_SITE`.
    PerClient,
    /// The store could not be read for the replay.
    Store(StoreError),
}

impl RevocationHub {
    /// `max_streams` open at once on this process.
    pub fn new(feed: Arc<dyn RevocationFeed>, window_secs: u64, max_streams: usize) -> Self {
        Self {
            feed,
            window_secs,
            sender: broadcast::channel(LAG_LIMIT).0,
            wake: Arc::new(Notify::new()),
            closing: CancellationToken::new(),
            slots: Arc::new(Semaphore::new(max_streams)),
            per_client: Arc::default(),
            poll_start: Mutex::default(),
            poller: Once::new(),
        }
    }

    /// Wakes the poller when this process revokes a session; subscribe it to the events.
    pub fn waker(&self) -> Arc<dyn SecurityEvents> {
        Arc::new(Waker(self.wake.clone()))
    }

    /// Ends every stream and the poller (the server is shutting down): open streams must not
    /// hold the graceful shutdown for its whole grace period.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clients
            .values()
            .sum()
    }

    /// Opens a stream for `client`: the entries since `since` (all of the window without
    /// it), then every new one as the poller finds it. The stream ends on shutdown, when the
    /// reader falls `LAG_LIMIT` entries behind, and after a replay that filled a whole page
    /// (the reader resumes from the last `id` for the next).
    ///
    /// # Errors
    /// A `Refusal` when a cap is reached or the store cannot be read.
    pub async fn open(
        self: &Arc<Self>,
        client: ClientAddress,
        since: Option<u64>,
    ) -> Result<BoxStream<'static, RevocationEntry>, Refusal> {
        let since = since.map(FeedPosition::from_cursor);
        if self.closing.is_cancelled() {
            return Err(Refusal::Full);
        }
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        let held = ClientSlot::take(&self.per_client, client).ok_or(Refusal::PerClient)?;
        // Subscribed before the replay is read: an entry committed in between comes twice
        // (entries are idempotent), never not at all.
        let live = self.sender.subscribe();
        let (entries, now) = self
            .feed
            .revoked_since(since, self.window_secs, MAX_ENTRIES)
            .await
            .map_err(Refusal::Store)?;
        let full = entries.len() >= MAX_ENTRIES;
        if !full {
            self.poll_start
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(since, &entries, now);
        }
        self.start_poller();
        let window = self.window_secs;
        // A full page: each id is the position just after its entry, without overlap, so
        // resuming from the last makes progress even inside one second (as the feed's
        // `more` cursor does).
        let mut at = since.unwrap_or_default();
        let replay: Vec<RevocationEntry> = entries
            .into_iter()
            .map(|r| {
                if full {
                    at = at.after(r.revoked_at);
                    entry(r, window, Some(at))
                } else {
                    entry(r, window, None)
                }
            })
            .collect();
        let live = if full {
            stream::empty().boxed()
        } else {
            stream::unfold(live, |mut rx| async move {
                // Lagged or closed: end the stream; the reader resumes from its last id.
                rx.recv().await.ok().map(|e| (e, rx))
            })
            .boxed()
        };
        let guards = (slot, held);
        Ok(stream::iter(replay)
            .chain(live)
            .take_until(self.closing.clone().cancelled_owned())
            .map(move |e| {
                let _held_while_open = &guards;
                e
            })
            .boxed())
    }

    fn start_poller(self: &Arc<Self>) {
        self.poller.call_once(|| {
            tokio::spawn(poll(
                Arc::downgrade(self),
                self.wake.clone(),
                self.closing.clone(),
            ));
        });
    }

    /// Sends the entries not sent yet; returns where the next read begins.
    fn fan_out(
        &self,
        from: FeedPosition,
        entries: Vec<Revocation>,
        now: u64,
        seen: &mut HashSet<(String, u64)>,
    ) -> FeedPosition {
        // A full page goes on from just after it (inside its last second if need be), as a
        // verifier paging the feed does; otherwise from the overlap.
        let next = if entries.len() >= MAX_ENTRIES {
            page_end(Some(from), &entries)
        } else {
            FeedPosition::at(now.saturating_sub(CURSOR_OVERLAP_SECS))
        };
        for r in entries {
            if seen.insert((r.session.to_string(), r.revoked_at)) {
                // No receiver left is not an error: the next open replays from the store.
                let _ = self.sender.send(entry(r, self.window_secs, None));
            }
        }
        // Once per read, not per entry: only what the next read can return again is kept.
        seen.retain(|(_, at)| *at >= next.second);
        next
    }
}

/// The shared poller: reads the feed every `POLL_EVERY` (or at once when woken) while a
/// stream is open, and stops with the hub.
async fn poll(hub: Weak<RevocationHub>, wake: Arc<Notify>, closing: CancellationToken) {
    let mut since: Option<FeedPosition> = None;
    // Where this run of the poller began: its overlap never reaches back before it.
    let mut floor = FeedPosition::default();
    let mut seen = HashSet::new();
    loop {
        tokio::select! {
            () = closing.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        if hub.sender.receiver_count() == 0 {
            // Nobody listens: no queries. The next stream's replay sets the start again.
            since = None;
            seen.clear();
            *hub.poll_start
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = PollStart::default();
            continue;
        }
        let from = match since {
            Some(s) => s,
            None => {
                let start = std::mem::take(
                    &mut *hub
                        .poll_start
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                let Some(from) = start.from else { continue };
                seen = start.replayed;
                floor = from;
                from
            }
        };
        match hub
            .feed
            .revoked_since(Some(from), hub.window_secs, MAX_ENTRIES)
            .await
        {
            Ok((entries, now)) => {
                since = Some(hub.fan_out(from, entries, now, &mut seen).max(floor));
            }
            Err(e) => tracing::debug!(error = %e, "revocation stream: feed unreadable; retrying"),
        }
    }
}

/// The feed's entry, with the cursor to resume after it: its own time less the overlap (a
/// late commit of an earlier time is not missed), or, within a full replay page, the
/// position just after it.
fn entry(r: Revocation, window: u64, after: Option<FeedPosition>) -> RevocationEntry {
    RevocationEntry {
        sid: r.session.to_string(),
        revoked_at: r.revoked_at,
        until: r.revoked_at + window,
        cursor: after.map_or(r.revoked_at.saturating_sub(CURSOR_OVERLAP_SECS), |at| {
            at.cursor()
        }),
    }
}

/// Where an idle poller starts: the earliest place a stream's replay ended, and the entries
/// replayed from there on, which it does not push again.
#[derive(Default)]
struct PollStart {
    from: Option<FeedPosition>,
    replayed: HashSet<(String, u64)>,
}

impl PollStart {
    /// A stream replayed `entries` (not a full page) from `since`, up to `now`.
    ///
    /// The poller starts at the overlap before `now` (an entry committed late with an
    /// earlier time is still pushed), but not before the stream's own start: a stream
    /// resumed from an id inside a flood must not be sent the flood again, or it falls the
    /// lag limit behind at once, ends, resumes, and so on while the flood is in the overlap.
    fn add(&mut self, since: Option<FeedPosition>, entries: &[Revocation], now: u64) {
        let overlap = FeedPosition::at(now.saturating_sub(CURSOR_OVERLAP_SECS));
        // A `since` past the feed's clock (any reader can send one) would start the shared
        // poller in the future, where it finds nothing for every stream: it starts no later
        // than the overlap then.
        let from = since
            .filter(|s| s.second <= now)
            .map_or(overlap, |s| s.max(overlap));
        self.from = Some(self.from.map_or(from, |f| f.min(from)));
        for r in entries.iter().filter(|r| r.revoked_at >= from.second) {
            // Bounded: past it an entry may be pushed twice, which is harmless.
            if self.replayed.len() >= 2 * MAX_ENTRIES {
                break;
            }
            self.replayed.insert((r.session.to_string(), r.revoked_at));
        }
    }
}

struct Waker(Arc<Notify>);

impl SecurityEvents for Waker {
    fn record(&self, event: SecurityEvent) {
        if REVOKING.contains(&event.kind) {
            self.0.notify_one();
        }
    }
}

/// The streams held per client bucket, and per IPv6 site (/56) of those buckets.
#[derive(Default)]
struct Held {
    clients: HashMap<ClientAddress, usize>,
    sites: HashMap<ClientAddress, usize>,
}

/// One stream counted against its client (and its site) until dropped.
struct ClientSlot(Arc<Mutex<Held>>, ClientAddress, Option<ClientAddress>);

impl ClientSlot {
    fn take(map: &Arc<Mutex<Held>>, client: ClientAddress) -> Option<Self> {
        let mut held = map.lock().unwrap_or_else(PoisonError::into_inner);
        let site = client.site();
        if held.clients.get(&client).copied().unwrap_or(0) >= STREAMS_PER_CLIENT
            || site
                .as_ref()
                .is_some_and(|s| held.sites.get(s).copied().unwrap_or(0) >= STREAMS_PER_SITE)
        {
            return None;
        }
        *held.clients.entry(client.clone()).or_insert(0) += 1;
        if let Some(s) = &site {
            *held.sites.entry(s.clone()).or_insert(0) += 1;
        }
        Some(Self(map.clone(), client, site))
    }
}

/// Counts one stream less for `key`, forgetting a key at zero.
fn release(counts: &mut HashMap<ClientAddress, usize>, key: &ClientAddress) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        release(&mut held.clients, &self.1);
        if let Some(site) = &self.2 {
            release(&mut held.sites, site);
        }
    }
}

/// `/revocations/stream`; stateless like `RevocationsApi`.
pub struct RevocationStreamApi;

#[derive(ApiResponse)]
pub enum RevocationStreamResponse {
    /// An event per revocation: `id` is the cursor to resume from (`Last-Event-ID`), `data`
    /// the feed's entry as JSON; a comment line every 15 s while idle.
    #[oai(status = 200)]
    Ok(EventStream<BoxStream<'static, RevocationEntry>>),
    /// `invalid_request`: `since` or `Last-Event-ID` is not one non-negative integer.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names.
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `too_many_requests`: this client holds 8 streams already (an IPv6 client's /64; the
    /// /64s of one /56 hold 32 together).
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: the store is down, or the process holds `REVOCATION_STREAM_MAX`
    /// streams; poll `/revocations` meanwhile.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl InfraFailure for RevocationStreamResponse {
    fn unavailable(body: Json<ErrorBody>) -> Self {
        Self::Unavailable(body)
    }

    fn internal(body: Json<ErrorBody>) -> Self {
        Self::Internal(body)
    }
}

#[OpenApi(tag = "Tag::Keys")]
impl RevocationStreamApi {
    /// The revocation feed, pushed
    ///
    /// Server-Sent Events: the entries since `since` or `Last-Event-ID` (all of the window
    /// without either), then each new revocation as it happens. Reconnect with the last
    /// `id` as `Last-Event-ID`; the stream may end at any time (shutdown, a reader too slow).
    #[oai(
        path = "/revocations/stream",
        method = "get",
        operation_id = "revocationStream"
    )]
    async fn stream(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        /// A `cursor` of the feed or an event's `id` (at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        since: Query<Option<u64>>,
        /// The last event's `id`, as an `EventSource` sends it on reconnect; wins over
        /// `since`.
        #[oai(
            name = "Last-Event-ID",
            validator(minimum(value = "0"), maximum(value = "9007199254740991"))
        )]
        last_event_id: Header<Option<u64>>,
    ) -> RevocationStreamResponse {
        let s = &state.settings;
        let client =
            client_ip::client_address(req, s.trusted_proxy_header.as_deref(), s.trusted_proxy_hops);
        match state
            .revocation_stream
            .open(client, last_event_id.0.or(since.0))
            .await
        {
            Ok(entries) => RevocationStreamResponse::Ok(
                EventStream::new(entries)
                    .keep_alive(HEARTBEAT)
                    .to_event(|e| Event::message(e.to_json_string()).id(e.cursor.to_string())),
            ),
            Err(Refusal::Full) => RevocationStreamResponse::Unavailable(UNAVAILABLE.body()),
            Err(Refusal::PerClient) => RevocationStreamResponse::TooManyRequests(
                TOO_MANY_REQUESTS.body(),
                RETRY_AFTER_SECS,
            ),
            Err(Refusal::Store(e)) => infra_failure("revocation stream", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SessionId;

    struct Fixed(Vec<Revocation>);

    #[async_trait::async_trait]
    impl RevocationFeed for Fixed {
        async fn revoked_since(
            &self,
            _since: Option<FeedPosition>,
            _window_secs: u64,
            _limit: usize,
        ) -> Result<(Vec<Revocation>, u64), StoreError> {
            Ok((self.0.clone(), 1_000))
        }

        async fn purge_revocations(&self, _window_secs: u64) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    fn revocation(at: u64) -> Revocation {
        Revocation {
            session: SessionId::new_random(),
            revoked_at: at,
        }
    }

    fn client(n: u8) -> ClientAddress {
        ClientAddress::from_ip(std::net::IpAddr::from([10, 0, 0, n]))
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_is_closed_instead_of_queueing() {
        let hub = Arc::new(RevocationHub::new(Arc::new(Fixed(vec![])), 900, 4));
        let mut stalled = hub.open(client(1), None).await.unwrap();
        // The reader reads nothing while more than the lag limit is pushed.
        let mut seen = HashSet::new();
        let flood: Vec<_> = (0..LAG_LIMIT as u64 + 10)
            .map(|_| revocation(995))
            .collect();
        hub.fan_out(FeedPosition::at(990), flood, 1_000, &mut seen);
        assert_eq!(hub.sender.len(), LAG_LIMIT, "the shared buffer is bounded");
        assert!(
            stalled.next().await.is_none(),
            "a lagging stream ends (the reader resumes from its last id)"
        );
    }

    #[tokio::test]
    async fn a_full_replay_page_ends_the_stream_with_ids_that_make_progress() {
        let page: Vec<_> = (0..MAX_ENTRIES as u64)
            .map(|i| revocation(1_800_000_000 + i / 100))
            .collect();
        let hub = Arc::new(RevocationHub::new(Arc::new(Fixed(page)), 900, 4));
        let sent: Vec<_> = hub.open(client(1), Some(0)).await.unwrap().collect().await;
        assert_eq!(
            sent.len(),
            MAX_ENTRIES,
            "the page, then the end: resume for the next"
        );
        let last = sent.last().unwrap();
        assert_eq!(
            FeedPosition::from_cursor(last.cursor),
            FeedPosition {
                second: last.revoked_at,
                skip: 100
            },
            "no overlap: resuming moves forward, past the 100 entries of its second"
        );
    }

    #[test]
    fn a_since_past_the_feeds_clock_does_not_start_the_poller_in_the_future() {
        let mut start = PollStart::default();
        let future = FeedPosition::from_cursor((1 << 53) - 1);
        start.add(Some(future), &[], 1_000);
        assert_eq!(
            start.from,
            Some(FeedPosition::at(1_000 - CURSOR_OVERLAP_SECS)),
            "started at the overlap, not where that reader said"
        );
        let mut start = PollStart::default();
        start.add(Some(FeedPosition::at(995)), &[], 1_000);
        assert_eq!(
            start.from,
            Some(FeedPosition::at(995)),
            "a resumed reader's own start"
        );
    }

    #[tokio::test]
    async fn the_64s_of_one_56_share_a_cap() {
        let hub = Arc::new(RevocationHub::new(Arc::new(Fixed(vec![])), 900, 256));
        let v6 = |net: u16, sub: u16| {
            ClientAddress::from_ip(std::net::IpAddr::from([
                0x2001, 0xdb8, net, sub, 0, 0, 0, 1,
            ]))
        };
        let mut open = Vec::new();
        // One stream from each of 40 /64s of one /56.
        let mut refused = 0;
        for sub in 0..40u16 {
            match hub.open(v6(1, 0x0100 | sub), None).await {
                Ok(s) => open.push(s),
                Err(Refusal::PerClient) => refused += 1,
                Err(_) => panic!("not the process cap"),
            }
        }
        assert_eq!(open.len(), STREAMS_PER_SITE);
        assert_eq!(refused, 40 - STREAMS_PER_SITE);
        assert!(hub.open(v6(1, 0x0200), None).await.is_ok(), "the next /56");
        drop(open);
        assert!(
            hub.open(v6(1, 0x0101), None).await.is_ok(),
            "slots come back"
        );
    }

    #[tokio::test]
    async fn entries_are_pushed_once_and_the_caps_hold() {
        let hub = Arc::new(RevocationHub::new(Arc::new(Fixed(vec![])), 900, 9));
        let mut open = Vec::new();
        for _ in 0..STREAMS_PER_CLIENT {
            open.push(hub.open(client(1), None).await.unwrap());
        }
        assert!(matches!(
            hub.open(client(1), None).await,
            Err(Refusal::PerClient)
        ));
        let mut other = hub.open(client(2), None).await.unwrap();
        assert!(
            matches!(hub.open(client(3), None).await, Err(Refusal::Full)),
            "the process-wide cap"
        );
        let mut seen = HashSet::new();
        let r = revocation(999);
        hub.fan_out(FeedPosition::at(990), vec![r], 1_000, &mut seen);
        // The next read returns the same entry again (the overlap): not pushed twice.
        hub.fan_out(FeedPosition::at(990), vec![r], 1_000, &mut seen);
        let first = other.next().await.unwrap();
        assert_eq!(first.sid, r.session.to_string());
        assert_eq!(first.cursor, 999 - CURSOR_OVERLAP_SECS);
        hub.close();
        assert!(other.next().await.is_none(), "closed at shutdown");
        drop(open);
        drop(other);
        assert_eq!(hub.open_streams(), 0, "every slot came back");
    }
}

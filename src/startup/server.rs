//! The listener side of the service: which `Host` names it answers and how connections are
//! served.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::adapters::inbound::http::AllowedHosts;
use crate::config::Settings;

/// The `Host` names to answer. Bound beyond loopback with no name configured (refused in
/// `prod` by the settings), `dev` answers the loopback names only, as a port-forwarded
/// container is reached, and says so.
pub fn allowed_hosts(settings: &Settings) -> AllowedHosts {
    let listed = settings.allowed_hosts();
    let public_url = settings.public_url.as_deref();
    let loopback = settings.binds_loopback();
    let hosts = AllowedHosts::new(loopback, &settings.host, public_url, &listed);
    if loopback || hosts.has_names() {
        return hosts;
    }
    tracing::warn!(
        host = %settings.host,
        "bound beyond loopback without PUBLIC_URL or ALLOWED_HOSTS: answering only the \
         loopback names (localhost, 127.0.0.1, [::1]); set ALLOWED_HOSTS to the names clients use"
    );
    AllowedHosts::new(true, &settings.host, public_url, &listed)
}

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Each request's headers must be complete within this time (an idle keep-alive
    /// connection waiting for its next request is closed after it too).
    pub header_read_timeout: Duration,
    /// Connections served at once; beyond it the listener stops accepting, so new ones wait in
    /// the kernel's backlog until a slot frees.
    pub max_connections: usize,
    /// Connections one socket address may hold at once (`None` behind a trusted proxy, whose
    /// connections all come from its address); one more is closed at once.
    pub max_per_client: Option<usize>,
    /// A response write that makes no progress for this long closes the connection.
    pub send_timeout: Duration,
    /// How long in-flight requests may run after the shutdown signal.
    pub grace: Duration,
}

impl ServeOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
            max_connections: settings.max_connections,
            max_per_client: settings
                .trusted_proxy_header
                .trim()
                .is_empty()
                .then_some(settings.max_connections_per_client),
            send_timeout: Duration::from_secs(settings.send_timeout_secs),
            grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `signal`, then lets in-flight requests finish (up to the
/// grace period). Our own loop instead of poem's `Server`, which does not expose hyper's
/// header read timeout. HTTP/1.1 only: a cleartext HTTP/2 connection has no header deadline
/// (and its version sniffing waits for ever on a silent client); browsers never speak
/// cleartext HTTP/2, and a TLS-terminating proxy in front speaks HTTP/1.1 to us.
///
/// # Errors
/// Never at present; the accept errors of a busy host are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: BoxEndpoint<'static, Response>,
    options: ServeOptions,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = Arc::new(app);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let per_client = PerClient::default();
    let stopping = CancellationToken::new();
    let local = LocalAddr(
        listener
            .local_addr()
            .map_or_else(|_| Addr::Custom("tcp", "unknown".into()), Addr::SocketAddr),
    );
    tracing::info!(addr = %local.0, "listening");
    tracing::info!("server started");
    tokio::pin!(signal);
    loop {
        // A slot first: at the cap nothing is accepted, which is the back-pressure.
        let slot = tokio::select! {
            () = &mut signal => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors or the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let held = match options.max_per_client {
            Some(cap) => match per_client.take(peer.ip(), cap) {
                Some(held) => Some(held),
                None => {
                    tracing::debug!(client = %peer.ip(), "per-client connection cap reached");
                    continue; // drops the stream (closed) and the slot
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            local: local.clone(),
            remote: RemoteAddr(Addr::SocketAddr(peer)),
            header_read_timeout: options.header_read_timeout,
            send_timeout: options.send_timeout,
            stopping: stopping.clone(),
        };
        tokio::spawn(async move {
            connection.serve(stream).await;
            drop((held, slot));
        });
    }
    drop(listener);
    stopping.cancel();
    let all = u32::try_from(options.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(options.grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("grace period over: closing the remaining connections");
    }
    tracing::info!("server stopped");
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection {
    app: Arc<BoxEndpoint<'static, Response>>,
    local: LocalAddr,
    remote: RemoteAddr,
    header_read_timeout: Duration,
    send_timeout: Duration,
    stopping: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let Self {
            app,
            local,
            remote,
            header_read_timeout,
            send_timeout,
            stopping,
        } = self;
        let activity = Arc::new(Activity::default());
        let seen = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let req = poem::Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
            let busy = seen.begin();
            async move {
                let resp: hyper::Response<BoxBody<Bytes, std::io::Error>> =
                    app.get_response(req).await.into();
                // Busy until the body is written, so a long answer is not taken for idleness.
                Ok::<_, Infallible>(resp.map(|body| BoxBody::new(Answering { body, _busy: busy })))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(StallGuard::new(stream, send_timeout)), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = activity.idle_for(header_read_timeout) => return, // drops the connection
            () = stopping.cancelled() => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// Connections held per socket address.
#[derive(Clone, Default)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection counted against its address until dropped.
struct Held(PerClient, IpAddr);

impl PerClient {
    fn take(&self, ip: IpAddr, cap: usize) -> Option<Held> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Held(self.clone(), ip))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.1);
            }
        }
    }
}

/// A stream whose writes fail once they have made no progress for `limit`. hyper bounds the
/// reading of a request head but not the writing of a response, so a client that stops
/// reading (its receive window full) would hold its connection slot for ever.
struct StallGuard<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Progress was made: the next wait starts a fresh timer.
    fn progressed<T>(&mut self, ready: T) -> Poll<T> {
        self.stalled = None;
        Poll::Ready(ready)
    }

    /// No progress: wait, unless the wait has lasted `limit` already.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx),
        }
    }
}

/// When a connection last began a request, and whether one is being answered: the header
/// deadline without a timer per request. hyper's own `header_read_timeout` arms a timer for
/// every request head, which cost about 3.5 % of `/auth/me` throughput on keep-alive
/// connections; one watchdog per connection costs two atomic operations per request instead.
#[derive(Default)]
struct Activity {
    /// Milliseconds since `START` when the connection last began (or finished) a request.
    last: AtomicU64,
    in_flight: AtomicUsize,
}

/// Decrements the in-flight count when the answer is ready (or the request was dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Release);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    /// Resolves once no request has begun for `limit` while none is being answered: a client
    /// that never finishes its headers (however slowly it trickles them), or an idle
    /// keep-alive connection. Checked four times per `limit`, so it fires within 1¼ of it.
    async fn idle_for(&self, limit: Duration) {
        if self.last.load(Ordering::Acquire) == 0 {
            self.touch();
        }
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let mut tick = tokio::time::interval(limit / 4);
        tick.tick().await;
        loop {
            tick.tick().await;
            let quiet = now_ms().saturating_sub(self.last.load(Ordering::Acquire));
            if self.in_flight.load(Ordering::Acquire) == 0 && quiet >= limit_ms {
                return;
            }
        }
    }
}

/// A response body that keeps its connection counted as busy until it is dropped.
struct Answering {
    body: BoxBody<Bytes, std::io::Error>,
    _busy: Busy,
}

impl hyper::body::Body for Answering {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

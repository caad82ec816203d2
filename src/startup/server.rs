//! The listener side of the service: which `Host` names it answers and how connections are
//! served.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Response};
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
    /// How long in-flight requests may run after the shutdown signal.
    pub grace: Duration,
}

impl ServeOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
            max_connections: settings.max_connections,
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
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            local: local.clone(),
            remote: RemoteAddr(Addr::SocketAddr(peer)),
            header_read_timeout: options.header_read_timeout,
            stopping: stopping.clone(),
        };
        tokio::spawn(async move {
            connection.serve(stream).await;
            drop(slot);
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
    stopping: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let Self {
            app,
            local,
            remote,
            header_read_timeout,
            stopping,
        } = self;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let req = poem::Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
            async move {
                let resp: hyper::Response<BoxBody<Bytes, std::io::Error>> =
                    app.get_response(req).await.into();
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = stopping.cancelled() => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

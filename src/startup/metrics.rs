//! The metrics wiring: the recorder into the adapters (stores timed, events counted, the
//! hashing queue observed) and `/metrics` onto its own listener, `METRICS_ADDR`, so it is
//! never served on the public port.

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::server::{self, ServeOptions};
use super::Adapters;
use crate::adapters::inbound::http::{instrument, metrics_app, HttpMetrics};
use crate::adapters::outbound::metrics::{MeasuredSessions, MeasuredUsers, Metrics, UPKEEP_EVERY};
use crate::config::Settings;
use crate::ports::{Clock, RefreshStore};

/// Scrapers served at once: Prometheus and perhaps an operator's curl.
const METRICS_CONNECTIONS: usize = 16;

impl Adapters {
    /// Counts into `metrics`: the stores timed, the security events and refresh outcomes
    /// counted. The hashing queue is observed where the hasher is built (`with_stores`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.users = Arc::new(MeasuredUsers::new(self.users, &metrics));
        self.sessions = Arc::new(MeasuredSessions::new(self.sessions, &metrics));
        self.events.subscribe(metrics.clone());
        self.metrics = Some(metrics);
        self
    }
}

/// The recorder for these settings: one when `METRICS_ADDR` is set.
pub(super) fn recorder(settings: &Settings) -> Option<Arc<Metrics>> {
    matches!(settings.metrics_socket(), Ok(Some(_))).then(|| Arc::new(Metrics::new()))
}

/// The metrics listener, bound, and what it reports on.
pub(super) struct MetricsServer {
    listener: TcpListener,
    metrics: Arc<Metrics>,
    options: ServeOptions,
    sessions: Arc<dyn RefreshStore>,
    clock: Arc<dyn Clock>,
    count_every: Duration,
}

impl MetricsServer {
    /// Binds `METRICS_ADDR`; `None` when it is unset. Adapters built without a recorder (by
    /// hand, as some tests do) get one here that counts the security events only.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub(super) async fn bind(
        settings: &Settings,
        adapters: &Adapters,
    ) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.metrics_socket().map_err(anyhow::Error::msg)? else {
            return Ok(None);
        };
        let metrics = match &adapters.metrics {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(Metrics::new());
                adapters.events.subscribe(m.clone());
                m
            }
        };
        if !addr.ip().is_loopback() {
            // Allowed (a scraper on another host needs it), but the endpoint has no
            // authentication: it must be reachable from the private network only.
            tracing::warn!(
                event = "metrics_not_loopback",
                %addr,
                "METRICS_ADDR is not a loopback address: /metrics has no authentication, keep it \
                 on a private network or behind a firewall rule"
            );
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on METRICS_ADDR {addr}: {e}"))?;
        Ok(Some(Self {
            listener,
            metrics,
            options: ServeOptions {
                max_connections: METRICS_CONNECTIONS,
                ..ServeOptions::from_settings(settings)
            },
            sessions: adapters.sessions.clone(),
            clock: adapters.clock.clone(),
            count_every: Duration::from_secs(settings.session_purge_interval_secs),
        }))
    }

    pub(super) fn port(&self) -> Option<u16> {
        self.listener.local_addr().ok().map(|a| a.port())
    }

    /// The public app with its requests counted.
    pub(super) fn instrument(
        &self,
        app: BoxEndpoint<'static, Response>,
    ) -> BoxEndpoint<'static, Response> {
        instrument(app, Arc::new(HttpMetrics::new(self.metrics.clone())))
    }

    /// Serves `/metrics` and keeps the recorder up: samples folded every `UPKEEP_EVERY` (so
    /// an unscraped recorder stays bounded), live sessions counted every session-purge
    /// interval (one count query a run, whatever the scrape rate). Aborted by the caller.
    pub(super) fn spawn(self) -> Vec<JoinHandle<()>> {
        let Self {
            listener,
            metrics,
            options,
            sessions,
            clock,
            count_every,
        } = self;
        let upkeep = {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    tick.tick().await;
                    metrics.upkeep();
                }
            })
        };
        let counting = {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(count_every);
                loop {
                    tick.tick().await;
                    match sessions.count_live_sessions(clock.now()).await {
                        #[allow(clippy::cast_precision_loss)] // exact up to 2^53 sessions
                        Ok(n) => metrics.sessions_live.set(n as f64),
                        Err(e) => tracing::warn!(error = %e, "live sessions not counted"),
                    }
                }
            })
        };
        let app = metrics_app(metrics);
        let serving = tokio::spawn(async move {
            let _ = server::serve(listener, app, options, std::future::pending()).await;
        });
        vec![upkeep, counting, serving]
    }
}

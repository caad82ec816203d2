//! Background upkeep of every instance: forgets ended and revoked sessions and idle throttle
//! counters and audit events past their retention, at a bounded cost per run.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{AuditLog, Clock, LoginAttempts, RefreshStore};

/// What the housekeeping task works on, and how often.
pub struct Housekeeping {
    pub sessions: Arc<dyn RefreshStore>,
    pub attempts: Arc<dyn LoginAttempts>,
    pub clock: Arc<dyn Clock>,
    pub every: Duration,
    /// Sessions (and audit rows) purged at most per run.
    pub batch: usize,
    /// The audit trail whose rows older than `audit_retention_secs` are purged.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// 0: audit rows are kept forever.
    pub audit_retention_secs: u64,
}

impl Housekeeping {
    /// One run: a bounded purge and a throttle sweep. Failures are logged and retried at the
    /// next run; nothing here can stop the service.
    pub async fn run_once(&self) {
        match self.sessions.purge(self.clock.now(), self.batch).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "ended sessions purged"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
        if let Err(e) = self.attempts.sweep().await {
            tracing::warn!(error = %e, "throttle sweep failed");
        }
        if let (Some(audit), secs @ 1..) = (&self.audit, self.audit_retention_secs) {
            let before =
                crate::domain::Timestamp::from_unix(self.clock.now().unix().saturating_sub(secs));
            match audit.purge_before(before, self.batch).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "old audit events purged"),
                Err(e) => tracing::warn!(error = %e, "audit purge failed"),
            }
        }
    }

    /// Runs `run_once` every `every` until the runtime stops.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            tick.tick().await;
            loop {
                tick.tick().await;
                self.run_once().await;
            }
        })
    }
}

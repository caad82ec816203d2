//! What the login throttle does when its shared store (PostgreSQL or Redis) cannot be
//! reached: `THROTTLE_STORE_FAILURE`. Closed (the default) passes the error on, so a login
//! answers 503 and no guess goes uncounted; open admits the attempt uncounted, with a
//! warning at most every `WARN_EVERY`, so logins keep working through an outage at the price
//! of no throttle while it lasts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::StoreFailure;
use crate::domain::{Attempt, ClientAddress, Email, Reservation, ThrottleDecision};
use crate::ports::{Clock, LoginAttempts, StoreError};

/// At most one outage warning this often: an outage under load must not flood the log.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// A throttle adapter with the outage policy applied.
pub struct OnStoreFailure {
    inner: Arc<dyn LoginAttempts>,
    policy: StoreFailure,
    clock: Arc<dyn Clock>,
    last_warning: Mutex<Option<Instant>>,
    admitted_uncounted: AtomicU64,
}

impl OnStoreFailure {
    pub fn new(inner: Arc<dyn LoginAttempts>, policy: StoreFailure, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            policy,
            clock,
            last_warning: Mutex::new(None),
            admitted_uncounted: AtomicU64::new(0),
        }
    }

    /// Requests let through uncounted since start-up (fail-open only).
    pub fn admitted_uncounted(&self) -> u64 {
        self.admitted_uncounted.load(Ordering::Relaxed)
    }

    /// Whether this error is let through, warning when due; closed passes every error on
    /// as `Unavailable` (whatever went wrong, the counters could not be used).
    fn let_through(&self, what: &str, e: StoreError, admits: bool) -> Result<(), StoreError> {
        let e = match e {
            StoreError::Unknown(e) => StoreError::Unavailable(e),
            unavailable @ StoreError::Unavailable(_) => unavailable,
        };
        if self.policy == StoreFailure::Closed {
            return Err(e);
        }
        let total = self
            .admitted_uncounted
            .fetch_add(u64::from(admits), Ordering::Relaxed)
            + u64::from(admits);
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                event = "throttle_store_unavailable",
                operation = what,
                admitted_uncounted = total,
                error = %e,
                "the login throttle's store cannot be reached: attempts are let through \
                 uncounted (THROTTLE_STORE_FAILURE=open)"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl LoginAttempts for OnStoreFailure {
    async fn begin(&self, email: &Email, client: &ClientAddress) -> Result<Attempt, StoreError> {
        match self.inner.begin(email, client).await {
            Ok(attempt) => Ok(attempt),
            Err(e) => {
                self.let_through("begin", e, true)?;
                Ok(Attempt::Admitted(Reservation {
                    counted: false,
                    ..Reservation::new(email, client, self.clock.now().unix())
                }))
            }
        }
    }

    async fn succeeded(&self, attempt: Reservation) -> Result<(), StoreError> {
        if !attempt.counted {
            return Ok(());
        }
        match self.inner.succeeded(attempt).await {
            Ok(()) => Ok(()),
            Err(e) => self.let_through("succeeded", e, false),
        }
    }

    async fn failed(&self, attempt: Reservation) -> Result<(), StoreError> {
        if !attempt.counted {
            return Ok(());
        }
        match self.inner.failed(attempt).await {
            Ok(()) => Ok(()),
            Err(e) => self.let_through("failed", e, false),
        }
    }

    async fn abandoned(&self, attempt: Reservation) -> Result<(), StoreError> {
        if !attempt.counted {
            return Ok(());
        }
        match self.inner.abandoned(attempt).await {
            Ok(()) => Ok(()),
            Err(e) => self.let_through("abandoned", e, false),
        }
    }

    async fn begin_registration(
        &self,
        client: &ClientAddress,
    ) -> Result<ThrottleDecision, StoreError> {
        match self.inner.begin_registration(client).await {
            Ok(decision) => Ok(decision),
            Err(e) => {
                self.let_through("begin_registration", e, true)?;
                Ok(ThrottleDecision::Allow)
            }
        }
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        // The sweeper logs its own failures and tries again; nothing to let through.
        self.inner.sweep().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::outbound::clock::ManualClock;
    use crate::ports::MockLoginAttempts;

    fn down() -> StoreError {
        StoreError::Unavailable(anyhow::anyhow!("connection refused"))
    }

    #[tokio::test]
    async fn an_attempt_let_through_uncounted_is_never_taken_back_from_the_store() {
        // The store is down at `begin` and back at settlement: settling must not reach it,
        // or it would take back a provisional failure some other attempt added.
        let mut inner = MockLoginAttempts::new();
        inner.expect_begin().times(3).returning(|_, _| Err(down()));
        inner.expect_succeeded().never();
        inner.expect_failed().never();
        inner.expect_abandoned().never();
        let open = OnStoreFailure::new(
            Arc::new(inner),
            StoreFailure::Open,
            Arc::new(ManualClock::new(crate::domain::Timestamp::from_unix(1_000))),
        );
        let email = Email::parse("a@example.com").unwrap();
        let client = ClientAddress::from_ip("203.0.113.7".parse().unwrap());
        for settle in 0..3 {
            let Ok(Attempt::Admitted(r)) = open.begin(&email, &client).await else {
                panic!("open lets the attempt through");
            };
            assert!(!r.counted);
            match settle {
                0 => open.succeeded(r).await.unwrap(),
                1 => open.failed(r).await.unwrap(),
                _ => open.abandoned(r).await.unwrap(),
            }
        }
        assert_eq!(open.admitted_uncounted(), 3);
    }

    #[tokio::test]
    async fn a_counted_attempt_is_settled_with_the_store() {
        let mut inner = MockLoginAttempts::new();
        inner
            .expect_begin()
            .returning(|e, c| Ok(Attempt::Admitted(Reservation::new(e, c, 1_000))));
        inner.expect_failed().times(1).returning(|_| Ok(()));
        let open = OnStoreFailure::new(
            Arc::new(inner),
            StoreFailure::Open,
            Arc::new(ManualClock::new(crate::domain::Timestamp::from_unix(1_000))),
        );
        let email = Email::parse("a@example.com").unwrap();
        let client = ClientAddress::from_ip("203.0.113.7".parse().unwrap());
        let Ok(Attempt::Admitted(r)) = open.begin(&email, &client).await else {
            panic!("admitted");
        };
        open.failed(r).await.unwrap();
    }
}

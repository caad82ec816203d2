//! `LoginAttempts` in process memory: each instance counts on its own, which is right for one
//! replica and lenient (per replica) behind a load balancer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::domain::{
    ClientAddress, Email, FailureCount, MinuteRate, ThrottleDecision, ThrottleSettings,
};
use crate::ports::{Clock, LoginAttempts, StoreError};

/// Tracked keys above this count trigger a sweep of idle ones, so a flood of distinct emails
/// cannot grow memory without bound.
const MAX_TRACKED_KEYS: usize = 100_000;

#[derive(Default)]
struct Counters {
    accounts: HashMap<String, FailureCount>,
    clients: HashMap<String, FailureCount>,
    rates: HashMap<String, MinuteRate>,
}

/// The in-process login throttle.
pub struct InMemoryLoginAttempts {
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    counters: Mutex<Counters>,
}

impl InMemoryLoginAttempts {
    pub fn new(settings: ThrottleSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            counters: Mutex::new(Counters::default()),
        }
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding the lock cannot leave the counters inconsistent enough to
        // matter; keep serving rather than propagate the poison.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.clock.now().unix()
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        let c = self.counters();
        c.accounts.len() + c.clients.len() + c.rates.len()
    }
}

#[async_trait]
impl LoginAttempts for InMemoryLoginAttempts {
    async fn check(
        &self,
        email: &Email,
        client: &ClientAddress,
    ) -> Result<ThrottleDecision, StoreError> {
        if !self.settings.enabled {
            return Ok(ThrottleDecision::Allow);
        }
        let now = self.now();
        let mut c = self.counters();
        let locked = [
            c.accounts
                .get(email.as_str())
                .and_then(|f| f.locked_for(now)),
            c.clients
                .get(client.as_str())
                .and_then(|f| f.locked_for(now)),
        ];
        if let Some(retry_after_secs) = locked.into_iter().flatten().max() {
            return Ok(ThrottleDecision::Wait { retry_after_secs });
        }
        if c.rates.len() >= MAX_TRACKED_KEYS {
            c.rates.retain(|_, r| !r.is_stale(now));
        }
        let rate = c.rates.entry(client.as_str().to_owned()).or_default();
        Ok(rate.admit(now, self.settings.client_max_per_minute))
    }

    async fn record_failure(
        &self,
        email: &Email,
        client: &ClientAddress,
    ) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = self.now();
        let s = self.settings;
        let mut guard = self.counters();
        let c = &mut *guard;
        if c.accounts.len() >= MAX_TRACKED_KEYS || c.clients.len() >= MAX_TRACKED_KEYS {
            c.accounts.retain(|_, f| !f.is_idle(now, &s));
            c.clients.retain(|_, f| !f.is_idle(now, &s));
        }
        for (map, key, max) in [
            (&mut c.accounts, email.as_str(), s.account_max_failures),
            (&mut c.clients, client.as_str(), s.client_max_failures),
        ] {
            let count = map
                .entry(key.to_owned())
                .or_insert(FailureCount::starting(now));
            *count = count.after_failure(now, max, &s);
        }
        Ok(())
    }

    async fn record_success(&self, email: &Email) -> Result<(), StoreError> {
        if self.settings.enabled {
            self.counters().accounts.remove(email.as_str());
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        let now = self.now();
        let s = self.settings;
        let mut c = self.counters();
        c.accounts.retain(|_, f| !f.is_idle(now, &s));
        c.clients.retain(|_, f| !f.is_idle(now, &s));
        c.rates.retain(|_, r| !r.is_stale(now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::outbound::clock::ManualClock;
    use crate::domain::Timestamp;

    fn setup(settings: ThrottleSettings) -> (Arc<ManualClock>, InMemoryLoginAttempts) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_000_000)));
        let throttle = InMemoryLoginAttempts::new(settings, clock.clone());
        (clock, throttle)
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn client(s: &str) -> ClientAddress {
        ClientAddress::from_ip(
            match s {
                "c1" | "c" => [10, 0, 0, 1],
                "c2" => [10, 0, 0, 2],
                "attacker" | "stuffer" => [10, 0, 0, 66],
                _ => [10, 0, 0, 99],
            }
            .into(),
        )
    }

    /// Today's `Result<(), seconds>` view of a decision, to keep the assertions as they were.
    async fn check(t: &InMemoryLoginAttempts, e: &Email, c: &str) -> Result<(), u64> {
        match t.check(e, &client(c)).await.unwrap() {
            ThrottleDecision::Allow => Ok(()),
            ThrottleDecision::Wait { retry_after_secs } => Err(retry_after_secs),
        }
    }

    async fn fail(t: &InMemoryLoginAttempts, e: &Email, c: &str) {
        t.record_failure(e, &client(c)).await.unwrap();
    }

    #[tokio::test]
    async fn account_locks_after_n_failures_with_growing_delay_and_unlocks() {
        // Checklist case 44.
        let (clock, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..4 {
            assert!(check(&t, &e, "c1").await.is_ok());
            fail(&t, &e, "c1").await;
        }
        assert!(check(&t, &e, "c1").await.is_ok());
        fail(&t, &e, "c1").await;
        assert_eq!(check(&t, &e, "c1").await, Err(60));
        // Another client address is locked out of this account too.
        assert_eq!(check(&t, &e, "c2").await, Err(60));
        clock.advance(60);
        assert!(check(&t, &e, "c2").await.is_ok());
        fail(&t, &e, "c2").await;
        assert_eq!(check(&t, &e, "c2").await, Err(120), "the delay doubles");
        clock.advance(10_000);
        assert!(
            check(&t, &e, "c2").await.is_ok(),
            "locks are never permanent"
        );
    }

    #[tokio::test]
    async fn other_accounts_are_not_blocked_by_one_lockout() {
        // Checklist case 45, second half.
        let (_, t) = setup(ThrottleSettings::default());
        for _ in 0..5 {
            fail(&t, &email("victim@x.io"), "attacker").await;
        }
        assert!(check(&t, &email("victim@x.io"), "someone").await.is_err());
        assert!(check(&t, &email("other@x.io"), "someone").await.is_ok());
    }

    #[tokio::test]
    async fn many_emails_from_one_client_hit_the_client_budget() {
        // Checklist case 45.
        let (_, t) = setup(ThrottleSettings::default());
        for i in 0..20 {
            let e = email(&format!("u{i}@x.io"));
            assert!(check(&t, &e, "stuffer").await.is_ok(), "attempt {i}");
            fail(&t, &e, "stuffer").await;
        }
        assert!(check(&t, &email("fresh@x.io"), "stuffer").await.is_err());
        assert!(check(&t, &email("fresh@x.io"), "innocent").await.is_ok());
    }

    #[tokio::test]
    async fn success_resets_the_account_and_is_rate_limited_generously() {
        let (clock, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..4 {
            fail(&t, &e, "c").await;
        }
        t.record_success(&e).await.unwrap();
        fail(&t, &e, "c").await;
        assert!(
            check(&t, &e, "c").await.is_ok(),
            "count restarted after success"
        );
        clock.advance(60 - clock.now().unix() % 60);
        for _ in 0..120 {
            assert!(check(&t, &e, "c").await.is_ok());
        }
        assert!(
            check(&t, &e, "c").await.is_err(),
            "121st attempt in a minute waits"
        );
    }

    #[tokio::test]
    async fn disabled_throttle_never_refuses() {
        let (_, t) = setup(ThrottleSettings {
            enabled: false,
            ..ThrottleSettings::default()
        });
        let e = email("a@x.io");
        for _ in 0..1000 {
            assert!(check(&t, &e, "c").await.is_ok());
            fail(&t, &e, "c").await;
        }
        assert_eq!(t.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn idle_counters_are_swept() {
        let (clock, t) = setup(ThrottleSettings::default());
        for i in 0..50 {
            let e = email(&format!("u{i}@x.io"));
            let _ = check(&t, &e, "c").await;
            fail(&t, &e, "c").await;
        }
        assert!(t.tracked_keys() > 50);
        clock.advance(3600);
        t.sweep().await.unwrap();
        assert_eq!(t.tracked_keys(), 0);
    }
}

//! Login throttling by account and by client address.
//!
//! Failed attempts are counted per (normalized) email, whether or not the account exists, and
//! per client address. Past the limit a key is locked for a delay that doubles with every
//! further failure, up to a ceiling; locks always end. Successful logins reset the account's
//! count and are only held to a generous per-address rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::Email;
use crate::ports::Clock;

/// Tracked keys above this count trigger a sweep of idle ones, so a flood of distinct emails
/// cannot grow memory without bound.
const MAX_TRACKED_KEYS: usize = 100_000;

/// The knobs, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    pub enabled: bool,
    /// Failures for one email within `window_secs` before it locks.
    pub account_max_failures: u32,
    /// Failures from one client address within `window_secs` before it locks.
    pub client_max_failures: u32,
    /// Attempts (any outcome) from one client address per minute.
    pub client_max_per_minute: u32,
    pub window_secs: u64,
    /// First lock length; doubles with every failure past the limit.
    pub lockout_secs: u64,
    pub max_lockout_secs: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            account_max_failures: 5,
            client_max_failures: 20,
            client_max_per_minute: 120,
            window_secs: 900,
            lockout_secs: 60,
            max_lockout_secs: 900,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    window_start: u64,
    failures: u32,
    locked_until: u64,
}

impl Counter {
    fn locked_for(&self, now: u64) -> Option<u64> {
        (self.locked_until > now).then(|| self.locked_until - now)
    }

    fn fail(&mut self, now: u64, max: u32, s: &ThrottleSettings) {
        if now.saturating_sub(self.window_start) >= s.window_secs {
            *self = Self {
                window_start: now,
                ..Self::default()
            };
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= max {
            let doublings = (self.failures - max).min(20);
            let lock = s
                .lockout_secs
                .saturating_mul(1 << doublings)
                .min(s.max_lockout_secs);
            self.locked_until = now + lock.max(1);
        }
    }

    fn idle(&self, now: u64, s: &ThrottleSettings) -> bool {
        self.locked_until <= now && now.saturating_sub(self.window_start) >= s.window_secs
    }
}

#[derive(Debug, Default)]
struct Rate {
    minute: u64,
    count: u32,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Counter>,
    clients: HashMap<String, Counter>,
    rates: HashMap<String, Rate>,
}

/// In-process throttle; each instance counts on its own.
pub struct LoginThrottle {
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl LoginThrottle {
    pub fn new(settings: ThrottleSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters inconsistent enough to
        // matter; keep serving rather than propagate the poison.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(seconds)` when this attempt must wait; counts the attempt against the client's
    /// per-minute rate.
    pub fn check(&self, email: &Email, client: &str) -> Result<(), u64> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = self.clock.now().unix();
        let mut st = self.state();
        let locked = [
            st.accounts
                .get(email.as_str())
                .and_then(|c| c.locked_for(now)),
            st.clients.get(client).and_then(|c| c.locked_for(now)),
        ];
        if let Some(wait) = locked.into_iter().flatten().max() {
            return Err(wait);
        }
        let minute = now / 60;
        if st.rates.len() >= MAX_TRACKED_KEYS {
            st.rates.retain(|_, r| r.minute == minute);
        }
        let rate = st.rates.entry(client.to_owned()).or_default();
        if rate.minute != minute {
            *rate = Rate { minute, count: 0 };
        }
        if rate.count >= self.settings.client_max_per_minute {
            return Err(60 - now % 60);
        }
        rate.count += 1;
        Ok(())
    }

    pub fn record_failure(&self, email: &Email, client: &str) {
        if !self.settings.enabled {
            return;
        }
        let now = self.clock.now().unix();
        let s = self.settings;
        let mut st = self.state();
        if st.accounts.len() >= MAX_TRACKED_KEYS || st.clients.len() >= MAX_TRACKED_KEYS {
            st.accounts.retain(|_, c| !c.idle(now, &s));
            st.clients.retain(|_, c| !c.idle(now, &s));
        }
        st.accounts
            .entry(email.as_str().to_owned())
            .or_insert(Counter {
                window_start: now,
                ..Counter::default()
            })
            .fail(now, s.account_max_failures, &s);
        st.clients
            .entry(client.to_owned())
            .or_insert(Counter {
                window_start: now,
                ..Counter::default()
            })
            .fail(now, s.client_max_failures, &s);
    }

    /// A correct password resets the account's failures (not the client's: a stuffing run
    /// that hits one valid pair keeps its count).
    pub fn record_success(&self, email: &Email) {
        if self.settings.enabled {
            self.state().accounts.remove(email.as_str());
        }
    }

    /// Drops counters that no longer hold anything back; called by the background sweeper.
    pub fn sweep(&self) {
        let now = self.clock.now().unix();
        let s = self.settings;
        let mut st = self.state();
        st.accounts.retain(|_, c| !c.idle(now, &s));
        st.clients.retain(|_, c| !c.idle(now, &s));
        st.rates.retain(|_, r| r.minute == now / 60);
    }

    pub fn tracked_keys(&self) -> usize {
        let st = self.state();
        st.accounts.len() + st.clients.len() + st.rates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::outbound::clock::ManualClock;
    use crate::domain::Timestamp;

    fn setup(settings: ThrottleSettings) -> (Arc<ManualClock>, LoginThrottle) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_000_000)));
        let throttle = LoginThrottle::new(settings, clock.clone());
        (clock, throttle)
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn account_locks_after_n_failures_with_growing_delay_and_unlocks() {
        // Checklist case 44.
        let (clock, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..4 {
            assert!(t.check(&e, "c1").is_ok());
            t.record_failure(&e, "c1");
        }
        assert!(t.check(&e, "c1").is_ok());
        t.record_failure(&e, "c1");
        assert_eq!(t.check(&e, "c1"), Err(60));
        // Another client address is locked out of this account too.
        assert_eq!(t.check(&e, "c2"), Err(60));
        clock.advance(60);
        assert!(t.check(&e, "c2").is_ok());
        t.record_failure(&e, "c2");
        assert_eq!(t.check(&e, "c2"), Err(120), "the delay doubles");
        clock.advance(10_000);
        assert!(t.check(&e, "c2").is_ok(), "locks are never permanent");
    }

    #[test]
    fn other_accounts_are_not_blocked_by_one_lockout() {
        // Checklist case 45, second half.
        let (_, t) = setup(ThrottleSettings::default());
        for _ in 0..5 {
            t.record_failure(&email("victim@x.io"), "attacker");
        }
        assert!(t.check(&email("victim@x.io"), "someone").is_err());
        assert!(t.check(&email("other@x.io"), "someone").is_ok());
    }

    #[test]
    fn many_emails_from_one_client_hit_the_client_budget() {
        // Checklist case 45.
        let (_, t) = setup(ThrottleSettings::default());
        for i in 0..20 {
            let e = email(&format!("u{i}@x.io"));
            assert!(t.check(&e, "stuffer").is_ok(), "attempt {i}");
            t.record_failure(&e, "stuffer");
        }
        assert!(t.check(&email("fresh@x.io"), "stuffer").is_err());
        assert!(t.check(&email("fresh@x.io"), "innocent").is_ok());
    }

    #[test]
    fn success_resets_the_account_and_is_rate_limited_generously() {
        let (clock, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..4 {
            t.record_failure(&e, "c");
        }
        t.record_success(&e);
        t.record_failure(&e, "c");
        assert!(t.check(&e, "c").is_ok(), "count restarted after success");
        clock.advance(60 - clock.now().unix() % 60);
        for _ in 0..120 {
            assert!(t.check(&e, "c").is_ok());
        }
        assert!(t.check(&e, "c").is_err(), "121st attempt in a minute waits");
    }

    #[test]
    fn disabled_throttle_never_refuses() {
        let (_, t) = setup(ThrottleSettings {
            enabled: false,
            ..ThrottleSettings::default()
        });
        let e = email("a@x.io");
        for _ in 0..1000 {
            assert!(t.check(&e, "c").is_ok());
            t.record_failure(&e, "c");
        }
        assert_eq!(t.tracked_keys(), 0);
    }

    #[test]
    fn idle_counters_are_swept() {
        let (clock, t) = setup(ThrottleSettings::default());
        for i in 0..50 {
            let e = email(&format!("u{i}@x.io"));
            let _ = t.check(&e, "c");
            t.record_failure(&e, "c");
        }
        assert!(t.tracked_keys() > 50);
        clock.advance(3600);
        t.sweep();
        assert_eq!(t.tracked_keys(), 0);
    }
}

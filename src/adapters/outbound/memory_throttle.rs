//! `LoginAttempts` in process memory: each instance counts on its own, which is right for one
//! replica and lenient (per replica) behind a load balancer. One mutex makes every
//! check-and-count atomic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::domain::{
    Attempt, AttemptCounters, ClientAddress, Email, FailureCount, MinuteRate, Reservation,
    ThrottleDecision, ThrottleSettings,
};
use crate::ports::{Clock, LoginAttempts, StoreError};

/// The most keys tracked at once (all maps together), so a flood of distinct emails or
/// addresses cannot grow memory, or the cost of a sweep, without bound.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// Most keys one login attempt adds.
const KEYS_PER_ATTEMPT: usize = 5;

#[derive(Default)]
struct Counters {
    /// (email, client) pairs: the ones that lock.
    pairs: HashMap<(String, String), FailureCount>,
    /// Per email and per client: the ones that slow down.
    accounts: HashMap<String, FailureCount>,
    clients: HashMap<String, FailureCount>,
    /// Attempts this minute, per client and per (email, client) pair. The pair's rate is what
    /// holds a client back on a slowed account: one budget shared by all clients would let
    /// anyone spend it at the top of every minute and keep the owner out.
    rates: HashMap<String, MinuteRate>,
    account_rates: HashMap<(String, String), MinuteRate>,
    registrations: HashMap<String, MinuteRate>,
    /// The second of the last sweep the bound forced: at most one a second, so attempts past
    /// the bound do not each rescan every key under the lock.
    last_forced_sweep: Option<u64>,
    #[cfg(test)]
    forced_sweeps: u32,
}

impl Counters {
    fn len(&self) -> usize {
        self.pairs.len()
            + self.accounts.len()
            + self.clients.len()
            + self.rates.len()
            + self.account_rates.len()
            + self.registrations.len()
    }

    fn sweep(&mut self, now: u64, s: &ThrottleSettings) {
        self.pairs.retain(|_, f| !f.is_idle(now, s));
        self.accounts.retain(|_, f| !f.is_idle(now, s));
        self.clients.retain(|_, f| !f.is_idle(now, s));
        for rates in [&mut self.rates, &mut self.registrations] {
            rates.retain(|_, r| !r.is_stale(now));
        }
        self.account_rates.retain(|_, r| !r.is_stale(now));
    }

    /// Takes back the provisional failure of `r` from the account and the client; a key left
    /// counting nothing is forgotten (else attempts that count neither way would pile up).
    fn release(&mut self, r: &Reservation, now: u64, s: &ThrottleSettings) {
        for (map, key) in [
            (&mut self.accounts, r.email.as_str()),
            (&mut self.clients, r.client.as_str()),
        ] {
            if let Some(f) = map.get_mut(key) {
                *f = f.released(r.at, now, s);
                if f.is_empty(now, s) {
                    map.remove(key);
                }
            }
        }
    }

    /// Makes room for `needed` more keys under `max`; false when there is none. When full it
    /// drops idle keys, then keys that hold nothing back, down to three quarters of `max`
    /// (room for the rest of the second), and only if that is not enough keys that do hold
    /// something back (a lock, a slowed client or account), so a flood cannot lift a lock
    /// while there is anything else to forget.
    fn make_room(&mut self, needed: usize, max: usize, now: u64, s: &ThrottleSettings) -> bool {
        if self.len() + needed <= max {
            return true;
        }
        if self.last_forced_sweep == Some(now) {
            return false;
        }
        self.last_forced_sweep = Some(now);
        #[cfg(test)]
        {
            self.forced_sweeps += 1;
        }
        self.sweep(now, s);
        self.evict((max - max / 4).saturating_sub(needed), false, now, s);
        self.evict(max.saturating_sub(needed), true, now, s);
        self.len() + needed <= max
    }

    /// Forgets keys until at most `target` are left: only those that hold nothing back unless
    /// `holding_too`.
    fn evict(&mut self, target: usize, holding_too: bool, now: u64, s: &ThrottleSettings) {
        let mut excess = self.len().saturating_sub(target);
        let mut keep = |holds: bool| {
            if excess > 0 && (holding_too || !holds) {
                excess -= 1;
                false
            } else {
                true
            }
        };
        let client_rate = s.slowed_max_per_minute.min(s.client_max_per_minute);
        self.registrations
            .retain(|_, r| keep(r.is_spent(now, s.register_max_per_minute)));
        self.rates.retain(|_, r| keep(r.is_spent(now, client_rate)));
        self.account_rates
            .retain(|_, r| keep(r.is_spent(now, s.slowed_max_per_minute)));
        self.accounts
            .retain(|_, f| keep(f.current(now, s) >= s.account_max_failures));
        self.clients
            .retain(|_, f| keep(f.current(now, s) >= s.client_max_failures));
        self.pairs.retain(|_, f| keep(f.locked_for(now).is_some()));
    }
}

/// The in-process login throttle.
pub struct InMemoryLoginAttempts {
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    counters: Mutex<Counters>,
    max_keys: usize,
}

impl InMemoryLoginAttempts {
    pub fn new(settings: ThrottleSettings, clock: Arc<dyn Clock>) -> Self {
        Self::with_max_keys(settings, clock, MAX_TRACKED_KEYS)
    }

    /// Tracks at most `max_keys` keys (at least one attempt's worth).
    pub fn with_max_keys(
        settings: ThrottleSettings,
        clock: Arc<dyn Clock>,
        max_keys: usize,
    ) -> Self {
        Self {
            settings,
            clock,
            counters: Mutex::new(Counters::default()),
            max_keys: max_keys.max(KEYS_PER_ATTEMPT),
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
        self.counters().len()
    }

    #[cfg(test)]
    fn forced_sweeps(&self) -> u32 {
        self.counters().forced_sweeps
    }
}

fn pair_key(email: &Email, client: &ClientAddress) -> (String, String) {
    (email.as_str().to_owned(), client.as_str().to_owned())
}

#[async_trait]
impl LoginAttempts for InMemoryLoginAttempts {
    async fn begin(&self, email: &Email, client: &ClientAddress) -> Result<Attempt, StoreError> {
        let now = self.now();
        let mut reservation = Reservation::new(email, client, now);
        let s = self.settings;
        if !s.enabled {
            return Ok(Attempt::Admitted(reservation));
        }
        let mut guard = self.counters();
        let c = &mut *guard;
        let fresh = FailureCount::starting(now);
        let key = pair_key(email, client);
        let counters = AttemptCounters {
            pair: c.pairs.get(&key).copied().unwrap_or(fresh),
            account: c.accounts.get(email.as_str()).copied().unwrap_or(fresh),
            client: c.clients.get(client.as_str()).copied().unwrap_or(fresh),
            client_rate: c.rates.get(client.as_str()).copied().unwrap_or_default(),
            pair_rate: c.account_rates.get(&key).copied().unwrap_or_default(),
        };
        if let Some(retry_after_secs) = counters.refusal(now, &s) {
            return Ok(Attempt::Refused { retry_after_secs });
        }

        let new_keys = !c.pairs.contains_key(&key)
            || !c.accounts.contains_key(email.as_str())
            || !c.clients.contains_key(client.as_str())
            || !c.rates.contains_key(client.as_str())
            || !c.account_rates.contains_key(&key);
        // Room for the worst case, as eviction may take this attempt's own keys too.
        if new_keys && !c.make_room(KEYS_PER_ATTEMPT, self.max_keys, now, &s) {
            // Full, and already swept this second: new keys wait for the next one.
            return Ok(Attempt::Refused {
                retry_after_secs: 1,
            });
        }

        // Admitted: counted, as a failure until it is settled, before anything is checked.
        let (after, locks) = counters.admitted(now, &s);
        reservation.locks = locks;
        c.rates
            .insert(client.as_str().to_owned(), after.client_rate);
        c.account_rates.insert(key.clone(), after.pair_rate);
        c.pairs.insert(key, after.pair);
        c.accounts.insert(email.as_str().to_owned(), after.account);
        c.clients.insert(client.as_str().to_owned(), after.client);
        Ok(Attempt::Admitted(reservation))
    }

    async fn succeeded(&self, attempt: Reservation) -> Result<(), StoreError> {
        if self.settings.enabled {
            let now = self.now();
            let mut c = self.counters();
            c.pairs.remove(&pair_key(&attempt.email, &attempt.client));
            c.release(&attempt, now, &self.settings);
        }
        Ok(())
    }

    async fn failed(&self, _attempt: Reservation) -> Result<(), StoreError> {
        // Counted when it began; the lock it may have reached is already in place.
        Ok(())
    }

    async fn abandoned(&self, attempt: Reservation) -> Result<(), StoreError> {
        let s = self.settings;
        if s.enabled {
            let now = self.now();
            let mut c = self.counters();
            let key = pair_key(&attempt.email, &attempt.client);
            if let Some(pair) = c.pairs.get_mut(&key) {
                *pair = pair.released(attempt.at, now, &s);
                // A lock this attempt started goes with it; one from earlier failures stays
                // (its exact end is not kept, and erring long is the safe side).
                if pair.failures < s.pair_max_failures {
                    pair.locked_until = 0;
                }
                if pair.is_empty(now, &s) {
                    c.pairs.remove(&key);
                }
            }
            // Nor does it count against the pair's rate (the client's own rate keeps it).
            if let Some(rate) = c.account_rates.get_mut(&key) {
                rate.release(attempt.at);
                if rate.count == 0 {
                    c.account_rates.remove(&key);
                }
            }
            c.release(&attempt, now, &s);
        }
        Ok(())
    }

    async fn begin_registration(
        &self,
        client: &ClientAddress,
    ) -> Result<ThrottleDecision, StoreError> {
        let now = self.now();
        let mut c = self.counters();
        if !c.registrations.contains_key(client.as_str())
            && !c.make_room(1, self.max_keys, now, &self.settings)
        {
            return Ok(ThrottleDecision::Wait {
                retry_after_secs: 1,
            });
        }
        Ok(c.registrations
            .entry(client.as_str().to_owned())
            .or_default()
            .admit(now, self.settings.register_max_per_minute))
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        let now = self.now();
        self.counters().sweep(now, &self.settings);
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
                "c3" => [10, 0, 0, 3],
                "attacker" | "stuffer" => [10, 0, 0, 66],
                _ => [10, 0, 0, 99],
            }
            .into(),
        )
    }

    async fn begin(t: &InMemoryLoginAttempts, e: &Email, c: &str) -> Result<Reservation, u64> {
        match t.begin(e, &client(c)).await.unwrap() {
            Attempt::Admitted(r) => Ok(r),
            Attempt::Refused { retry_after_secs } => Err(retry_after_secs),
        }
    }

    /// An attempt that, if admitted, turns out a wrong password.
    async fn fail(t: &InMemoryLoginAttempts, e: &Email, c: &str) -> Result<(), u64> {
        let r = begin(t, e, c).await?;
        t.failed(r).await.unwrap();
        Ok(())
    }

    /// An attempt that, if admitted, turns out the right password.
    async fn succeed(t: &InMemoryLoginAttempts, e: &Email, c: &str) -> Result<(), u64> {
        let r = begin(t, e, c).await?;
        t.succeeded(r).await.unwrap();
        Ok(())
    }

    #[tokio::test]
    async fn a_pair_locks_after_n_failures_with_growing_delay_and_unlocks() {
        // Checklist case 44, per (account, client) pair.
        let (clock, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..5 {
            assert!(fail(&t, &e, "c1").await.is_ok());
        }
        assert_eq!(fail(&t, &e, "c1").await, Err(60));
        // A client that did not fail is not locked out of the account.
        assert!(succeed(&t, &e, "c2").await.is_ok());
        clock.advance(60);
        assert!(fail(&t, &e, "c1").await.is_ok());
        assert_eq!(fail(&t, &e, "c1").await, Err(120), "the delay doubles");
        clock.advance(10_000);
        assert!(
            fail(&t, &e, "c1").await.is_ok(),
            "locks are never permanent"
        );
    }

    #[tokio::test]
    async fn a_lockout_shuts_out_only_the_client_that_failed() {
        // Checklist case 45, second half; the victim keeps its account.
        let (_, t) = setup(ThrottleSettings::default());
        for _ in 0..5 {
            fail(&t, &email("victim@x.io"), "attacker").await.unwrap();
        }
        assert!(succeed(&t, &email("victim@x.io"), "attacker")
            .await
            .is_err());
        assert!(succeed(&t, &email("victim@x.io"), "someone").await.is_ok());
        assert!(succeed(&t, &email("other@x.io"), "someone").await.is_ok());
    }

    #[tokio::test]
    async fn many_emails_from_one_client_hit_the_client_budget() {
        // Checklist case 45.
        let (clock, t) = setup(ThrottleSettings::default());
        for i in 0..20 {
            let e = email(&format!("u{i}@x.io"));
            assert!(fail(&t, &e, "stuffer").await.is_ok(), "attempt {i}");
        }
        let fresh = email("fresh@x.io");
        let wait = fail(&t, &fresh, "stuffer").await.unwrap_err();
        assert!(succeed(&t, &fresh, "innocent").await.is_ok());
        // Slowed, not locked: a few attempts a minute, every minute.
        clock.advance(wait);
        for i in 0..6 {
            let e = email(&format!("n{i}@x.io"));
            assert!(fail(&t, &e, "stuffer").await.is_ok());
        }
        assert!(fail(&t, &fresh, "stuffer").await.unwrap_err() <= 60);
    }

    #[tokio::test]
    async fn an_account_past_its_ceiling_is_slowed_for_every_client() {
        let (clock, t) = setup(ThrottleSettings {
            account_max_failures: 10,
            ..ThrottleSettings::default()
        });
        let e = email("a@x.io");
        for i in 0..10 {
            let c = if i % 2 == 0 { "c1" } else { "c2" };
            fail(&t, &e, c).await.unwrap();
        }
        // Each client on its own budget of the slowed rate.
        clock.advance(60 - clock.now().unix() % 60);
        for _ in 0..6 {
            assert!(succeed(&t, &e, "someone").await.is_ok());
        }
        let wait = succeed(&t, &e, "someone").await.unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(
            succeed(&t, &e, "c3").await.is_ok(),
            "another client's budget is its own"
        );
        clock.advance(wait);
        assert!(succeed(&t, &e, "someone").await.is_ok());
    }

    #[tokio::test]
    async fn clients_spending_a_slowed_accounts_budget_leave_a_fresh_client_its_own() {
        let (clock, t) = setup(ThrottleSettings {
            account_max_failures: 10,
            ..ThrottleSettings::default()
        });
        let e = email("a@x.io");
        for i in 0..10 {
            let c = if i % 2 == 0 { "c1" } else { "c2" };
            fail(&t, &e, c).await.unwrap();
        }
        clock.advance(60 - clock.now().unix() % 60);
        // Six guesses this minute, as many as a shared budget would hold.
        for c in [
            "attacker", "someone", "attacker", "someone", "attacker", "someone",
        ] {
            fail(&t, &e, c).await.unwrap();
        }
        assert!(succeed(&t, &e, "c3").await.is_ok());
    }

    #[tokio::test]
    async fn a_burst_in_flight_is_counted_before_any_of_it_is_settled() {
        let (_, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        let mut admitted = Vec::new();
        for _ in 0..40 {
            admitted.extend(begin(&t, &e, "c").await.ok());
        }
        assert_eq!(admitted.len(), 5, "the pair limit");
        let mut admitted = Vec::new();
        for i in 0..40 {
            admitted.extend(begin(&t, &email(&format!("u{i}@x.io")), "c2").await.ok());
        }
        assert_eq!(admitted.len(), 20, "the client limit");
    }

    #[tokio::test]
    async fn an_unsettled_attempt_stays_a_failure_and_an_abandoned_one_counts_neither_way() {
        let (_, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..4 {
            fail(&t, &e, "c").await.unwrap();
        }
        for _ in 0..10 {
            let r = begin(&t, &e, "c").await.unwrap();
            t.abandoned(r).await.unwrap();
        }
        drop(begin(&t, &e, "c").await.unwrap());
        assert!(begin(&t, &e, "c").await.is_err(), "the dropped one counted");
    }

    #[tokio::test]
    async fn success_resets_the_pair_and_is_rate_limited_generously() {
        let (clock, t) = setup(ThrottleSettings::default());
        let e = email("a@x.io");
        for _ in 0..4 {
            fail(&t, &e, "c").await.unwrap();
        }
        succeed(&t, &e, "c").await.unwrap();
        fail(&t, &e, "c").await.unwrap();
        assert!(
            fail(&t, &e, "c").await.is_ok(),
            "count restarted after success"
        );
        clock.advance(60 - clock.now().unix() % 60);
        for _ in 0..120 {
            assert!(succeed(&t, &e, "c").await.is_ok());
        }
        assert!(
            succeed(&t, &e, "c").await.is_err(),
            "121st attempt in a minute waits"
        );
    }

    #[tokio::test]
    async fn sign_ups_are_limited_per_client_per_minute_even_with_the_login_throttle_off() {
        let (clock, t) = setup(ThrottleSettings {
            enabled: false,
            ..ThrottleSettings::default()
        });
        clock.advance(60 - clock.now().unix() % 60);
        for _ in 0..10 {
            let d = t.begin_registration(&client("c")).await.unwrap();
            assert_eq!(d, ThrottleDecision::Allow);
        }
        assert_eq!(
            t.begin_registration(&client("c")).await.unwrap(),
            ThrottleDecision::Wait {
                retry_after_secs: 60
            }
        );
        assert_eq!(
            t.begin_registration(&client("c2")).await.unwrap(),
            ThrottleDecision::Allow
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
            assert!(fail(&t, &e, "c").await.is_ok());
        }
        assert_eq!(t.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn idle_counters_are_swept() {
        let (clock, t) = setup(ThrottleSettings::default());
        for i in 0..50 {
            let e = email(&format!("u{i}@x.io"));
            let _ = fail(&t, &e, "c").await;
        }
        t.begin_registration(&client("c")).await.unwrap();
        assert!(t.tracked_keys() > 50);
        clock.advance(3600);
        t.sweep().await.unwrap();
        assert_eq!(t.tracked_keys(), 0);
    }

    /// Limits that never slow a client down, so only the bound is in play.
    fn unslowed() -> ThrottleSettings {
        ThrottleSettings {
            client_max_failures: u32::MAX,
            client_max_per_minute: u32::MAX,
            lockout_secs: 3600,
            max_lockout_secs: 3600,
            ..ThrottleSettings::default()
        }
    }

    fn bounded(max_keys: usize) -> (Arc<ManualClock>, InMemoryLoginAttempts) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_000_000)));
        let throttle = InMemoryLoginAttempts::with_max_keys(unslowed(), clock.clone(), max_keys);
        (clock, throttle)
    }

    #[tokio::test]
    async fn tracked_keys_stay_within_the_bound_and_a_locked_pair_stays_locked() {
        let (clock, t) = bounded(1_000);
        let victim = email("victim@x.io");
        for _ in 0..5 {
            fail(&t, &victim, "attacker").await.unwrap();
        }
        assert!(fail(&t, &victim, "attacker").await.is_err());
        let mut admitted = 0;
        for i in 0..5_000 {
            if i % 50 == 0 {
                clock.advance(1);
            }
            let e = email(&format!("u{i}@x.io"));
            admitted += usize::from(fail(&t, &e, "c1").await.is_ok());
            assert!(t.tracked_keys() <= 1_000, "attempt {i}");
        }
        assert!(
            admitted > 1_000,
            "room is made again every second: {admitted}"
        );
        assert!(
            fail(&t, &victim, "attacker").await.is_err(),
            "the lock outlives the flood"
        );
    }

    #[tokio::test]
    async fn past_the_bound_a_sweep_runs_at_most_once_a_second() {
        let (clock, t) = bounded(100);
        for i in 0..200 {
            let _ = fail(&t, &email(&format!("u{i}@x.io")), "c1").await;
        }
        assert_eq!(t.forced_sweeps(), 1, "one sweep within the second");
        assert!(t.tracked_keys() <= 100);
        clock.advance(1);
        for i in 200..400 {
            let _ = fail(&t, &email(&format!("u{i}@x.io")), "c1").await;
        }
        assert_eq!(t.forced_sweeps(), 2, "the next second, one more");
    }

    #[tokio::test]
    async fn an_abandoned_attempt_leaves_no_key_that_counts_nothing() {
        let (_, t) = setup(ThrottleSettings::default());
        let before = {
            fail(&t, &email("seen@x.io"), "c1").await.unwrap();
            t.tracked_keys()
        };
        for i in 0..50 {
            let r = begin(&t, &email(&format!("u{i}@x.io")), "c1")
                .await
                .unwrap();
            t.abandoned(r).await.unwrap();
        }
        assert_eq!(
            t.tracked_keys(),
            before,
            "only the client's own rate is kept"
        );
    }
}

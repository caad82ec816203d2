//! The login-throttle policy as pure arithmetic, so every adapter of `ports::LoginAttempts`
//! (in-process today, shared later) refuses and admits at the same moments.
//!
//! An attempt is counted as a failure *before* its password is checked (a reservation), in
//! the same atomic step that decides whether it may go ahead; a success takes it back. So a
//! burst of parallel guesses cannot all be checked before the first failure is counted.
//!
//! Three counts of failures per window, each keyed by what an attacker cannot share with the
//! victim:
//! - the (account, client) pair: past `pair_max_failures` the pair is *locked* for a delay that
//!   doubles with every further failure, up to a ceiling. Only the client that failed is locked
//!   out, so knowing someone's email is not enough to lock its owner out.
//! - the client address (an IPv6 /64, an IPv4 address): past `client_max_failures` it is
//!   *slowed* to `slowed_max_per_minute` attempts a minute, never locked, so one abuser behind
//!   an office NAT or a proxy slows the others down but does not shut them out.
//! - the account across all clients: past the much higher `account_max_failures` each client
//!   is slowed on it to `slowed_max_per_minute` attempts a minute *of its own*, so a guesser
//!   spending its budget cannot leave the owner, from another address, with none.
//!
//! Emails are counted whether or not the account exists, so the throttle says nothing about
//! which accounts exist. Every client is also held to `client_max_per_minute` attempts of any
//! outcome, and to `register_max_per_minute` sign-ups.

use super::{ClientAddress, Email};

/// The knobs, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    pub enabled: bool,
    /// Failures of one (account, client) pair within `window_secs` before the pair locks.
    pub pair_max_failures: u32,
    /// Failures against one account from all clients within `window_secs` before each client
    /// is slowed on it (each to its own `slowed_max_per_minute`).
    pub account_max_failures: u32,
    /// Failures from one client address within `window_secs` before it is slowed.
    pub client_max_failures: u32,
    /// Attempts (any outcome) from one client address per minute.
    pub client_max_per_minute: u32,
    /// Attempts per minute left to a slowed client address, or to each client on a slowed
    /// account.
    pub slowed_max_per_minute: u32,
    /// Sign-ups from one client address per minute (applies even with `enabled` off: it is
    /// not part of the login throttle's switch).
    pub register_max_per_minute: u32,
    pub window_secs: u64,
    /// First lock length; doubles with every failure past the limit.
    pub lockout_secs: u64,
    pub max_lockout_secs: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            pair_max_failures: 5,
            account_max_failures: 100,
            client_max_failures: 20,
            client_max_per_minute: 120,
            slowed_max_per_minute: 6,
            register_max_per_minute: 10,
            window_secs: 900,
            lockout_secs: 60,
            max_lockout_secs: 900,
        }
    }
}

/// A login attempt that was admitted and already counted as a failure. The use case settles
/// it with the port (`succeeded`, `failed` or `abandoned`); one never settled stays counted
/// as a failure, so dropping a request mid-check gains an attacker nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "settle the attempt with the port"]
pub struct Reservation {
    pub email: Email,
    pub client: ClientAddress,
    /// Unix seconds when it was counted: a settlement only takes it back from the window it
    /// was counted in.
    pub at: u64,
    /// What settling it as a failure starts, if anything: this is the attempt that locks the
    /// pair, or the one that first slows the account down. Reported once, as `account_locked`.
    pub locks: Option<Lockout>,
    /// False when nothing was counted: an attempt let through while the throttle's store was
    /// down (`THROTTLE_STORE_FAILURE=open`). Settling it must not take back a failure that
    /// was never added, which would hand the attacker a guess counted by someone else.
    pub counted: bool,
}

impl Reservation {
    /// An attempt counted at `at` that starts no hold (yet: the adapter that counts it says).
    pub fn new(email: &Email, client: &ClientAddress, at: u64) -> Self {
        Self {
            email: email.clone(),
            client: client.clone(),
            at,
            locks: None,
            counted: true,
        }
    }
}

/// A hold on an account that a failed attempt starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// The (account, client) pair is locked.
    Pair,
    /// The account's failures from all clients passed their ceiling: every client is slowed.
    Account,
}

impl Lockout {
    /// The event's `detail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pair => "pair",
            Self::Account => "account",
        }
    }
}

/// The answer to "may this login attempt go ahead?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; the attempt is counted until settled.
    Admitted(Reservation),
    /// Refused before any password check; retry after this many seconds (at least 1).
    Refused { retry_after_secs: u64 },
}

/// Whether a request limited by rate alone (a sign-up) may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleDecision {
    Allow,
    /// Refused before any work; retry after this many seconds (at least 1).
    Wait {
        retry_after_secs: u64,
    },
}

/// The failures of one key (an email or a client address) in its current window. Times are
/// Unix seconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub window_start: u64,
    pub failures: u32,
    pub locked_until: u64,
}

impl FailureCount {
    /// A key seen for the first time at `now`.
    pub fn starting(now: u64) -> Self {
        Self {
            window_start: now,
            ..Self::default()
        }
    }

    /// Seconds until the lock ends, if the key is locked at `now`.
    pub fn locked_for(&self, now: u64) -> Option<u64> {
        (self.locked_until > now).then(|| self.locked_until - now)
    }

    /// The count after one more failure at `now`, against a limit of `max` failures per
    /// window: a window that is over starts afresh, and at or past the limit the key locks.
    #[must_use]
    pub fn after_failure(self, now: u64, max: u32, s: &ThrottleSettings) -> Self {
        let mut next = if now.saturating_sub(self.window_start) >= s.window_secs {
            Self::starting(now)
        } else {
            self
        };
        next.failures = next.failures.saturating_add(1);
        if next.failures >= max {
            next.locked_until = now + lockout_secs(next.failures - max, s);
        }
        next
    }

    /// The failures that count at `now`: none once the window is over.
    pub fn current(&self, now: u64, s: &ThrottleSettings) -> u32 {
        if now.saturating_sub(self.window_start) >= s.window_secs {
            0
        } else {
            self.failures
        }
    }

    /// One more failure at `now`, without any lock (the counts that slow down rather than lock).
    #[must_use]
    pub fn counted(self, now: u64, s: &ThrottleSettings) -> Self {
        self.after_failure(now, u32::MAX, s)
    }

    /// Takes back a failure counted at `at`, if its window is still the current one.
    #[must_use]
    pub fn released(mut self, at: u64, now: u64, s: &ThrottleSettings) -> Self {
        if at >= self.window_start && self.current(now, s) > 0 {
            self.failures -= 1;
        }
        self
    }

    /// Counts nothing and locks nothing at `now`: forgetting it changes no decision.
    pub fn is_empty(&self, now: u64, s: &ThrottleSettings) -> bool {
        self.locked_until <= now && self.current(now, s) == 0
    }

    /// Holds nothing back any more (unlocked and its window over): safe to forget.
    pub fn is_idle(&self, now: u64, s: &ThrottleSettings) -> bool {
        self.locked_until <= now && now.saturating_sub(self.window_start) >= s.window_secs
    }
}

/// The lock after `past_limit` failures beyond the limit: the first lock doubled that many
/// times (at most 2^20), capped at the ceiling, and never zero so a lock is always felt.
pub fn lockout_secs(past_limit: u32, s: &ThrottleSettings) -> u64 {
    let doublings = past_limit.min(20);
    s.lockout_secs
        .saturating_mul(1 << doublings)
        .min(s.max_lockout_secs)
        .max(1)
}

/// The attempts of one client address in the current minute.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRate {
    /// Unix minute (`secs / 60`) the count belongs to.
    pub minute: u64,
    pub count: u32,
}

impl MinuteRate {
    /// Counts an attempt at `now` unless `max` were already made this minute; a refused one
    /// waits until the next minute.
    pub fn admit(&mut self, now: u64, max: u32) -> ThrottleDecision {
        match self.wait(now, max) {
            Some(retry_after_secs) => ThrottleDecision::Wait { retry_after_secs },
            None => {
                self.count(now);
                ThrottleDecision::Allow
            }
        }
    }

    /// Seconds until the next minute if `max` attempts were already made in `now`'s minute;
    /// counts nothing, so several limits can be checked before any is counted.
    pub fn wait(&self, now: u64, max: u32) -> Option<u64> {
        let made = if self.minute == now / 60 {
            self.count
        } else {
            0
        };
        (made >= max).then(|| 60 - now % 60)
    }

    /// Counts one attempt in `now`'s minute.
    pub fn count(&mut self, now: u64) {
        let minute = now / 60;
        if self.minute != minute {
            *self = Self { minute, count: 0 };
        }
        self.count = self.count.saturating_add(1);
    }

    /// Takes back an attempt counted at `at`, if its minute is still the counted one.
    pub fn release(&mut self, at: u64) {
        if self.minute == at / 60 {
            self.count = self.count.saturating_sub(1);
        }
    }

    /// At `max` or more in `now`'s minute: it refuses someone now.
    pub fn is_spent(&self, now: u64, max: u32) -> bool {
        self.wait(now, max).is_some()
    }

    /// Belongs to an earlier minute than `now`'s: safe to forget.
    pub fn is_stale(&self, now: u64) -> bool {
        self.minute != now / 60
    }
}

/// The counters one login attempt reads and counts, as an adapter loads them (a counter it
/// does not hold yet is `Default`, a failure count `FailureCount::starting(now)`). Judging
/// them here keeps every adapter's decisions identical; the adapter's part is to load and
/// store them atomically.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCounters {
    /// The (account, client) pair: the count that locks.
    pub pair: FailureCount,
    pub account: FailureCount,
    pub client: FailureCount,
    /// The client's attempts this minute.
    pub client_rate: MinuteRate,
    /// The pair's attempts this minute: what holds a client back on a slowed account.
    pub pair_rate: MinuteRate,
}

impl AttemptCounters {
    /// Seconds an attempt must wait at `now`, if any limit refuses it.
    pub fn refusal(&self, now: u64, s: &ThrottleSettings) -> Option<u64> {
        let client_rate = if self.client.current(now, s) >= s.client_max_failures {
            s.slowed_max_per_minute.min(s.client_max_per_minute)
        } else {
            s.client_max_per_minute
        };
        let account_slowed = self.account.current(now, s) >= s.account_max_failures;
        [
            self.pair.locked_for(now),
            self.client_rate.wait(now, client_rate),
            self.pair_rate
                .wait(now, s.slowed_max_per_minute)
                .filter(|_| account_slowed),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The counters after admitting an attempt at `now` (counted, provisionally as a
    /// failure), and what settling it as a failure would start.
    #[must_use]
    pub fn admitted(mut self, now: u64, s: &ThrottleSettings) -> (Self, Option<Lockout>) {
        let account_slowed = self.account.current(now, s) >= s.account_max_failures;
        self.client_rate.count(now);
        self.pair_rate.count(now);
        self.pair = self.pair.after_failure(now, s.pair_max_failures, s);
        self.account = self.account.counted(now, s);
        self.client = self.client.counted(now, s);
        // The account's ceiling is crossed once a window, by whichever attempt gets there: it
        // is the one to report when that attempt also locks its pair, or concurrent bursts
        // would report it only when no pair happened to lock on the same attempt.
        let locks = if !account_slowed && self.account.current(now, s) >= s.account_max_failures {
            Some(Lockout::Account)
        } else if self.pair.locked_for(now).is_some() {
            Some(Lockout::Pair)
        } else {
            None
        };
        (self, locks)
    }

    /// A correct password: the pair's failures forgotten (`pair` empty), the provisional
    /// failure taken back from the account and the client.
    #[must_use]
    pub fn succeeded(mut self, at: u64, now: u64, s: &ThrottleSettings) -> Self {
        self.pair = FailureCount::default();
        self.account = self.account.released(at, now, s);
        self.client = self.client.released(at, now, s);
        self
    }

    /// Not judged: the provisional failure taken back everywhere, the lock it started with it
    /// (one from earlier failures stays: its exact end is not kept, and erring long is the
    /// safe side), and the pair's rate too (the client's own rate keeps it).
    #[must_use]
    pub fn abandoned(mut self, at: u64, now: u64, s: &ThrottleSettings) -> Self {
        self.pair = self.pair.released(at, now, s);
        if self.pair.failures < s.pair_max_failures {
            self.pair.locked_until = 0;
        }
        self.pair_rate.release(at);
        self.account = self.account.released(at, now, s);
        self.client = self.client.released(at, now, s);
        self
    }
}

impl FailureCount {
    /// When forgetting it changes no decision any more, in Unix seconds: its lock and its
    /// window both over (a store's expiry time for it).
    pub fn expires_at(&self, s: &ThrottleSettings) -> u64 {
        self.locked_until
            .max(self.window_start.saturating_add(s.window_secs))
    }
}

impl MinuteRate {
    /// The end of its minute, in Unix seconds (a store's expiry time for it).
    pub fn expires_at(&self) -> u64 {
        self.minute.saturating_add(1).saturating_mul(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn fail_n(mut c: FailureCount, n: u32, now: u64, max: u32) -> FailureCount {
        let s = ThrottleSettings::default();
        for _ in 0..n {
            c = c.after_failure(now, max, &s);
        }
        c
    }

    #[test]
    fn locks_at_the_limit_and_doubles_up_to_the_ceiling() {
        let s = ThrottleSettings::default();
        let c = fail_n(FailureCount::starting(T0), 4, T0, 5);
        assert_eq!(c.locked_for(T0), None, "below the limit");
        let c = c.after_failure(T0, 5, &s);
        assert_eq!(c.locked_for(T0), Some(60));
        assert_eq!(c.after_failure(T0, 5, &s).locked_for(T0), Some(120));
        assert_eq!(lockout_secs(0, &s), 60);
        assert_eq!(lockout_secs(1, &s), 120);
        assert_eq!(lockout_secs(3, &s), 480);
        assert_eq!(lockout_secs(4, &s), 900, "capped at the ceiling");
        assert_eq!(lockout_secs(u32::MAX, &s), 900, "no overflow");
        let zero = ThrottleSettings {
            lockout_secs: 0,
            ..s
        };
        assert_eq!(lockout_secs(0, &zero), 1, "a lock is never zero");
    }

    #[test]
    fn a_window_that_is_over_starts_afresh() {
        let s = ThrottleSettings::default();
        let c = fail_n(FailureCount::starting(T0), 4, T0, 5);
        let later = T0 + s.window_secs;
        let c = c.after_failure(later, 5, &s);
        assert_eq!((c.window_start, c.failures), (later, 1));
        assert_eq!(c.locked_for(later), None);
    }

    #[test]
    fn locks_end_and_idle_counts_can_be_forgotten() {
        let s = ThrottleSettings::default();
        let c = fail_n(FailureCount::starting(T0), 5, T0, 5);
        assert_eq!(c.locked_for(T0 + 60), None, "the lock ends");
        assert!(!c.is_idle(T0 + 60, &s), "its window is not over");
        assert!(c.is_idle(T0 + s.window_secs, &s));
    }

    #[test]
    fn a_released_failure_leaves_the_window_it_was_counted_in_alone() {
        let s = ThrottleSettings::default();
        let c = fail_n(FailureCount::starting(T0), 3, T0, u32::MAX);
        assert_eq!(c.released(T0, T0 + 1, &s).failures, 2);
        let next = c.counted(T0 + s.window_secs, &s);
        assert_eq!(next.current(T0 + s.window_secs, &s), 1);
        assert_eq!(
            next.released(T0, T0 + s.window_secs, &s).failures,
            1,
            "counted in an earlier window"
        );
        assert_eq!(c.current(T0 + s.window_secs, &s), 0);
    }

    #[test]
    fn the_minute_rate_admits_its_budget_then_waits_for_the_next_minute() {
        let start = T0 - T0 % 60;
        let mut r = MinuteRate::default();
        for _ in 0..3 {
            assert_eq!(r.admit(start + 10, 3), ThrottleDecision::Allow);
        }
        assert_eq!(
            r.admit(start + 10, 3),
            ThrottleDecision::Wait {
                retry_after_secs: 50
            }
        );
        assert!(!r.is_stale(start + 59));
        assert!(r.is_stale(start + 60));
        assert_eq!(
            r.admit(start + 60, 3),
            ThrottleDecision::Allow,
            "a new minute, a new budget"
        );
    }
}

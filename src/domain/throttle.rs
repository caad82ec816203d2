//! The login-throttle policy as pure arithmetic, so every adapter of `ports::LoginAttempts`
//! (in-process today, shared later) locks and unlocks at the same moments.
//!
//! Failed attempts are counted per (normalized) email, whether or not the account exists, and
//! per client address. Past the limit a key is locked for a delay that doubles with every
//! further failure, up to a ceiling; locks always end. Successful logins reset the account's
//! count and are only held to a generous per-address rate.

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

/// Whether a login attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleDecision {
    Allow,
    /// Refused before any password check; retry after this many seconds (at least 1).
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
        let minute = now / 60;
        if self.minute != minute {
            *self = Self { minute, count: 0 };
        }
        if self.count >= max {
            return ThrottleDecision::Wait {
                retry_after_secs: 60 - now % 60,
            };
        }
        self.count += 1;
        ThrottleDecision::Allow
    }

    /// Belongs to an earlier minute than `now`'s: safe to forget.
    pub fn is_stale(&self, now: u64) -> bool {
        self.minute != now / 60
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

//! `LoginAttempts` on Redis (`REDIS_URL`), shared by every instance on it, so N instances
//! enforce one budget.
//!
//! One copy of the decision logic: each operation reads the attempt's counters (one `MGET`),
//! judges them with `domain::AttemptCounters` (the arithmetic every adapter shares), and
//! writes the result with a Lua script that compares every counter with what was read and
//! only then sets them all (a compare-and-set over the whole state, atomic because Redis runs
//! a script alone). If any counter changed in between, nothing is written and the operation
//! judges the values the script saw instead. Porting `AttemptCounters` to Lua would be
//! atomic too, but a second copy of the policy that could drift from the one the memory and
//! PostgreSQL adapters run.
//!
//! The comparison is on the values themselves, not a version number: a decision is a pure
//! function of the counters and `now`, so counters equal to those read (even after a change
//! and its undoing) give the same decision. A refusal writes nothing, so it is decided on the
//! `MGET` alone (one atomic read).
//!
//! Within one instance, operations on the same email or client first queue on a local lock
//! (striped, taken in a fixed order), so compare-and-set conflicts arise only between
//! instances: a crowd of requests at one instance waits its turn, as under PostgreSQL's
//! advisory locks, instead of spending its rounds on conflicts and being refused.
//!
//! Time is the service's clock (`Clock`), passed in, never Redis `TIME`. Every key written
//! gets an expiry (`SET … PX`) at the moment its counter stops holding anything back, so
//! nothing outlives the policy windows and no sweeper is needed. Keys are SHA-256 hashes
//! of the email and client (never an email in clear) under `REDIS_KEY_PREFIX`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

use crate::domain::{
    Attempt, AttemptCounters, ClientAddress, Email, FailureCount, MinuteRate, Reservation,
    ThrottleDecision, ThrottleSettings,
};
use crate::ports::{Clock, LoginAttempts, StoreError};

/// Every key starts with the deployment's prefix and then this.
pub const KEY_NAMESPACE: &str = "jwt-auth:throttle:";

/// Compare-and-set rounds before an attempt gives up. Each round one writer wins, so this is
/// reached only by that many attempts on one counter at the same moment: a burst, refused.
const MAX_ROUNDS: u32 = 64;

/// Local lock stripes: attempts whose email or client share a stripe run one at a time in
/// this process (a collision only serializes two unrelated attempts).
const STRIPES: usize = 256;

/// A request waits at most this long for Redis, so an outage answers (under
/// `THROTTLE_STORE_FAILURE`) in about a second rather than hanging logins.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest one throttle operation may take, waiting for this instance's other attempts on
/// the same keys included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: the counters. ARGV: the values read ('' for none), then the values to write ('' to
/// delete), then each one's time to live in milliseconds. Returns an empty list when it
/// wrote, else the current values (nothing written).
const COMPARE_AND_SET: &str = r"
local n = #KEYS
local current = {}
local same = true
for i = 1, n do
  local v = redis.call('GET', KEYS[i]) or ''
  current[i] = v
  if v ~= ARGV[i] then same = false end
end
if not same then return current end
for i = 1, n do
  local v = ARGV[n + i]
  if v == '' then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], v, 'PX', ARGV[2 * n + i])
  end
end
return {}
";

fn unavailable(e: redis::RedisError) -> StoreError {
    // A Redis error names the failure (refused, timed out, a server reply), never the URL.
    StoreError::Unavailable(anyhow::anyhow!("redis: {e}"))
}

fn corrupt() -> StoreError {
    StoreError::Unknown(anyhow::anyhow!(
        "a stored throttle counter in Redis does not parse"
    ))
}

/// The stored form of a failure count: `f:window_start:failures:locked_until`.
fn encode_failures(f: FailureCount) -> String {
    format!("f:{}:{}:{}", f.window_start, f.failures, f.locked_until)
}

fn decode_failures(v: &str, now: u64) -> Result<FailureCount, StoreError> {
    if v.is_empty() {
        return Ok(FailureCount::starting(now));
    }
    let mut parts = v.strip_prefix("f:").ok_or_else(corrupt)?.split(':');
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    match (next(), next(), next()) {
        (Some(window_start), Some(failures), Some(locked_until)) => Ok(FailureCount {
            window_start,
            failures: u32::try_from(failures).map_err(|_| corrupt())?,
            locked_until,
        }),
        _ => Err(corrupt()),
    }
}

/// The stored form of a minute's rate: `r:minute:count`.
fn encode_rate(r: MinuteRate) -> String {
    format!("r:{}:{}", r.minute, r.count)
}

fn decode_rate(v: &str) -> Result<MinuteRate, StoreError> {
    if v.is_empty() {
        return Ok(MinuteRate::default());
    }
    let (minute, count) = v
        .strip_prefix("r:")
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(corrupt)?;
    Ok(MinuteRate {
        minute: minute.parse().map_err(|_| corrupt())?,
        count: count.parse().map_err(|_| corrupt())?,
    })
}

/// Milliseconds from `now` until `expires_at` (Unix seconds), at least one.
fn ttl_ms(expires_at: u64, now: u64) -> u64 {
    expires_at.saturating_sub(now).max(1).saturating_mul(1000)
}

/// The keys of one attempt's counters, in `AttemptCounters` order.
struct AttemptKeys {
    pair: String,
    account: String,
    client: String,
    client_rate: String,
    pair_rate: String,
}

/// The shared login throttle on Redis.
pub struct RedisLoginAttempts {
    conn: ConnectionManager,
    prefix: String,
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    script: Script,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl RedisLoginAttempts {
    /// On `url`, connecting lazily (a Redis that is down at start-up is an outage like any
    /// other, under `THROTTLE_STORE_FAILURE`), keys under `prefix`.
    ///
    /// # Errors
    /// When `url` is not a Redis URL (the message never contains it).
    pub fn connect_lazy(
        url: &str,
        prefix: &str,
        settings: ThrottleSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.trim())
            .map_err(|e| anyhow::anyhow!("REDIS_URL is not a usable Redis URL ({:?})", e.kind()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One reconnection try per request that finds the connection broken: a request
            // never waits through a long backoff, and the next one tries again.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot set up the connection: {e}"))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            settings,
            clock,
            script: Script::new(COMPARE_AND_SET),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    fn now(&self) -> u64 {
        self.clock.now().unix()
    }

    /// `prefix` + namespace + kind + the hex SHA-256 of the subject's parts (each ended by a
    /// NUL, so no two subjects meet).
    fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut h = Sha256::new().chain_update(KEY_NAMESPACE).chain_update(kind);
        for p in parts {
            h.update([0]);
            h.update(p);
        }
        let digest = h.finalize();
        let mut key = format!("{}{KEY_NAMESPACE}{kind}:", self.prefix);
        for b in digest {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    fn attempt_keys(&self, email: &Email, client: &ClientAddress) -> AttemptKeys {
        let (e, c) = (email.as_str(), client.as_str());
        AttemptKeys {
            pair: self.key("pair", &[e, c]),
            account: self.key("account", &[e]),
            client: self.key("client", &[c]),
            client_rate: self.key("client-rate", &[c]),
            pair_rate: self.key("pair-rate", &[e, c]),
        }
    }

    /// The local locks of these keys, taken in stripe order so two callers never wait on
    /// each other.
    async fn lock_local(&self, keys: &[&str]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys
            .iter()
            .map(|k| {
                // The key's last hex digits: already a SHA-256, so evenly spread.
                let tail = &k[k.len().saturating_sub(4)..];
                usize::from_str_radix(tail, 16).unwrap_or(0) % STRIPES
            })
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    fn registration_key(&self, client: &ClientAddress) -> String {
        self.key("registrations", &[client.as_str()])
    }

    async fn read(&self, keys: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = conn.mget(keys).await.map_err(unavailable)?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Writes `writes` (value, ttl ms; '' deletes) if the keys still hold `read`: `None` when
    /// written, else the values they hold now.
    async fn compare_and_set(
        &self,
        keys: &[&str],
        read: &[String],
        writes: &[(String, u64)],
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut inv = self.script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for v in read {
            inv.arg(v);
        }
        for (v, _) in writes {
            inv.arg(v);
        }
        for (_, ttl) in writes {
            inv.arg(*ttl);
        }
        let mut conn = self.conn.clone();
        let current: Vec<String> = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok((!current.is_empty()).then_some(current))
    }

    /// Before the next round after `round` conflicts: a short random pause once the first
    /// few retries collided, so a crowd on one counter spreads out instead of retrying in
    /// lockstep.
    async fn back_off(round: u32) {
        if round < 3 {
            return;
        }
        let mut b = [0u8; 2];
        let _ = getrandom::fill(&mut b);
        let cap_us = 100u64 << round.min(6);
        let us = u64::from(u16::from_le_bytes(b)) % cap_us;
        tokio::time::sleep(Duration::from_micros(us)).await;
    }

    /// Reads the counters of `email` from `client`, hands them to `judge`, and writes what it
    /// returns (if anything) with a compare-and-set, judging again on a conflict. `Err(None)`
    /// when the rounds ran out. The whole of it, the wait for the local lock included, is
    /// bounded by `OPERATION_TIMEOUT`: a Redis that answers each call just within its timeout
    /// must not let logins queue behind one another without end; past the bound it is an
    /// outage, which `THROTTLE_STORE_FAILURE` judges.
    async fn transact<T>(
        &self,
        email: &Email,
        client: &ClientAddress,
        now: u64,
        judge: impl FnMut(AttemptCounters) -> (Option<AttemptCounters>, T),
    ) -> Result<Option<T>, StoreError> {
        tokio::time::timeout(
            OPERATION_TIMEOUT,
            self.transact_unbounded(email, client, now, judge),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(anyhow::anyhow!(
                "the login throttle's Redis did not settle an attempt within {OPERATION_TIMEOUT:?}"
            ))
        })?
    }

    async fn transact_unbounded<T>(
        &self,
        email: &Email,
        client: &ClientAddress,
        now: u64,
        mut judge: impl FnMut(AttemptCounters) -> (Option<AttemptCounters>, T),
    ) -> Result<Option<T>, StoreError> {
        let s = self.settings;
        let k = self.attempt_keys(email, client);
        let keys = [
            k.pair.as_str(),
            &k.account,
            &k.client,
            &k.client_rate,
            &k.pair_rate,
        ];
        // The account's and the client's counters: every key of the attempt is one of theirs.
        let _local = self.lock_local(&[&k.account, &k.client]).await;
        let mut read = self.read(&keys).await?;
        for round in 0..MAX_ROUNDS {
            let before = AttemptCounters {
                pair: decode_failures(&read[0], now)?,
                account: decode_failures(&read[1], now)?,
                client: decode_failures(&read[2], now)?,
                client_rate: decode_rate(&read[3])?,
                pair_rate: decode_rate(&read[4])?,
            };
            let (after, out) = judge(before);
            let Some(c) = after else {
                return Ok(Some(out));
            };
            // As the PostgreSQL adapter: counters left counting nothing are deleted, so a
            // later failure starts a fresh window.
            let failures = |f: FailureCount| {
                if f.is_empty(now, &s) {
                    (String::new(), 0)
                } else {
                    (encode_failures(f), ttl_ms(f.expires_at(&s), now))
                }
            };
            let pair_rate = if c.pair_rate.count == 0 {
                (String::new(), 0)
            } else {
                (
                    encode_rate(c.pair_rate),
                    ttl_ms(c.pair_rate.expires_at(), now),
                )
            };
            let writes = [
                failures(c.pair),
                failures(c.account),
                failures(c.client),
                (
                    encode_rate(c.client_rate),
                    ttl_ms(c.client_rate.expires_at(), now),
                ),
                pair_rate,
            ];
            match self.compare_and_set(&keys, &read, &writes).await? {
                None => return Ok(Some(out)),
                Some(current) => read = current,
            }
            Self::back_off(round).await;
        }
        Ok(None)
    }

    async fn settle(
        &self,
        r: &Reservation,
        settle: impl Fn(AttemptCounters, u64) -> AttemptCounters,
    ) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = self.now();
        self.transact(&r.email, &r.client, now, |c| (Some(settle(c, now)), ()))
            .await?
            // Not settled: the provisional failure stays counted, the safe side.
            .ok_or_else(|| {
                StoreError::Unavailable(anyhow::anyhow!("throttle counters too contended"))
            })
    }
}

#[async_trait]
impl LoginAttempts for RedisLoginAttempts {
    async fn begin(&self, email: &Email, client: &ClientAddress) -> Result<Attempt, StoreError> {
        let now = self.now();
        let reservation = Reservation::new(email, client, now);
        let s = self.settings;
        if !s.enabled {
            return Ok(Attempt::Admitted(reservation));
        }
        let decided = self
            .transact(email, client, now, |c| match c.refusal(now, &s) {
                Some(retry_after_secs) => (None, Attempt::Refused { retry_after_secs }),
                None => {
                    let (after, locks) = c.admitted(now, &s);
                    let mut r = reservation.clone();
                    r.locks = locks;
                    (Some(after), Attempt::Admitted(r))
                }
            })
            .await?;
        // More attempts on these counters at this moment than rounds: a burst. Refused, not
        // an outage, so `THROTTLE_STORE_FAILURE=open` cannot be used to let it through.
        Ok(decided.unwrap_or(Attempt::Refused {
            retry_after_secs: 1,
        }))
    }

    async fn succeeded(&self, attempt: Reservation) -> Result<(), StoreError> {
        let s = self.settings;
        self.settle(&attempt, |c, now| c.succeeded(attempt.at, now, &s))
            .await
    }

    async fn failed(&self, _attempt: Reservation) -> Result<(), StoreError> {
        // Counted when it began; the lock it may have reached is already stored.
        Ok(())
    }

    async fn abandoned(&self, attempt: Reservation) -> Result<(), StoreError> {
        let s = self.settings;
        self.settle(&attempt, |c, now| c.abandoned(attempt.at, now, &s))
            .await
    }

    async fn begin_registration(
        &self,
        client: &ClientAddress,
    ) -> Result<ThrottleDecision, StoreError> {
        let now = self.now();
        let key = self.registration_key(client);
        let keys = [key.as_str()];
        let bounded = async {
            let _local = self.lock_local(&keys).await;
            let mut read = self.read(&keys).await?;
            for round in 0..MAX_ROUNDS {
                let mut rate = decode_rate(&read[0])?;
                let decision = rate.admit(now, self.settings.register_max_per_minute);
                if decision != ThrottleDecision::Allow {
                    return Ok(decision);
                }
                let writes = [(encode_rate(rate), ttl_ms(rate.expires_at(), now))];
                match self.compare_and_set(&keys, &read, &writes).await? {
                    None => return Ok(decision),
                    Some(current) => read = current,
                }
                Self::back_off(round).await;
            }
            Ok(ThrottleDecision::Wait {
                retry_after_secs: 1,
            })
        };
        tokio::time::timeout(OPERATION_TIMEOUT, bounded)
            .await
            .map_err(|_| {
                StoreError::Unavailable(anyhow::anyhow!(
                    "the login throttle's Redis did not count a sign-up within {OPERATION_TIMEOUT:?}"
                ))
            })?
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        // Redis expires every key itself when its counter stops holding anything back.
        Ok(())
    }
}

/// A Redis throttle that could not be set up (a URL that validated yet does not open): every
/// operation is an outage, so `THROTTLE_STORE_FAILURE` applies rather than a silent fallback
/// to per-process counting.
pub struct UnusableRedis;

fn unusable() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the Redis throttle could not be set up"))
}

#[async_trait]
impl LoginAttempts for UnusableRedis {
    async fn begin(&self, _: &Email, _: &ClientAddress) -> Result<Attempt, StoreError> {
        Err(unusable())
    }
    async fn succeeded(&self, _: Reservation) -> Result<(), StoreError> {
        Err(unusable())
    }
    async fn failed(&self, _: Reservation) -> Result<(), StoreError> {
        Err(unusable())
    }
    async fn abandoned(&self, _: Reservation) -> Result<(), StoreError> {
        Err(unusable())
    }
    async fn begin_registration(&self, _: &ClientAddress) -> Result<ThrottleDecision, StoreError> {
        Err(unusable())
    }
    async fn sweep(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_and_garbage_is_refused() {
        let f = FailureCount {
            window_start: 1_800_000_000,
            failures: 7,
            locked_until: 1_800_000_120,
        };
        assert_eq!(decode_failures(&encode_failures(f), 0).unwrap(), f);
        assert_eq!(decode_failures("", 5).unwrap(), FailureCount::starting(5));
        let r = MinuteRate {
            minute: 30_000_000,
            count: 3,
        };
        assert_eq!(decode_rate(&encode_rate(r)).unwrap(), r);
        for bad in ["x", "f:1:2", "f:1:2:x", "r:1", "f:1:99999999999:0", "r:a:b"] {
            assert!(
                decode_failures(bad, 0).is_err() && decode_rate(bad).is_err(),
                "{bad}"
            );
        }
        assert!(decode_failures("r:1:2", 0).is_err());
        assert!(decode_rate("f:1:2:3").is_err());
    }

    #[test]
    fn ttls_are_whole_seconds_never_zero() {
        assert_eq!(ttl_ms(100, 40), 60_000);
        assert_eq!(ttl_ms(100, 100), 1000);
        assert_eq!(ttl_ms(100, 200), 1000);
    }
}

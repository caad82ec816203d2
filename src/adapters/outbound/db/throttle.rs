//! `LoginAttempts` on PostgreSQL (`login_throttle`), shared by every instance on the
//! database, so N instances enforce one budget.
//!
//! Every operation is one transaction that first takes transaction-scoped advisory locks on
//! the attempt's email and on its client (in a fixed order, so two never wait on each
//! other), then reads, judges (`domain::AttemptCounters`, the arithmetic every adapter
//! shares) and writes the counters. Every row an attempt touches is keyed by its email or its
//! client, so two attempts that share a counter run one after the other, on any instance:
//! N concurrent begins cannot all pass a limit only one more may pass. Within one instance,
//! attempts that share a key queue in process first (`KeyedGate`), so a flood from one client
//! waits without holding pool connections. Time is the service's clock (`Clock`), passed in,
//! never the database's.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::postgres::store;
use crate::domain::{
    Attempt, AttemptCounters, ClientAddress, Email, FailureCount, MinuteRate, Reservation,
    ThrottleDecision, ThrottleSettings,
};
use crate::ports::{Clock, LoginAttempts, StoreError};

/// Folded into every lock key, so the throttle's locks never meet another user's of the same
/// database.
const LOCK_CLASS: &str = "jwt-auth/login_throttle";

/// How long a transaction waits for another instance's hold on the same key before giving up
/// (an error, which the outage policy then judges): every holder keeps it for one short
/// transaction, so a longer wait means the database is in trouble.
const LOCK_TIMEOUT: &str = "2s";

/// How far behind its own clock an instance sweeps: each instance judges rows by its own
/// clock, so one running ahead must not delete rows that are still live for the others.
const SWEEP_SKEW_SECS: u64 = 300;

/// The `kind` column.
const PAIR: i16 = 1;
const ACCOUNT: i16 = 2;
const CLIENT: i16 = 3;
const CLIENT_RATE: i16 = 4;
const PAIR_RATE: i16 = 5;
const REGISTRATIONS: i16 = 6;

fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn count_from_db(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The advisory lock of one subject: 64 bits of a hash, so any text is a key and no one can
/// craft an email whose lock meets another account's; two subjects that collided anyway would
/// only wait on each other (the counters are keyed by the full text).
fn lock_key(prefix: &str, subject: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(LOCK_CLASS)
        .chain_update([0])
        .chain_update(prefix)
        .chain_update([0])
        .chain_update(subject)
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Holds, in this process, the keys of the attempts that have a transaction open, so that
/// requests sharing a key queue here rather than each holding a pool connection while it
/// waits on the database lock: a flood of logins from one client then occupies one
/// connection of this instance, not the whole pool the other requests need. Hand-written: the
/// keyed-mutex crates either hold entries forever or lack owned guards across `.await`.
#[derive(Default)]
struct KeyedGate {
    held: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

/// A key held in this process; dropping it lets the next waiter in.
struct GateGuard<'a> {
    gate: &'a KeyedGate,
    key: i64,
    slot: Option<(
        Arc<tokio::sync::Mutex<()>>,
        tokio::sync::OwnedMutexGuard<()>,
    )>,
}

impl KeyedGate {
    /// Takes `keys` (sorted, distinct) one after the other, so two callers never wait on each
    /// other in a cycle.
    async fn enter(&self, keys: &[i64]) -> Vec<GateGuard<'_>> {
        let mut guards = Vec::with_capacity(keys.len());
        for &key in keys {
            let slot = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default()
                .clone();
            let guard = slot.clone().lock_owned().await;
            guards.push(GateGuard {
                gate: self,
                key,
                slot: Some((slot, guard)),
            });
        }
        guards
    }

    /// Forgets entries no one holds or waits on (a waiter that was cancelled may leave one).
    fn sweep(&self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, slot| Arc::strong_count(slot) > 1);
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut held = self
            .gate
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((slot, guard)) = self.slot.take() {
            drop(guard);
            // The map's reference and this one: no one else holds or waits.
            if Arc::strong_count(&slot) == 2 {
                held.remove(&self.key);
            }
        }
    }
}

/// One stored row, whichever counter it holds.
#[derive(sqlx::FromRow)]
struct Row {
    kind: i16,
    window_start: i64,
    failures: i64,
    locked_until: i64,
    minute: i64,
    count: i64,
}

impl Row {
    fn failures(&self) -> FailureCount {
        FailureCount {
            window_start: from_db(self.window_start),
            failures: count_from_db(self.failures),
            locked_until: from_db(self.locked_until),
        }
    }

    fn rate(&self) -> MinuteRate {
        MinuteRate {
            minute: from_db(self.minute),
            count: count_from_db(self.count),
        }
    }
}

/// Rows to write (upserted) and to delete, collected and sent in two statements.
#[derive(Default)]
struct Writes {
    kinds: Vec<i16>,
    emails: Vec<String>,
    clients: Vec<String>,
    window_starts: Vec<i64>,
    failures: Vec<i64>,
    locked_untils: Vec<i64>,
    minutes: Vec<i64>,
    counts: Vec<i64>,
    expires: Vec<i64>,
    gone: Vec<(i16, String, String)>,
}

impl Writes {
    fn push(&mut self, kind: i16, email: &str, client: &str, f: FailureCount, r: MinuteRate) {
        self.kinds.push(kind);
        self.emails.push(email.to_owned());
        self.clients.push(client.to_owned());
        self.window_starts.push(to_db(f.window_start));
        self.failures.push(i64::from(f.failures));
        self.locked_untils.push(to_db(f.locked_until));
        self.minutes.push(to_db(r.minute));
        self.counts.push(i64::from(r.count));
        self.expires.push(0);
    }

    fn failures(
        &mut self,
        kind: i16,
        email: &str,
        client: &str,
        f: FailureCount,
        s: &ThrottleSettings,
    ) {
        self.push(kind, email, client, f, MinuteRate::default());
        if let Some(e) = self.expires.last_mut() {
            *e = to_db(f.expires_at(s));
        }
    }

    fn rate(&mut self, kind: i16, email: &str, client: &str, r: MinuteRate) {
        self.push(kind, email, client, FailureCount::default(), r);
        if let Some(e) = self.expires.last_mut() {
            *e = to_db(r.expires_at());
        }
    }

    fn delete(&mut self, kind: i16, email: &str, client: &str) {
        self.gone.push((kind, email.to_owned(), client.to_owned()));
    }

    async fn run(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.kinds.is_empty() {
            sqlx::query(
                "INSERT INTO login_throttle \
                 (kind, email, client, window_start, failures, locked_until, minute, count, \
                  expires_at) \
                 SELECT * FROM UNNEST($1::int2[], $2::text[], $3::text[], $4::int8[], \
                   $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[]) \
                 ON CONFLICT (kind, email, client) DO UPDATE SET \
                   window_start = EXCLUDED.window_start, failures = EXCLUDED.failures, \
                   locked_until = EXCLUDED.locked_until, minute = EXCLUDED.minute, \
                   count = EXCLUDED.count, expires_at = EXCLUDED.expires_at",
            )
            .bind(&self.kinds)
            .bind(&self.emails)
            .bind(&self.clients)
            .bind(&self.window_starts)
            .bind(&self.failures)
            .bind(&self.locked_untils)
            .bind(&self.minutes)
            .bind(&self.counts)
            .bind(&self.expires)
            .execute(&mut *conn)
            .await?;
        }
        if !self.gone.is_empty() {
            let (kinds, rest): (Vec<i16>, Vec<(String, String)>) =
                self.gone.into_iter().map(|(k, e, c)| (k, (e, c))).unzip();
            let (emails, clients): (Vec<String>, Vec<String>) = rest.into_iter().unzip();
            sqlx::query(
                "DELETE FROM login_throttle WHERE (kind, email, client) IN \
                 (SELECT * FROM UNNEST($1::int2[], $2::text[], $3::text[]))",
            )
            .bind(&kinds)
            .bind(&emails)
            .bind(&clients)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The shared login throttle on PostgreSQL.
pub struct PostgresLoginAttempts {
    pool: PgPool,
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    gate: KeyedGate,
}

impl PostgresLoginAttempts {
    pub fn new(pool: PgPool, settings: ThrottleSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            settings,
            clock,
            gate: KeyedGate::default(),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().unix()
    }

    /// The lock keys of an attempt, in the one order every caller takes them.
    fn keys(email: Option<&Email>, client: &ClientAddress) -> Vec<i64> {
        let mut keys = vec![lock_key("client", client.as_str())];
        if let Some(email) = email {
            keys.push(lock_key("email", email.as_str()));
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Takes the database locks of `keys` for the rest of the transaction, in order.
    async fn lock(conn: &mut PgConnection, keys: &[i64]) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .execute(&mut *conn)
            .await?;
        for &key in keys {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The counters of an attempt for `email` from `client`, a missing one as new at `now`.
    async fn load(
        conn: &mut PgConnection,
        email: &Email,
        client: &ClientAddress,
        now: u64,
    ) -> Result<AttemptCounters, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT kind, window_start, failures, locked_until, minute, count \
             FROM login_throttle WHERE (kind, email, client) IN \
             (($3, $1, $2), ($4, $1, ''), ($5, '', $2), ($6, '', $2), ($7, $1, $2))",
        )
        .bind(email.as_str())
        .bind(client.as_str())
        .bind(PAIR)
        .bind(ACCOUNT)
        .bind(CLIENT)
        .bind(CLIENT_RATE)
        .bind(PAIR_RATE)
        .fetch_all(&mut *conn)
        .await?;
        let fresh = FailureCount::starting(now);
        let mut c = AttemptCounters {
            pair: fresh,
            account: fresh,
            client: fresh,
            ..AttemptCounters::default()
        };
        for row in rows {
            match row.kind {
                PAIR => c.pair = row.failures(),
                ACCOUNT => c.account = row.failures(),
                CLIENT => c.client = row.failures(),
                CLIENT_RATE => c.client_rate = row.rate(),
                PAIR_RATE => c.pair_rate = row.rate(),
                _ => {}
            }
        }
        Ok(c)
    }

    /// Writes the counters back; those left counting nothing are deleted (as the in-process
    /// throttle forgets them, so a later failure starts a fresh window).
    fn store_counters(
        email: &Email,
        client: &ClientAddress,
        c: &AttemptCounters,
        now: u64,
        s: &ThrottleSettings,
    ) -> Writes {
        let (e, cl) = (email.as_str(), client.as_str());
        let mut w = Writes::default();
        for (kind, email, client, f) in [
            (PAIR, e, cl, c.pair),
            (ACCOUNT, e, "", c.account),
            (CLIENT, "", cl, c.client),
        ] {
            if f.is_empty(now, s) {
                w.delete(kind, email, client);
            } else {
                w.failures(kind, email, client, f, s);
            }
        }
        w.rate(CLIENT_RATE, "", cl, c.client_rate);
        if c.pair_rate.count == 0 {
            w.delete(PAIR_RATE, e, cl);
        } else {
            w.rate(PAIR_RATE, e, cl, c.pair_rate);
        }
        w
    }

    /// Loads the counters of `r` under their locks, applies `settle` and stores the result.
    async fn settle(
        &self,
        r: &Reservation,
        settle: impl FnOnce(AttemptCounters, u64) -> AttemptCounters,
    ) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let keys = Self::keys(Some(&r.email), &r.client);
        let _held = self.gate.enter(&keys).await;
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(store)?;
        Self::lock(&mut tx, &keys).await.map_err(store)?;
        let before = Self::load(&mut tx, &r.email, &r.client, now)
            .await
            .map_err(store)?;
        let after = settle(before, now);
        Self::store_counters(&r.email, &r.client, &after, now, &self.settings)
            .run(&mut tx)
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)
    }
}

#[async_trait]
impl LoginAttempts for PostgresLoginAttempts {
    async fn begin(&self, email: &Email, client: &ClientAddress) -> Result<Attempt, StoreError> {
        let now = self.now();
        let mut reservation = Reservation::new(email, client, now);
        let s = self.settings;
        if !s.enabled {
            return Ok(Attempt::Admitted(reservation));
        }
        let keys = Self::keys(Some(email), client);
        let _held = self.gate.enter(&keys).await;
        let mut tx = self.pool.begin().await.map_err(store)?;
        Self::lock(&mut tx, &keys).await.map_err(store)?;
        let counters = Self::load(&mut tx, email, client, now)
            .await
            .map_err(store)?;
        if let Some(retry_after_secs) = counters.refusal(now, &s) {
            // Nothing was written: the transaction only held the locks.
            tx.rollback().await.map_err(store)?;
            return Ok(Attempt::Refused { retry_after_secs });
        }
        let (after, locks) = counters.admitted(now, &s);
        Self::store_counters(email, client, &after, now, &s)
            .run(&mut tx)
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)?;
        reservation.locks = locks;
        Ok(Attempt::Admitted(reservation))
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
        let keys = Self::keys(None, client);
        let _held = self.gate.enter(&keys).await;
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(store)?;
        Self::lock(&mut tx, &keys).await.map_err(store)?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT kind, window_start, failures, locked_until, minute, count \
             FROM login_throttle WHERE kind = $1 AND email = '' AND client = $2",
        )
        .bind(REGISTRATIONS)
        .bind(client.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store)?;
        let mut rate = row.as_ref().map(Row::rate).unwrap_or_default();
        let decision = rate.admit(now, self.settings.register_max_per_minute);
        if decision == ThrottleDecision::Allow {
            let mut w = Writes::default();
            w.rate(REGISTRATIONS, "", client.as_str(), rate);
            w.run(&mut tx).await.map_err(store)?;
        }
        tx.commit().await.map_err(store)?;
        Ok(decision)
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        self.gate.sweep();
        // A row past its expiry changes no decision: a reader holding its lock while it goes
        // judges it as it would a missing one.
        sqlx::query("DELETE FROM login_throttle WHERE expires_at <= $1")
            .bind(to_db(self.now().saturating_sub(SWEEP_SKEW_SECS)))
            .execute(&self.pool)
            .await
            .map_err(store)?;
        Ok(())
    }
}

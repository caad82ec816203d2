//! A flood of logins from one client against the PostgreSQL throttle must not occupy the
//! database pool every other request needs: attempts that share a key queue in the process,
//! so one instance never has more than one transaction waiting on the same advisory lock.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jwt_auth::adapters::outbound::clock::ManualClock;
use jwt_auth::adapters::outbound::db::{Database, PoolSettings};
use jwt_auth::domain::{Attempt, ClientAddress, Email, ThrottleSettings, Timestamp};

use crate::db::test_pool;
use crate::helpers::*;

const FLOOD: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn a_login_flood_from_one_client_waits_in_process_not_on_the_database() {
    let Some(test_db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    // The instance under attack: a small pool, as in production (10 by default).
    let db = Database::connect(
        &test_db.url,
        PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_800_000_000)));
    let settings = ThrottleSettings::default();
    let throttle = db
        .login_attempts(settings, clock)
        .expect("PostgreSQL throttle");
    let attacker = ClientAddress::from_ip([198, 51, 100, 7].into());

    // Watches the database for transactions of this database waiting on an advisory lock.
    let done = Arc::new(AtomicBool::new(false));
    let most_waiting = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (done, most) = (done.clone(), most_waiting.clone());
        let url = test_db.url.clone();
        tokio::spawn(async move {
            let watch = Database::connect(&url, test_pool()).await.unwrap();
            while !done.load(Ordering::SeqCst) {
                let n = watch
                    .query_i64(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                         AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                    )
                    .await
                    .unwrap();
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let (t, c) = (throttle.clone(), attacker.clone());
        flood.spawn(async move {
            let e = Email::parse(&format!("guess{i}@example.com")).unwrap();
            t.begin(&e, &c).await
        });
    }
    // Meanwhile other clients log in; none of them may fail for want of a connection.
    let mut others = tokio::task::JoinSet::new();
    for i in 0..20u8 {
        let t = throttle.clone();
        others.spawn(async move {
            let c = ClientAddress::from_ip([203, 0, 113, i].into());
            let e = Email::parse(&format!("user{i}@example.com")).unwrap();
            t.begin(&e, &c).await
        });
    }
    let mut admitted = 0;
    while let Some(r) = flood.join_next().await {
        if let Attempt::Admitted(_) = r.unwrap().expect("the flood is judged, not an error") {
            admitted += 1;
        }
    }
    while let Some(r) = others.join_next().await {
        assert!(matches!(
            r.unwrap().expect("other clients get a connection"),
            Attempt::Admitted(_)
        ));
    }
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    assert_eq!(
        admitted, settings.client_max_failures as usize,
        "the client's budget still holds exactly under the flood"
    );
    assert_eq!(
        most_waiting.load(Ordering::SeqCst),
        0,
        "no transaction of this instance waited on another's advisory lock"
    );
}

/// Each instance judges rows by its own clock; one running ahead must not sweep away a lock
/// that is still in force for the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn an_instance_whose_clock_runs_ahead_does_not_sweep_live_locks() {
    let Some(test_db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    // A short window, so the rows' expiry falls within the other instance's lead.
    let settings = ThrottleSettings {
        window_secs: 60,
        ..ThrottleSettings::default()
    };
    let t0 = 1_800_000_000;
    let on_time = Arc::new(ManualClock::new(Timestamp::from_unix(t0)));
    let ahead = Arc::new(ManualClock::new(Timestamp::from_unix(t0 + 120)));
    let a = test_db
        .db
        .login_attempts(settings, on_time.clone())
        .unwrap();
    let b = test_db.db.login_attempts(settings, ahead).unwrap();
    let (e, c) = (
        Email::parse("victim@example.com").unwrap(),
        ClientAddress::from_ip([198, 51, 100, 9].into()),
    );
    for _ in 0..settings.pair_max_failures {
        let Attempt::Admitted(r) = a.begin(&e, &c).await.unwrap() else {
            panic!("within the budget");
        };
        a.failed(r).await.unwrap();
    }
    // The lock runs `lockout_secs` (60 s) on `a`'s clock; `b` is two minutes ahead.
    on_time.advance(30);
    b.sweep().await.unwrap();
    assert!(
        matches!(a.begin(&e, &c).await.unwrap(), Attempt::Refused { .. }),
        "the pair is still locked for the instance on time"
    );
}

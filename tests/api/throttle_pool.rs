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

//! The login throttle under attack: concurrent bursts, lockouts used as a weapon, address
//! buckets and the proxy headers that name the client, and the sign-up rate.

use std::sync::Arc;

use jwt_auth::ports::Clock;
use jwt_auth::startup::{DEMO_EMAIL, DEMO_PASSWORD};
use serde_json::json;

use crate::helpers::*;

const XFF: [(&str, &str); 1] = [("TRUSTED_PROXY_HEADER", "X-Forwarded-For")];

/// A login with this `X-Forwarded-For` value.
async fn login_via(app: &TestApp, forwarded: &str, email: &str, password: &str) -> Resp {
    app.post("/auth/login")
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
}

/// `n` logins at once, each from its own task: (emails, forwarded-for) from `each(i)`.
/// Returns the statuses and how many password checks ran.
async fn burst(
    app: Arc<TestApp>,
    n: usize,
    each: impl Fn(usize) -> (String, String),
) -> (Vec<u16>, usize) {
    let (_, before) = app.hasher.calls();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = app.clone();
            let (email, forwarded) = each(i);
            tokio::spawn(async move { login_via(&app, &forwarded, &email, "wrong").await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let (_, after) = app.hasher.calls();
    (statuses, after - before)
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_for_one_account_runs_at_most_the_failure_limit_of_checks() {
    let app = Arc::new(spawn_app().await);
    let max = app.settings.login_max_failures as usize;
    let (statuses, checks) = burst(app, 40, |_| (DEMO_EMAIL.into(), "198.51.100.1".into())).await;
    assert!(
        checks <= max,
        "{checks} password checks for a limit of {max}"
    );
    assert_eq!(count(&statuses, 401), checks, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 40 - checks, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_from_one_client_runs_at_most_the_client_limits_of_checks() {
    // Failures across many accounts: the per-client failure budget.
    let app = Arc::new(spawn_app_with(&XFF).await);
    let max = app.settings.login_client_max_failures as usize;
    let (statuses, checks) = burst(app, 40, |i| {
        (format!("user{i}@test.com"), "198.51.100.1".into())
    })
    .await;
    assert!(
        checks <= max,
        "{checks} password checks for a limit of {max}"
    );
    assert_eq!(count(&statuses, 429), 40 - checks, "{statuses:?}");

    // Attempts of any outcome: the per-client rate.
    let app = Arc::new(
        spawn_app_with(&[
            XFF[0],
            ("LOGIN_CLIENT_MAX_PER_MINUTE", "10"),
            ("LOGIN_CLIENT_MAX_FAILURES", "1000"),
        ])
        .await,
    );
    let (statuses, checks) = burst(app, 40, |i| {
        (format!("user{i}@test.com"), "198.51.100.1".into())
    })
    .await;
    assert!(checks <= 10, "{checks} password checks for a rate of 10");
    assert_eq!(count(&statuses, 429), 40 - checks, "{statuses:?}");
}

#[tokio::test]
async fn a_victim_logs_in_from_a_clean_client_while_the_attacker_is_locked_out() {
    let app = spawn_app_with(&XFF).await;
    let attacker = "203.0.113.66";
    for _ in 0..app.settings.login_max_failures {
        assert_eq!(
            login_via(&app, attacker, DEMO_EMAIL, "guess").await.status,
            401
        );
    }
    login_via(&app, attacker, DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");
    // Even the right password does not open the pair that failed.
    login_via(&app, attacker, DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(429, "too_many_requests");
    assert_eq!(
        login_via(&app, "198.51.100.7", DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .status,
        200,
        "the owner, from a client that did not fail"
    );
}

#[tokio::test]
async fn one_address_failing_across_many_accounts_is_slowed_not_locked() {
    let app = spawn_app_with(&XFF).await;
    let office = "198.51.100.1";
    for i in 0..app.settings.login_client_max_failures {
        let email = format!("user{i}@test.com");
        assert_eq!(login_via(&app, office, &email, "guess").await.status, 401);
    }
    // The attacker behind the address keeps going, honouring Retry-After: the wait stays
    // bounded instead of growing into a lock, and the rate stays bounded too.
    let mut admitted = 0;
    for i in 0..40 {
        let resp = login_via(&app, office, &format!("more{i}@test.com"), "guess").await;
        match resp.status {
            401 => admitted += 1,
            429 => {
                let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "a slowdown, not a lock: {wait}");
                app.clock.advance(wait);
            }
            other => panic!("unexpected {other}"),
        }
    }
    let minutes = (app.clock.now().unix() - T0).div_ceil(60).max(1);
    let per_minute = u64::from(app.settings.login_slowed_max_per_minute);
    assert!(
        admitted <= minutes * per_minute,
        "{admitted} guesses in {minutes} min"
    );
    // Someone else behind the same address gets in at the next slot.
    let resp = login_via(&app, office, DEMO_EMAIL, DEMO_PASSWORD).await;
    if resp.status == 429 {
        app.clock
            .advance(resp.header("retry-after").unwrap().parse().unwrap());
    }
    assert_eq!(
        login_via(&app, office, DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_account_failing_from_many_clients_is_slowed_for_all_not_locked() {
    let app = spawn_app_with(&[XFF[0], ("LOGIN_ACCOUNT_MAX_FAILURES", "12")]).await;
    for i in 0..12 {
        // Four guesses from each of three addresses: no pair reaches its lock.
        let ip = format!("203.0.113.{}", i / 4);
        assert_eq!(login_via(&app, &ip, DEMO_EMAIL, "guess").await.status, 401);
    }
    // Every client, even one that never failed, is held to the slowed rate on the account,
    // each on a budget of its own.
    let slowed = app.settings.login_slowed_max_per_minute;
    let now = app.clock.now().unix();
    app.clock.advance(60 - now % 60);
    for _ in 0..slowed {
        assert_eq!(
            login_via(&app, "198.51.100.7", DEMO_EMAIL, DEMO_PASSWORD)
                .await
                .status,
            200
        );
    }
    let resp = login_via(&app, "198.51.100.7", DEMO_EMAIL, DEMO_PASSWORD).await;
    resp.assert_error(429, "too_many_requests");
    let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "slowed, not locked: {wait}");
    app.clock.advance(wait);
    assert_eq!(
        login_via(&app, "198.51.100.7", DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn guessers_spending_a_slowed_accounts_rate_do_not_lock_the_owner_out() {
    let app = spawn_app_with(&XFF).await;
    // Twenty addresses, five wrong guesses each: the account ceiling of 100 failures.
    for client in 0..20 {
        let ip = format!("203.0.113.{client}");
        for _ in 0..5 {
            assert_eq!(login_via(&app, &ip, DEMO_EMAIL, "guess").await.status, 401);
        }
    }
    // The slowed rate spent from fresh addresses at the start of the minute.
    let now = app.clock.now().unix();
    app.clock.advance(60 - now % 60);
    for client in 0..6 {
        let ip = format!("192.0.2.{client}");
        assert_eq!(login_via(&app, &ip, DEMO_EMAIL, "guess").await.status, 401);
    }
    assert_eq!(
        login_via(&app, "198.51.100.7", DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .status,
        200,
        "the owner, from an address of its own"
    );
}

#[tokio::test]
async fn addresses_in_one_ipv6_64_share_a_bucket_and_other_64s_do_not() {
    let app = spawn_app_with(&XFF).await;
    for i in 1..=app.settings.login_max_failures {
        let ip = format!("2001:db8:1:2::{i:x}");
        assert_eq!(login_via(&app, &ip, DEMO_EMAIL, "guess").await.status, 401);
    }
    login_via(
        &app,
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        DEMO_EMAIL,
        "guess",
    )
    .await
    .assert_error(429, "too_many_requests");
    assert_eq!(
        login_via(&app, "2001:db8:1:3::1", DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .status,
        200
    );

    // An IPv4-mapped IPv6 address is that IPv4 address; IPv4 neighbours are not one bucket.
    let app = spawn_app_with(&XFF).await;
    for _ in 0..app.settings.login_max_failures {
        let resp = login_via(&app, "::ffff:198.51.100.9", DEMO_EMAIL, "guess").await;
        assert_eq!(resp.status, 401);
    }
    login_via(&app, "198.51.100.9", DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");
    assert_eq!(
        login_via(&app, "198.51.100.10", DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_client_is_the_entry_our_proxy_wrote_never_one_the_client_wrote() {
    // hops = 1: the rightmost entry; whatever the client put before it changes nothing.
    let app = spawn_app_with(&XFF).await;
    for i in 0..app.settings.login_max_failures {
        let forwarded = format!("10.9.9.{i}, 203.0.113.66");
        assert_eq!(
            login_via(&app, &forwarded, DEMO_EMAIL, "guess")
                .await
                .status,
            401
        );
    }
    login_via(&app, "10.1.1.1, 203.0.113.66", DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");
    // An entry the proxy wrote with a port is still that address.
    login_via(&app, "10.1.1.1, 203.0.113.66:4711", DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");
    // Garbage at the trusted position is not skipped over to an entry the client wrote, nor
    // does it fall back to the proxy's address: it is one shared "unattributable" bucket.
    for _ in 0..app.settings.login_max_failures {
        let resp = login_via(&app, "203.0.113.66, not-an-ip", DEMO_EMAIL, "guess").await;
        assert_eq!(resp.status, 401);
    }
    login_via(&app, "203.0.113.99, not-an-ip-either", DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");

    // hops = 2: the second from the right (behind two proxies of ours).
    let app = spawn_app_with(&[XFF[0], ("TRUSTED_PROXY_HOPS", "2")]).await;
    for i in 0..app.settings.login_max_failures {
        let forwarded = format!("10.9.9.{i}, 203.0.113.66, 192.0.2.{i}");
        assert_eq!(
            login_via(&app, &forwarded, DEMO_EMAIL, "guess")
                .await
                .status,
            401
        );
    }
    login_via(&app, "203.0.113.66, 192.0.2.200", DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");
    assert_eq!(
        login_via(
            &app,
            "203.0.113.66, 203.0.113.67, 192.0.2.1",
            DEMO_EMAIL,
            DEMO_PASSWORD
        )
        .await
        .status,
        200
    );
    // Fewer entries than hops: the socket address, not the one entry there is.
    for i in 0..app.settings.login_max_failures {
        let resp = login_via(&app, &format!("198.51.100.{i}"), DEMO_EMAIL, "guess").await;
        assert_eq!(resp.status, 401);
    }
    login_via(&app, "198.51.100.200", DEMO_EMAIL, "guess")
        .await
        .assert_error(429, "too_many_requests");
}

#[tokio::test]
async fn the_standard_forwarded_header_names_the_client() {
    let app = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "Forwarded")]).await;
    let forwarded = |value: &str| {
        app.post("/auth/login")
            .header("forwarded", value)
            .json(&json!({ "email": DEMO_EMAIL, "password": "guess" }))
            .send()
    };
    for i in 0..app.settings.login_max_failures {
        let value = format!("for=10.0.0.{i};proto=https, for=\"[2001:db8::1]:4711\"");
        assert_eq!(forwarded(&value).await.status, 401);
    }
    // The same /64, spelled as the proxy may: quoted, with another host part, lower case key.
    forwarded("For=\"[2001:db8::2]\";by=192.0.2.1")
        .await
        .assert_error(429, "too_many_requests");
    forwarded("for=192.0.2.43")
        .await
        .assert_error(401, "invalid_credentials");
    // An obfuscated identifier names no address: the shared "unattributable" bucket.
    for _ in 1..app.settings.login_max_failures {
        assert_eq!(forwarded("for=_hidden").await.status, 401);
    }
    assert_eq!(forwarded("for=unknown").await.status, 401);
    forwarded("for=\"_other\"")
        .await
        .assert_error(429, "too_many_requests");
}

#[tokio::test]
async fn known_and_unknown_emails_see_the_same_status_sequence() {
    let app = spawn_app_with(&XFF).await;
    let mut sequences = Vec::new();
    for (email, ip) in [
        (DEMO_EMAIL, "203.0.113.1"),
        ("ghost@test.com", "203.0.113.2"),
    ] {
        let mut seq = Vec::new();
        for _ in 0..8 {
            let resp = login_via(&app, ip, email, "guess").await;
            seq.push((resp.status, resp.header("retry-after").map(str::to_owned)));
        }
        sequences.push(seq);
    }
    assert_eq!(sequences[0], sequences[1]);
    assert!(
        sequences[0].iter().any(|(s, _)| *s == 429),
        "{:?}",
        sequences[0]
    );
}

#[tokio::test]
async fn sign_up_is_rate_limited_per_client_before_hashing() {
    let app = spawn_app_with(&[XFF[0], ("REGISTER_CLIENT_MAX_PER_MINUTE", "3")]).await;
    let register = |ip: &'static str, i: u32| {
        app.post("/auth/register")
            .header("x-forwarded-for", ip)
            .json(&json!({ "email": format!("new{i}@example.com"), "password": "a long password" }))
            .send()
    };
    for i in 0..3 {
        assert_eq!(register("198.51.100.1", i).await.status, 201);
    }
    let (hashes, _) = app.hasher.calls();
    let refused = register("198.51.100.1", 3).await;
    refused.assert_error(429, "too_many_requests");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(app.hasher.calls().0, hashes, "refused before hashing");
    assert_eq!(register("198.51.100.2", 4).await.status, 201, "per client");
    app.clock.advance(wait);
    assert_eq!(
        register("198.51.100.1", 5).await.status,
        201,
        "a new minute"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_sign_up_burst_hashes_at_most_the_rate() {
    let app = Arc::new(spawn_app_with(&XFF).await);
    let max = app.settings.register_client_max_per_minute as usize;
    let (before, _) = app.hasher.calls();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post("/auth/register")
                    .header("x-forwarded-for", "198.51.100.1")
                    .json(&json!({ "email": format!("burst{i}@example.com"), "password": "a long password" }))
                    .send()
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let hashes = app.hasher.calls().0 - before;
    assert!(hashes <= max, "{hashes} hashes for a rate of {max}");
    assert_eq!(count(&statuses, 429), 40 - hashes, "{statuses:?}");
}

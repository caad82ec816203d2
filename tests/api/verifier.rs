//! The library's verifier against the real service over a socket: it verifies tokens with the
//! JWKS alone, refuses a logged-out session's token within a measured bound, keeps verifying
//! while the service is down, and catches up on revocations once it is back.

use std::time::{Duration, Instant};

use jwt_auth::config::Settings;
use jwt_auth::domain::{LogoutScope, RefreshToken, SigningAlgorithm};
use jwt_auth::startup::{Adapters, Application};
use jwt_auth::verifier::{Verifier, VerifierConfig, VerifyError};

use crate::helpers::{DEMO_EMAIL, DEMO_PASSWORD};

const POLL: Duration = Duration::from_millis(200);
/// With push the feed is polled this rarely (while the stream is down): a refusal sooner than
/// this came by the stream.
const PUSH_POLL: Duration = Duration::from_secs(2);

async fn login(http: &reqwest::Client, base: &str) -> (String, String) {
    let resp = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("refresh_token="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_owned(), cookie)
}

/// How long until `verify` refuses `token` as revoked (polling every 5 ms, at most 5 s).
async fn time_to_refusal(verifier: &Verifier, token: &str) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if matches!(verifier.verify(token), Err(VerifyError::Revoked)) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not refused within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_server_refuses_a_revoked_session_and_rides_out_an_outage() {
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
    ] {
        rides_out_an_outage(alg, false).await;
    }
}

/// As above, with the stream: a logout is refused well inside the (slow) poll interval, and a
/// stream that broke with the service reconnects and catches up from its cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_push_a_revoked_session_is_refused_within_tens_of_milliseconds() {
    let mut delays = Vec::new();
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
    ] {
        delays.extend(rides_out_an_outage(alg, true).await);
    }
    delays.sort();
    println!(
        "push: logout -> refused, {} runs: min {:?}, median {:?}, max {:?}",
        delays.len(),
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(
        delays[delays.len() - 1] <= Duration::from_millis(500),
        "{delays:?}"
    );
}

/// The logout -> refusal delays measured.
async fn rides_out_an_outage(alg: SigningAlgorithm, push: bool) -> Vec<Duration> {
    let poll = if push { PUSH_POLL } else { POLL };
    {
        let settings = Settings::from_pairs(&[
            ("PORT", "0"),
            ("BCRYPT_COST", "4"),
            ("JWT_ALGORITHM", alg.name()),
        ])
        .unwrap();
        let adapters = Adapters::in_memory(&settings).unwrap();
        let app = Application::build(&settings, &adapters).await.unwrap();
        let port = app.port();
        let streams = app.revocation_streams();
        let server = tokio::spawn(app.run_until_stopped());
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let verifier = Verifier::start(VerifierConfig {
            base_url: base.clone(),
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            algorithm: alg,
            poll_interval: poll,
            push,
            extra_root_pem: None,
            allow_plain_http: false,
            max_stale: None,
        })
        .await
        .unwrap();
        // The stream is opened in the background: a moment for it to connect.
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Logout: refused within one poll (plus a request), or by the stream at once.
        let mut delays = Vec::new();
        for _ in 0..if push { 5 } else { 1 } {
            let (token, cookie) = login(&http, &base).await;
            let claims = verifier.verify(&token).expect("a fresh token verifies");
            assert!(!claims.sid.is_empty());
            let (input, sig) = token.rsplit_once('.').unwrap();
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            let tampered = format!("{input}.{flipped}{}", &sig[1..]);
            assert!(verifier.verify(&tampered).is_err(), "a changed signature");
            let resp = http
                .post(format!("{base}/auth/logout"))
                .header("cookie", format!("refresh_token={cookie}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204);
            let delay = time_to_refusal(&verifier, &token).await;
            println!(
                "{} (push {push}): logout -> refused by the resource server after {delay:?}",
                alg.name()
            );
            assert!(delay <= Duration::from_secs(1), "{delay:?}");
            if push {
                assert!(delay < PUSH_POLL / 2, "came by the stream: {delay:?}");
            }
            delays.push(delay);
        }

        // The service goes down: tokens keep verifying from the cached keys.
        let (token2, cookie2) = login(&http, &base).await;
        streams.close();
        server.abort();
        let _ = server.await;
        tokio::time::sleep(POLL * 2).await;
        assert!(
            verifier.verify(&token2).is_ok(),
            "keeps verifying while the service is down"
        );
        // Meanwhile the session is revoked elsewhere (another instance, an operator).
        let hash = RefreshToken::parse(&cookie2).unwrap().hash();
        let now = jwt_auth::domain::Timestamp::from_unix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        let revoked = adapters
            .sessions
            .revoke_by_token(hash, LogoutScope::Local, now, 0)
            .await
            .unwrap()
            .revoked;
        assert_eq!(revoked, 1);
        tokio::time::sleep(POLL * 2).await;
        assert!(
            verifier.verify(&token2).is_ok(),
            "nothing to learn it from yet"
        );

        // Back on the same port and stores: the verifier catches up from its cursor.
        let mut again = settings.clone();
        again.port = port;
        let app = Application::build(&again, &adapters).await.unwrap();
        let server = tokio::spawn(app.run_until_stopped());
        let catch_up = time_to_refusal(&verifier, &token2).await;
        println!(
            "{} (push {push}): service back -> revocation caught up after {catch_up:?}",
            alg.name()
        );
        assert!(catch_up <= Duration::from_secs(2), "{catch_up:?}");
        server.abort();
        delays
    }
}

/// Attack: whoever can cut a verifier off from the auth service (a hostile network) must not
/// keep a withdrawn key or an unseen revocation valid for good. Past `max_stale` without
/// reaching the service every token is refused as `Stale`; once it is reached again tokens
/// verify again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_off_for_longer_than_max_stale_the_verifier_refuses_every_token() {
    let settings = Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_ALGORITHM", "EdDSA"),
    ])
    .unwrap();
    let adapters = Adapters::in_memory(&settings).unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let port = app.port();
    let streams = app.revocation_streams();
    let server = tokio::spawn(app.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    let mut config = VerifierConfig::new(
        base.clone(),
        settings.jwt_issuer.clone(),
        settings.jwt_audience.clone(),
        SigningAlgorithm::EdDSA,
    );
    config.push = false;
    config.poll_interval = POLL;
    // Shorter than a poll and its timeout: raised to that, or a reachable service would look
    // stale between two polls.
    config.max_stale = Some(Duration::from_millis(1));
    let max_stale = POLL + Duration::from_secs(5);
    let verifier = Verifier::start(config).await.unwrap();
    let (token, _) = login(&reqwest::Client::new(), &base).await;
    assert!(verifier.verify(&token).is_ok());

    streams.close();
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        verifier.verify(&token).is_ok(),
        "a short outage is ridden out"
    );
    let cut_off = Instant::now();
    while !matches!(verifier.verify(&token), Err(VerifyError::Stale)) {
        assert!(cut_off.elapsed() < max_stale, "never went stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        verifier.stale_for() > max_stale,
        "{:?}",
        verifier.stale_for()
    );

    let mut again = settings.clone();
    again.port = port;
    let app = Application::build(&again, &adapters).await.unwrap();
    let server = tokio::spawn(app.run_until_stopped());
    let back = Instant::now();
    while verifier.verify(&token).is_err() {
        assert!(back.elapsed() < Duration::from_secs(3), "not reached again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
}

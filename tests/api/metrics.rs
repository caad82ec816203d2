//! Prometheus metrics over real sockets: `/metrics` only on `METRICS_ADDR`, never on the
//! public port; counters that move with real requests; label values from closed sets, so a
//! scan of random paths or a login with any email adds no series; and the text parsed by the
//! Prometheus Python client's own parser.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jwt_auth::adapters::outbound::metrics::Metrics;
use jwt_auth::config::Settings;
use jwt_auth::ports::{RefreshStore, UserRepo};
use jwt_auth::startup::{Adapters, Application};
use serde_json::json;

use crate::helpers::{Store, Switchable, DEMO_EMAIL, DEMO_PASSWORD, TEST_SECRET};

/// A served app (public and metrics listeners) and a client for both.
struct Served {
    base: String,
    metrics: Option<String>,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn settings(overrides: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ];
    pairs.extend_from_slice(overrides);
    Settings::from_pairs(&pairs).unwrap()
}

async fn serve(settings: &Settings, adapters: &Adapters) -> Served {
    let app = Application::build(settings, adapters).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics = app
        .metrics_port()
        .map(|p| format!("http://127.0.0.1:{p}/metrics"));
    Served {
        base,
        metrics,
        http: reqwest::Client::new(),
        server: tokio::spawn(app.run_until_stopped()),
    }
}

/// The service as `main` builds it (`Adapters::from_settings`, in memory).
async fn start(overrides: &[(&str, &str)]) -> Served {
    let settings = settings(overrides);
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    serve(&settings, &adapters).await
}

impl Served {
    async fn scrape(&self) -> Scrape {
        let url = self.metrics.as_ref().expect("METRICS_ADDR is set");
        let resp = self.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        Scrape(resp.text().await.unwrap())
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/auth/login", self.base))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    }

    async fn refresh(&self, cookie: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/auth/refresh", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }
}

/// `refresh_token=...` from a response's `Set-Cookie`.
fn refresh_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("refresh_token="))
        .and_then(|v| v.split(';').next())
        .expect("a refresh cookie")
        .to_owned()
}

/// One scrape's text.
struct Scrape(String);

impl Scrape {
    /// The value of the sample written exactly `series` (name and labels as rendered), 0 when
    /// absent.
    fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// The sum of every series of `name`.
    fn total(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn series_of(&self, name: &str) -> usize {
        self.0
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .count()
    }
}

const LOGIN_200: &str = r#"http_requests_total{operation="login",status="200"}"#;
const LOGIN_401: &str = r#"http_requests_total{operation="login",status="401"}"#;

#[tokio::test]
async fn counters_move_with_real_requests_scraped_over_the_metrics_listener() {
    let app = start(&[]).await;
    let before = app.scrape().await;

    let ok = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    assert_eq!(ok.status(), 200);
    let cookie = refresh_cookie(&ok);
    let token = ok.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.login(DEMO_EMAIL, "wrong password").await.status(), 401);
    let me = app
        .http
        .get(format!("{}/auth/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // The same cookie twice within the grace window: rotated, then the same successor again.
    assert_eq!(app.refresh(&cookie).await.status(), 200);
    assert_eq!(app.refresh(&cookie).await.status(), 200);
    assert_eq!(
        app.refresh("refresh_token=never-issued").await.status(),
        401
    );

    let after = app.scrape().await;
    let delta = |series: &str| after.value(series) - before.value(series);
    assert_eq!(delta(LOGIN_200), 1.0, "{}", after.0);
    assert_eq!(delta(LOGIN_401), 1.0);
    assert_eq!(
        delta(r#"http_requests_total{operation="me",status="200"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"http_requests_total{operation="refresh",status="200"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"http_request_duration_seconds_count{operation="refresh"}"#),
        3.0
    );
    assert_eq!(delta(r#"auth_logins_total{outcome="ok"}"#), 1.0);
    assert_eq!(
        delta(r#"auth_logins_total{outcome="wrong_credentials"}"#),
        1.0
    );
    assert_eq!(delta(r#"auth_logins_total{outcome="throttled"}"#), 0.0);
    assert_eq!(delta(r#"auth_refreshes_total{outcome="rotated"}"#), 1.0);
    assert_eq!(delta(r#"auth_refreshes_total{outcome="grace"}"#), 1.0);
    assert_eq!(delta(r#"auth_refreshes_total{outcome="unknown"}"#), 1.0);
    assert_eq!(
        delta(
            r#"store_operation_duration_seconds_count{store="sessions",op="live_session_user",result="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        delta(
            r#"store_operation_duration_seconds_count{store="sessions",op="rotate",result="ok"}"#
        ),
        2.0
    );
    // Two logins verified a password on the hashing pool, which waited for nothing else.
    assert_eq!(delta("password_hash_wait_seconds_count"), 2.0);
    assert_eq!(after.value("password_hash_queue_depth"), 0.0);
    // Nothing that names a person or a client.
    for secret in [
        DEMO_EMAIL,
        "127.0.0.1",
        &token,
        cookie.trim_start_matches("refresh_token="),
    ] {
        assert!(!after.0.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test]
async fn a_replayed_refresh_token_and_logout_count_as_revocations_by_cause() {
    let app = start(&[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let before = app.scrape().await;
    let ok = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let cookie = refresh_cookie(&ok);
    assert_eq!(app.refresh(&cookie).await.status(), 200);
    assert_eq!(app.refresh(&cookie).await.status(), 401, "reused");
    let second = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let logout = app
        .http
        .post(format!("{}/auth/logout", app.base))
        .header("cookie", refresh_cookie(&second))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    let after = app.scrape().await;
    let delta = |series: &str| after.value(series) - before.value(series);
    assert_eq!(delta(r#"auth_refreshes_total{outcome="reused"}"#), 1.0);
    assert_eq!(
        delta(r#"auth_session_revocations_total{cause="reuse"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"auth_session_revocations_total{cause="logout"}"#),
        1.0
    );
    assert_eq!(delta(r#"auth_logins_total{outcome="ok"}"#), 2.0);
}

#[tokio::test]
async fn throttled_and_disabled_logins_count_under_their_own_outcome() {
    let settings = settings(&[("LOGIN_MAX_FAILURES", "1")]);
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    let app = serve(&settings, &adapters).await;
    assert_eq!(app.login(DEMO_EMAIL, "wrong").await.status(), 401);
    assert_eq!(app.login(DEMO_EMAIL, "wrong").await.status(), 429);
    let other = "someone@example.com";
    let created = app
        .http
        .post(format!("{}/auth/register", app.base))
        .json(&json!({ "email": other, "password": "a long passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    adapters
        .users
        .set_disabled(&jwt_auth::domain::Email::parse(other).unwrap(), true)
        .await
        .unwrap();
    assert_eq!(app.login(other, "a long passphrase").await.status(), 401);
    let after = app.scrape().await;
    assert_eq!(
        after.value(r#"auth_logins_total{outcome="wrong_credentials"}"#),
        1.0
    );
    assert_eq!(
        after.value(r#"auth_logins_total{outcome="throttled"}"#),
        1.0
    );
    assert_eq!(after.value(r#"auth_logins_total{outcome="disabled"}"#), 1.0);
    assert_eq!(after.value(r#"auth_logins_total{outcome="ok"}"#), 0.0);
    assert_eq!(
        after.value(r#"http_requests_total{operation="login",status="429"}"#),
        1.0
    );
}

#[tokio::test]
async fn a_thousand_random_paths_and_emails_add_no_series() {
    let app = start(&[]).await;
    // Every status the scan will meet, seen once, so only new label values could add series.
    let _ = app.login("x@example.com", "wrong").await;
    let _ = app.http.get(format!("{}/nothing", app.base)).send().await;
    let before = app.scrape().await;
    let scans = (0..1000).map(|i| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            let path = format!("/{}/{i}?q={}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
            let resp = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(resp.status(), 404);
        }
    });
    let logins = (0..50).map(|i| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            http.post(format!("{base}/auth/login"))
                .json(&json!({ "email": format!("u{i}-{}@example.com", uuid::Uuid::new_v4()), "password": "x" }))
                .send()
                .await
                .unwrap();
        }
    });
    futures_join(scans).await;
    futures_join(logins).await;
    let after = app.scrape().await;
    // The logins meet the throttle: one more status of one operation, at most.
    assert!(
        after.series_of("http_requests_total") <= before.series_of("http_requests_total") + 1,
        "{}",
        after.0
    );
    for name in [
        "http_request_duration_seconds_count",
        "auth_logins_total",
        "store_operation_duration_seconds_count",
    ] {
        assert_eq!(
            after.series_of(name),
            before.series_of(name),
            "{name} grew new series:\n{}",
            after.0
        );
    }
    assert_eq!(
        after.value(r#"http_requests_total{operation="unmatched",status="404"}"#)
            - before.value(r#"http_requests_total{operation="unmatched",status="404"}"#),
        1000.0
    );
    assert!(!after.0.contains("example.com"));
}

/// Runs the futures 50 at a time, as a scanner would, without a thousand sockets at once.
async fn futures_join<F>(all: impl Iterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for f in all {
        if set.len() >= 50 {
            set.join_next().await.unwrap().unwrap();
        }
        set.spawn(f);
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

#[tokio::test]
async fn the_public_port_has_no_metrics_and_the_metrics_port_nothing_else() {
    let app = start(&[]).await;
    let public = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let url = app.metrics.clone().unwrap();
    let other = app
        .http
        .get(url.replace("/metrics", "/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let post = app.http.post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    // Scrapes are not requests of the service: only the public 404 above was counted.
    let first = app.scrape().await;
    let second = app.scrape().await;
    assert_eq!(first.total("http_requests_total"), 1.0, "{}", first.0);
    assert_eq!(second.total("http_requests_total"), 1.0);
}

#[tokio::test]
async fn without_metrics_addr_nothing_is_opened_or_recorded() {
    let settings = Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ])
    .unwrap();
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    assert!(adapters.metrics.is_none(), "no recorder");
    let app = serve(&settings, &adapters).await;
    assert!(app.metrics.is_none(), "no metrics listener");
    let public = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    // An unusable address is refused by name rather than ignored.
    let err = Settings::from_pairs(&[("METRICS_ADDR", "localhost")]).unwrap_err();
    assert!(err.to_string().contains("METRICS_ADDR"), "{err}");
    let empty = Settings::from_pairs(&[("METRICS_ADDR", "")]).unwrap();
    assert_eq!(empty.metrics_socket(), Ok(None));
}

#[tokio::test]
async fn a_store_outage_is_counted_as_unavailable() {
    let settings = settings(&[]);
    let users = jwt_auth::adapters::outbound::memory::InMemoryUserRepo::new();
    let sessions: Arc<dyn RefreshStore> =
        Arc::new(jwt_auth::adapters::outbound::memory::InMemoryRefreshStore::new(&users));
    let sessions = Arc::new(Switchable::new(sessions));
    let users: Arc<dyn UserRepo> = Arc::new(users);
    let adapters = Adapters::with_stores(&settings, users, sessions.clone()).unwrap();
    let app = serve(&settings, &adapters).await;
    let ok = app.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let token = ok.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sessions.set_down(true);
    let me = app
        .http
        .get(format!("{}/auth/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 503);
    let after = app.scrape().await;
    assert_eq!(
        after.value(
            r#"store_operation_duration_seconds_count{store="sessions",op="live_session_user",result="unavailable"}"#
        ),
        1.0,
        "{}",
        after.0
    );
    assert_eq!(
        after.value(r#"http_requests_total{operation="me",status="503"}"#),
        1.0
    );
}

#[tokio::test]
async fn the_hashing_queue_depth_shows_waiting_hashes() {
    // One hashing thread and a slow cost: the second and third sign-ups wait.
    let app = start(&[("BCRYPT_COST", "12"), ("LOGIN_CONCURRENCY", "1")]).await;
    let register = |n: u32| {
        let (http, base) = (app.http.clone(), app.base.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/auth/register"))
                .json(&json!({ "email": format!("q{n}@example.com"), "password": "a long passphrase" }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let running: Vec<_> = (0..3).map(register).collect();
    let mut deepest = 0.0_f64;
    for _ in 0..40 {
        deepest = deepest.max(app.scrape().await.value("password_hash_queue_depth"));
        if deepest >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(deepest >= 1.0, "a waiting hash was seen in the queue");
    for r in running {
        assert_eq!(r.await.unwrap(), 201);
    }
    let after = app.scrape().await;
    assert_eq!(after.value("password_hash_queue_depth"), 0.0);
    assert!(after.value("password_hash_wait_seconds_count") >= 3.0);
}

#[tokio::test]
async fn live_sessions_are_counted_on_a_timer() {
    let app = start(&[("SESSION_PURGE_INTERVAL_SECS", "1")]).await;
    for _ in 0..2 {
        assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status(), 200);
    }
    let mut live = 0.0;
    for _ in 0..30 {
        live = app.scrape().await.value("auth_sessions_live");
        if live == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(live, 2.0);
}

/// The scrape parsed by the Prometheus Python client's own text parser
/// (`prometheus_client.parser`), with the counters read back from what it parsed.
#[tokio::test]
#[ignore = "needs python3 with the prometheus_client package; .ci/run runs it"]
async fn the_prometheus_python_client_parses_the_scrape() {
    let app = start(&[]).await;
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status(), 200);
    assert_eq!(app.login(DEMO_EMAIL, "wrong").await.status(), 401);
    let text = app.scrape().await.0;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/parse_metrics.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (CI installs it with the prometheus_client package)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the prometheus_client package is missing: `pip install prometheus_client` ({stderr})"
    );
    assert!(
        out.status.success(),
        "the parser refused the scrape: {stderr}\n{text}"
    );
    let samples: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: HashMap<&str, &str> = samples
        .iter()
        .map(|s| (s["family"].as_str().unwrap(), s["type"].as_str().unwrap()))
        .collect();
    // The parser names a counter's family without `_total`.
    assert_eq!(types.get("http_requests"), Some(&"counter"), "{types:?}");
    assert_eq!(types.get("auth_logins"), Some(&"counter"));
    assert_eq!(
        types.get("http_request_duration_seconds"),
        Some(&"histogram")
    );
    assert_eq!(
        types.get("store_operation_duration_seconds"),
        Some(&"histogram")
    );
    assert_eq!(types.get("password_hash_queue_depth"), Some(&"gauge"));
    let value = |name: &str, labels: serde_json::Value| {
        samples
            .iter()
            .find(|s| s["name"] == name && s["labels"] == labels)
            .and_then(|s| s["value"].as_f64())
    };
    assert_eq!(
        value(
            "http_requests_total",
            json!({"operation": "login", "status": "200"})
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "http_requests_total",
            json!({"operation": "login", "status": "401"})
        ),
        Some(1.0)
    );
    assert_eq!(
        value("auth_logins_total", json!({"outcome": "ok"})),
        Some(1.0)
    );
    assert_eq!(
        value("auth_logins_total", json!({"outcome": "wrong_credentials"})),
        Some(1.0)
    );
    assert_eq!(
        value(
            "http_request_duration_seconds_count",
            json!({"operation": "login"})
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            "http_request_duration_seconds_bucket",
            json!({"operation": "login", "le": "+Inf"})
        ),
        Some(2.0)
    );
}

/// `count_live_sessions` on every store: live ones only, not revoked or ended.
async fn live_sessions_are_counted_by_the_store(store: Store) {
    let Some(app) = crate::helpers::spawn_app_on(store).await else {
        return;
    };
    let now = || app.clock.now();
    use jwt_auth::ports::Clock as _;
    assert_eq!(app.sessions.count_live_sessions(now()).await.unwrap(), 0);
    let first = app.login_demo().await;
    let _second = app.login_demo().await;
    assert_eq!(app.sessions.count_live_sessions(now()).await.unwrap(), 2);
    let cookie = first.refresh_cookie().unwrap();
    assert_eq!(app.logout(Some(&cookie)).await.status, 204);
    assert_eq!(app.sessions.count_live_sessions(now()).await.unwrap(), 1);
    app.clock
        .advance(app.settings.refresh_token_expires_days * 86_400 + 1);
    assert_eq!(app.sessions.count_live_sessions(now()).await.unwrap(), 0);
}

on_every_store!(live_sessions_are_counted_by_the_store);

#[test]
fn metrics_of_two_apps_in_one_process_are_apart() {
    let (a, b) = (Metrics::new(), Metrics::new());
    use jwt_auth::ports::SecurityEvents as _;
    a.refresh_outcome(jwt_auth::domain::RefreshOutcome::Rotated);
    assert!(a
        .render()
        .contains(r#"auth_refreshes_total{outcome="rotated"} 1"#));
    assert!(b
        .render()
        .contains(r#"auth_refreshes_total{outcome="rotated"} 0"#));
}

//! Load benchmark: the release service against a bare-poem floor, in one run.
//!
//! `cargo bench --bench load` (full run, ~2 minutes) or `cargo bench --bench load -- --smoke`
//! (a few seconds, what CI runs). Environment: `LOAD_SECS` (per scenario, default 10),
//! `LOAD_CONNECTIONS` (default 32), `BENCH_POSTGRES_URL` (adds the refresh scenario on a fresh
//! PostgreSQL database), `BENCH_SESSIONS` (memory test size, default 1,000,000),
//! `LOAD_ONLY=db` (only the floor and the database refresh scenarios), `LOAD_ONLY=metrics` (the
//! floor, then `/auth/me` and refresh without and with `METRICS_ADDR`), `BENCH_BASELINE_BIN`
//! (another build of the service, e.g. the previous release, loaded with the same `/auth/me` and
//! refresh scenarios in the same run).
//!
//! It starts `target/release/jwt-auth` (in-memory stores) and a floor server (this binary with
//! `--floor`, answering a constant JSON body the size of `/auth/me`'s), loads both over
//! loopback with keep-alive HTTP/1.1 connections, and prints requests/s, p50, p99, errors and
//! the ratio to the floor for every scenario.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const ME_BODY: &str = r#"{"id":"3112e4d0-a128-40e2-bd20-0e1b2f22ffb0","email":"jywan@test.com"}"#;
const LOGIN_BODY: &str = r#"{"email":"jywan@test.com","password":"test"}"#;
const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(port) = flag("--floor") {
        return floor_server(port.parse().expect("--floor PORT"));
    }
    if let Some(n) = flag("--memory") {
        return memory_child(n.parse().expect("--memory N"));
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(smoke));
}

// ---------------------------------------------------------------- floor server (child process)

fn floor_server(port: u16) {
    use poem::{get, handler, listener::TcpListener, Route, Server};
    #[handler]
    fn floor() -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(ME_BODY)
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = Route::new().at("/floor", get(floor));
        Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
            .run(app)
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------- memory (child process)

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory_child(n: usize) {
    use jwt_auth::adapters::outbound::memory::{InMemoryRefreshStore, InMemoryUserRepo};
    use jwt_auth::domain::{
        ClientAddress, Email, PasswordHash, RefreshToken, Session, SessionId, SessionOrigin,
        Timestamp, User, UserId,
    };
    use jwt_auth::ports::{RefreshStore, UserRepo};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let repo = InMemoryUserRepo::new();
    let store = InMemoryRefreshStore::new(&repo);
    let users: Vec<UserId> = (0..1000).map(|_| UserId::new_random()).collect();
    // Sessions are stored only for existing, enabled accounts.
    rt.block_on(async {
        for (i, id) in users.iter().enumerate() {
            repo.create(User {
                id: *id,
                email: Email::parse(&format!("bench{i}@example.com")).unwrap(),
                password_hash: PasswordHash::new("$2b$04$bench".into()),
                disabled: false,
                created_at: Timestamp::from_unix(1_800_000_000),
            })
            .await
            .unwrap();
        }
    });
    // No user agent: what a session costs by itself (a login's origin adds its text).
    let origin = SessionOrigin {
        user_agent: None,
        client: ClientAddress::unknown(),
    };
    let before = rss_bytes();
    rt.block_on(async {
        for i in 0..n {
            let session = Session {
                id: SessionId::new_random(),
                user_id: users[i % users.len()],
                created_at: Timestamp::from_unix(1_800_000_000),
                expires_at: Timestamp::from_unix(1_800_000_000 + 30 * 86_400),
                idle_expires_at: None,
            };
            assert!(store
                .create_session(
                    &session,
                    RefreshToken::generate().hash(),
                    &origin,
                    usize::MAX
                )
                .await
                .unwrap());
        }
    });
    let after = rss_bytes();
    let (sessions, tokens) = store.counts();
    println!("{sessions} {tokens} {before} {after}");
}

// ---------------------------------------------------------------- load generator

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Floor,
    Me,
    Refresh,
    Login,
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

fn request(kind: Kind, token: &str, cookie: &str) -> Request<Full<Bytes>> {
    let b = Request::builder().header("host", "127.0.0.1");
    match kind {
        Kind::Floor => b.uri("/floor").body(Full::default()),
        Kind::Me => b
            .uri("/auth/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default()),
        Kind::Refresh => b
            .method(Method::POST)
            .uri("/auth/refresh")
            .header("cookie", format!("refresh_token={cookie}"))
            .body(Full::default()),
        Kind::Login => b
            .method(Method::POST)
            .uri("/auth/login")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(LOGIN_BODY.as_bytes()))),
    }
    .unwrap()
}

fn set_cookie_value(resp: &hyper::Response<hyper::body::Incoming>) -> Option<String> {
    resp.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?.strip_prefix("refresh_token=")?;
        Some(v.split(';').next()?.to_owned())
    })
}

/// One connection per client; each client sends requests back to back until `until`.
/// `cookies` gives each refresh client its own session.
async fn load(
    addr: SocketAddr,
    kind: Kind,
    conns: usize,
    dur: Duration,
    token: &str,
    cookies: Vec<String>,
) -> Outcome {
    let token: Arc<str> = token.into();
    let started = Instant::now();
    let until = started + dur;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let token = token.clone();
        let mut cookie = cookies.get(i).cloned().unwrap_or_default();
        tasks.spawn(async move {
            let mut sender = connect(addr).await;
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            while Instant::now() < until {
                let req = request(kind, &token, &cookie);
                let t = Instant::now();
                if sender.ready().await.is_err() {
                    errors += 1;
                    sender = connect(addr).await;
                    continue;
                }
                let resp = match sender.send_request(req).await {
                    Ok(r) => r,
                    Err(_) => {
                        errors += 1;
                        sender = connect(addr).await;
                        continue;
                    }
                };
                let ok = resp.status().is_success();
                if kind == Kind::Refresh && ok {
                    if let Some(next) = set_cookie_value(&resp) {
                        cookie = next;
                    }
                }
                let _ = resp.into_body().collect().await;
                let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                if ok {
                    lat.push(us);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        });
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    while let Some(res) = tasks.join_next().await {
        let (lat, err) = res.unwrap();
        latencies_us.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Outcome {
        latencies_us,
        errors,
        elapsed,
    }
}

/// Logs in `n` times (sequentially over one connection) and returns the access token of the
/// first login and every refresh cookie.
async fn sessions(addr: SocketAddr, n: usize) -> (String, Vec<String>) {
    let mut sender = connect(addr).await;
    let mut token = String::new();
    let mut cookies = Vec::new();
    for _ in 0..n {
        // An HTTP/1 connection takes the next request only once it has finished the last.
        sender.ready().await.expect("connection ready");
        let resp = sender
            .send_request(request(Kind::Login, "", ""))
            .await
            .expect("login");
        assert_eq!(resp.status(), 200, "setup login failed");
        cookies.push(set_cookie_value(&resp).expect("refresh cookie"));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if token.is_empty() {
            token = json["access_token"].as_str().unwrap().to_owned();
        }
    }
    (token, cookies)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(addr: SocketAddr, path: &str) {
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect(addr).await {
            drop(stream);
            let mut s = connect(addr).await;
            let req = Request::builder()
                .uri(path)
                .header("host", "x")
                .body(Full::default())
                .unwrap();
            if s.send_request(req).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} did not come up");
}

/// The service settings of every run: throttling off so the login scenario measures bcrypt,
/// not the throttle; cost 12 as in production. Every client is the demo account, so the
/// per-account session cap is raised to hold one session per connection and scenario.
const SERVICE_ENV: &[(&str, &str)] = &[
    ("ENV", "dev"),
    ("BCRYPT_COST", "12"),
    ("LOGIN_THROTTLE_ENABLED", "false"),
    ("MAX_SESSIONS_PER_USER", "1000"),
    ("RUST_LOG", "warn"),
    ("JWT_SECRET_KEY", SECRET),
];

async fn start_service(database_url: Option<&str>) -> (Proc, SocketAddr) {
    start_binary(env!("CARGO_BIN_EXE_jwt-auth"), database_url).await
}

async fn start_binary(binary: &str, database_url: Option<&str>) -> (Proc, SocketAddr) {
    start_binary_env(binary, database_url, &[]).await
}

/// As `start_binary`, with settings added to (or overriding) `SERVICE_ENV`.
async fn start_binary_env(
    binary: &str,
    database_url: Option<&str>,
    extra: &[(&str, &str)],
) -> (Proc, SocketAddr) {
    let port = free_port();
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in SERVICE_ENV {
        cmd.env(k, v);
    }
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = Proc(cmd.spawn().expect("start jwt-auth"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(addr, "/health/live").await;
    (child, addr)
}

/// `/auth/me` under each key-pair algorithm (one token, as a client sends it: the service's
/// verified-token cache answers after the first request), and the local verification rate of
/// `jwt_auth::verifier` (no cache: a signature check each call) over `verifications` calls.
async fn algorithm_scenarios(
    conns: usize,
    dur: Duration,
    verifications: usize,
) -> Vec<(&'static str, Outcome, f64)> {
    let mut out = Vec::new();
    for alg in [
        jwt_auth::domain::SigningAlgorithm::EdDSA,
        jwt_auth::domain::SigningAlgorithm::ES256,
        jwt_auth::domain::SigningAlgorithm::RS256,
    ] {
        let (_svc, addr) = start_binary_env(
            env!("CARGO_BIN_EXE_jwt-auth"),
            None,
            &[("JWT_ALGORITHM", alg.name())],
        )
        .await;
        let (token, _) = sessions(addr, conns).await;
        let me = load(addr, Kind::Me, conns, dur, &token, vec![]).await;
        let verifier = jwt_auth::verifier::Verifier::start(jwt_auth::verifier::VerifierConfig {
            base_url: format!("http://{addr}"),
            issuer: "jwt-auth".into(),
            audience: "jwt-auth-clients".into(),
            algorithm: alg,
            poll_interval: Duration::from_secs(1),
        })
        .await
        .expect("verifier");
        let start = Instant::now();
        for _ in 0..verifications {
            verifier.verify(&token).expect("verifies");
        }
        let rate = verifications as f64 / start.elapsed().as_secs_f64();
        out.push((alg.name(), me, rate));
    }
    out
}

/// `/auth/me` and refresh without and with `METRICS_ADDR` (the recorder, the per-request
/// counting and the timed stores), alternated twice so drift of the shared machine hits both.
async fn metrics_scenarios(conns: usize, dur: Duration, floor: f64) {
    let mut ratios = Vec::new();
    for round in 1..=2 {
        let mut rates = Vec::new();
        for (label, extra) in [
            ("metrics off", &[][..]),
            ("METRICS_ADDR set", &[("METRICS_ADDR", "127.0.0.1:0")][..]),
        ] {
            let (_svc, addr) = start_binary_env(env!("CARGO_BIN_EXE_jwt-auth"), None, extra).await;
            let (token, cookies) = sessions(addr, conns).await;
            let me = load(addr, Kind::Me, conns, dur, &token, vec![]).await;
            row(
                &format!("GET /auth/me, {label} ({round})"),
                &me,
                Some(floor),
            );
            let refresh = load(addr, Kind::Refresh, conns, dur, &token, cookies).await;
            row(
                &format!("POST /auth/refresh, {label} ({round})"),
                &refresh,
                Some(floor),
            );
            rates.push((me.rps(), refresh.rps()));
        }
        ratios.push((rates[1].0 / rates[0].0, rates[1].1 / rates[0].1));
    }
    for (round, (me, refresh)) in ratios.iter().enumerate() {
        println!(
            "|   round {}: with metrics ÷ without: /auth/me {me:.3}, /auth/refresh {refresh:.3}",
            round + 1
        );
    }
}

/// The refresh scenario on SQLite (a temporary file) and, when `BENCH_POSTGRES_URL` is set,
/// on PostgreSQL.
async fn database_scenarios(conns: usize, dur: Duration) -> Vec<(String, Outcome)> {
    let mut rows = Vec::new();
    let sqlite_path =
        std::env::temp_dir().join(format!("jwt-auth-bench-{}.db", std::process::id()));
    let mut dbs = vec![(
        "sqlite".to_owned(),
        format!("sqlite://{}", sqlite_path.display()),
    )];
    if let Ok(url) = std::env::var("BENCH_POSTGRES_URL") {
        dbs.push(("postgres".to_owned(), url));
    }
    for (name, url) in dbs {
        let (_svc, db_addr) = start_service(Some(&url)).await;
        let (db_token, db_cookies) = sessions(db_addr, conns).await;
        let o = load(db_addr, Kind::Refresh, conns, dur, &db_token, db_cookies).await;
        rows.push((name, o));
    }
    let _ = std::fs::remove_file(&sqlite_path);
    rows
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds for one bcrypt verification at cost 12 on one core, median of `n`.
fn bcrypt_verify_secs(n: usize) -> f64 {
    let hash = bcrypt::hash("bench-password", 12).unwrap();
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                assert!(bcrypt::verify("bench-password", &hash).unwrap());
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn row(name: &str, o: &Outcome, floor: Option<f64>) {
    let ratio = floor.map_or_else(|| "-".to_owned(), |f| format!("{:.2}", o.rps() / f));
    println!(
        "| {name:<38} | {:>9.0} | {:>7.2} | {:>7.2} | {:>6} | {:>5} |",
        o.rps(),
        o.pct(0.5),
        o.pct(0.99),
        o.errors,
        ratio
    );
}

async fn run(smoke: bool) {
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 1 } else { 10 });
    let conns: usize = std::env::var("LOAD_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 4 } else { 32 });
    let sessions_n: usize = std::env::var("BENCH_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 10_000 } else { 1_000_000 });
    let dur = Duration::from_secs(secs);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    println!(
        "# jwt-auth load benchmark{}",
        if smoke {
            " (smoke mode: figures are not meaningful)"
        } else {
            ""
        }
    );
    println!("machine: {cores} cores, {cpu}; {secs} s per scenario, {conns} keep-alive connections, loopback");
    println!(
        "service: target/release/jwt-auth, in-memory stores, {}",
        SERVICE_ENV
            .iter()
            .filter(|(k, _)| *k != "JWT_SECRET_KEY")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Floor.
    let floor_port = free_port();
    let _floor = Proc(
        Command::new(std::env::current_exe().unwrap())
            .args(["--floor", &floor_port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start floor"),
    );
    let floor_addr = SocketAddr::from(([127, 0, 0, 1], floor_port));
    wait_ready(floor_addr, "/floor").await;

    println!();
    println!("| scenario                               |     req/s | p50 ms  | p99 ms  | errors | ×floor |");
    println!("|----------------------------------------|-----------|---------|---------|--------|-------|");
    let floor = load(floor_addr, Kind::Floor, conns, dur, "", vec![]).await;
    row("floor: bare poem, constant JSON", &floor, None);
    let f = floor.rps();
    if std::env::var("LOAD_ONLY").as_deref() == Ok("db") {
        for (name, o) in database_scenarios(conns, dur).await {
            row(&format!("POST /auth/refresh on {name}"), &o, Some(f));
        }
        return;
    }

    if std::env::var("LOAD_ONLY").as_deref() == Ok("metrics") {
        metrics_scenarios(conns, dur, f).await;
        return;
    }

    let (_service, addr) = start_service(None).await;
    let (token, cookies) = sessions(addr, conns).await;
    let me = load(addr, Kind::Me, conns, dur, &token, vec![]).await;
    row("GET /auth/me", &me, Some(f));
    let refresh = load(addr, Kind::Refresh, conns, dur, &token, cookies).await;
    row(
        "POST /auth/refresh (own rotating cookie)",
        &refresh,
        Some(f),
    );
    let per_algorithm = algorithm_scenarios(conns, dur, if smoke { 200 } else { 20_000 }).await;
    for (alg, o, _) in &per_algorithm {
        row(&format!("GET /auth/me ({alg})"), o, Some(f));
    }
    for (alg, _, rate) in &per_algorithm {
        println!(
            "| resource server: verify {alg:<6} one core | {rate:>9.0} |       - |       - |      - | {:>5.2} |",
            rate / f
        );
    }

    // Another build of the service (e.g. the previous release) on the same scenarios, in the
    // same run: a regression shows as a ratio, whatever the machine is doing.
    if let Ok(baseline) = std::env::var("BENCH_BASELINE_BIN") {
        let (_old, old_addr) = start_binary(&baseline, None).await;
        let (token, cookies) = sessions(old_addr, conns).await;
        let old_me = load(old_addr, Kind::Me, conns, dur, &token, vec![]).await;
        row("baseline: GET /auth/me", &old_me, Some(f));
        let old_refresh = load(old_addr, Kind::Refresh, conns, dur, &token, cookies).await;
        row("baseline: POST /auth/refresh", &old_refresh, Some(f));
        println!(
            "|   this build ÷ baseline: /auth/me {:.2}, /auth/refresh {:.2}",
            me.rps() / old_me.rps(),
            refresh.rps() / old_refresh.rps()
        );
    }

    let login_conns = conns.min(16);
    let login = load(addr, Kind::Login, login_conns, dur, "", vec![]).await;
    row("POST /auth/login (bcrypt cost 12)", &login, Some(f));

    // Interference: /auth/me latency alone, then during a login flood, same connections.
    let probe_conns = 4;
    let idle = load(addr, Kind::Me, probe_conns, dur, &token, vec![]).await;
    row("GET /auth/me, 4 conns, idle", &idle, Some(f));
    let flood = tokio::spawn(async move {
        load(
            addr,
            Kind::Login,
            login_conns,
            dur + Duration::from_millis(500),
            "",
            vec![],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let during = load(addr, Kind::Me, probe_conns, dur, &token, vec![]).await;
    let flood = flood.await.unwrap();
    row(
        "GET /auth/me, 4 conns, during login flood",
        &during,
        Some(f),
    );
    row("  (the login flood itself)", &flood, Some(f));

    // Database stores, when available.
    let db_rows = database_scenarios(conns, dur).await;
    for (name, o) in &db_rows {
        row(&format!("POST /auth/refresh on {name}"), o, Some(f));
    }

    // bcrypt ideal, measured now, with the services idle.
    let verify = bcrypt_verify_secs(if smoke { 3 } else { 11 });
    let ideal = cores as f64 / verify;

    // Memory per live session, in a fresh process.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--memory", &sessions_n.to_string()])
        .output()
        .expect("memory child");
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let (mem_sessions, mem_tokens, before, after) = (nums[0], nums[1], nums[2], nums[3]);
    let per_session = (after.saturating_sub(before)) as f64 / mem_sessions as f64;

    println!();
    println!("| target                                         | measured | target | met |");
    println!("|------------------------------------------------|----------|--------|-----|");
    let check = |name: &str, measured: f64, target: &str, ok: bool| {
        println!(
            "| {name:<46} | {measured:>8.2} | {target:>6} | {} |",
            if ok { "yes" } else { "NO " }
        );
    };
    check(
        "/auth/me ÷ floor",
        me.rps() / f,
        "≥ 0.70",
        me.rps() / f >= 0.7,
    );
    check(
        "/auth/refresh ÷ floor",
        refresh.rps() / f,
        "≥ 0.40",
        refresh.rps() / f >= 0.4,
    );
    check(
        "refresh non-200s",
        refresh.errors as f64,
        "0",
        refresh.errors == 0,
    );
    check(
        "logins/s ÷ bcrypt ideal",
        login.rps() / ideal,
        "≥ 0.90",
        login.rps() / ideal >= 0.9,
    );
    let p99_ratio = during.pct(0.99) / idle.pct(0.99);
    check(
        "/auth/me p99 during flood ÷ idle p99",
        p99_ratio,
        "≤ 3.00",
        p99_ratio <= 3.0 && during.errors == 0,
    );
    check(
        "bytes of RSS per live session",
        per_session,
        "≤ 400",
        per_session <= 400.0,
    );
    for (alg, o, _) in &per_algorithm {
        check(
            &format!("/auth/me ({alg}) ÷ floor"),
            o.rps() / f,
            "≥ 0.70",
            o.rps() / f >= 0.7,
        );
    }
    for (name, o) in &db_rows {
        if name == "postgres" {
            check(
                "/auth/refresh on postgres ÷ floor",
                o.rps() / f,
                "≥ 0.10",
                o.rps() / f >= 0.1,
            );
        }
    }
    println!();
    println!(
        "bcrypt: one verification at cost 12 takes {:.1} ms (median); ideal = {cores} cores ÷ that = {ideal:.2} logins/s; measured {:.2} logins/s",
        verify * 1000.0,
        login.rps()
    );
    println!(
        "memory: {mem_sessions} live sessions ({mem_tokens} token hashes) created through the port: RSS {:.1} MiB → {:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    println!("consume with 1,000 vs 1,000,000 sessions: `cargo bench --bench micro -- refresh_store_consume`");
}

//! `LOAD_ONLY=rotation`: a signing-key rotation under load, and the revocation path.
//!
//! The release service runs under EdDSA with generated keys in a SQLite file; a resource server
//! (this binary with `--resource-server`, `jwt_auth::verifier` behind a poem route, as in
//! `examples/resource_server.rs`) verifies with the JWKS it fetched and the pushed feed. While
//! `/auth/me` and the resource server are loaded with tokens minted throughout by refreshes and
//! logins, `jwt-auth keys rotate` runs as a second process on the same file, and the service
//! promotes the next key itself once it has been published for the lead time (320 s): every
//! answer other than 200 at either place is a failed verification.
//!
//! `--smoke` runs the same with one shortcut: the next key's publication time is moved back in
//! the store so that it is due once the resource server has refetched its JWKS (its own
//! refresh, once a minute), instead of 320 s later. The full run waits the real lead time.
//!
//! Before the load: the logout → refusal delay at the resource server (push on), and the feed's
//! size after a flood of logouts; after the load, once the feed's window has passed, its size
//! again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use base64::Engine;

use super::*;

const KEK: &str = "bench-kek-Zq7xR2mP9vL4tW8nK3sY6hB1cF5gJ0dQ";
/// Short so that the feed's window passes within the run.
const ACCESS_MIN: u64 = 1;

// ---------------------------------------------------------------- resource server (child)

pub fn resource_server(port: u16, auth: &str) {
    use jwt_auth::verifier::{Verifier, VerifierConfig};
    use poem::http::StatusCode;
    use poem::web::Data;
    use poem::{get, handler, listener::TcpListener, EndpointExt, Response, Route, Server};

    #[handler]
    fn hello(req: &poem::Request, Data(verifier): Data<&Verifier>) -> Response {
        let token = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        match verifier.verify(token) {
            Ok(claims) => Response::builder()
                .content_type("application/json")
                .body(format!(r#"{{"hello":"{}"}}"#, claims.sub)),
            Err(e) => Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(e.to_string()),
        }
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut config = VerifierConfig::new(
            format!("http://{auth}"),
            "jwt-auth",
            "jwt-auth-clients",
            jwt_auth::domain::SigningAlgorithm::EdDSA,
        );
        config.poll_interval = Duration::from_millis(250);
        config.push = true;
        let verifier = Verifier::start(config).await.expect("verifier");
        Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
            .run(Route::new().at("/hello", get(hello)).data(verifier))
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------- HTTP helpers

/// One keep-alive connection that reconnects after an error.
struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

struct Answer {
    status: u16,
    cookie: Option<String>,
    body: Bytes,
}

impl Conn {
    async fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            sender: connect(addr).await,
        }
    }

    /// `None` when the connection failed (it is replaced).
    async fn send(&mut self, req: Request<Full<Bytes>>) -> Option<Answer> {
        if self.sender.ready().await.is_err() {
            self.sender = connect(self.addr).await;
            return None;
        }
        let Ok(resp) = self.sender.send_request(req).await else {
            self.sender = connect(self.addr).await;
            return None;
        };
        let status = resp.status().as_u16();
        let cookie = set_cookie_value(&resp);
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(Answer {
            status,
            cookie,
            body,
        })
    }

    fn get_request(path: &str, token: Option<&str>) -> Request<Full<Bytes>> {
        let mut b = Request::builder().uri(path).header("host", "127.0.0.1");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Full::default()).unwrap()
    }

    async fn get(&mut self, path: &str, token: Option<&str>) -> Option<Answer> {
        self.send(Self::get_request(path, token)).await
    }

    /// As `get`, once more on a new connection when the idle one was closed meanwhile.
    async fn get_again(&mut self, path: &str) -> Option<Answer> {
        match self.get(path, None).await {
            Some(a) => Some(a),
            None => self.get(path, None).await,
        }
    }

    /// A login or a refresh: (access token, refresh cookie).
    async fn mint(&mut self, cookie: Option<&str>) -> Option<(String, String)> {
        let req = match cookie {
            None => request(Kind::Login, "", ""),
            Some(c) => request(Kind::Refresh, "", c),
        };
        let a = self.send(req).await?;
        if a.status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
        Some((json["access_token"].as_str()?.to_owned(), a.cookie?))
    }

    async fn logout(&mut self, cookie: &str) -> Option<u16> {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth/logout")
            .header("host", "127.0.0.1")
            .header("cookie", format!("refresh_token={cookie}"))
            .body(Full::default())
            .unwrap();
        Some(self.send(req).await?.status)
    }
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h["kid"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn jwks_kids(conn: &mut Conn) -> Vec<String> {
    let Some(a) = conn.get_again("/.well-known/jwks.json").await else {
        return vec![];
    };
    let json: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    json["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Entries and bytes of one `/revocations` answer (the whole window).
async fn feed_size(conn: &mut Conn) -> (usize, usize, bool) {
    let a = conn.get_again("/revocations").await.expect("/revocations");
    assert_eq!(a.status, 200, "/revocations");
    let json: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    (
        json["entries"].as_array().map_or(0, Vec::len),
        a.body.len(),
        json["more"] == serde_json::Value::Bool(true),
    )
}

// ---------------------------------------------------------------- revocations

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Logout → first refusal at the resource server, in ms after the logout's 204, for `n`
/// sessions one after the other.
async fn logout_delays(auth: SocketAddr, rs: SocketAddr, n: usize) -> Vec<f64> {
    let mut a = Conn::new(auth).await;
    let mut r = Conn::new(rs).await;
    let mut delays = Vec::with_capacity(n);
    for _ in 0..n {
        let (token, cookie) = a.mint(None).await.expect("login");
        let ok = r
            .get("/hello", Some(&token))
            .await
            .expect("resource server");
        assert_eq!(
            ok.status, 200,
            "a fresh token is refused by the resource server"
        );
        assert_eq!(a.logout(&cookie).await, Some(204), "logout");
        let answered = Instant::now();
        loop {
            let ans = r
                .get("/hello", Some(&token))
                .await
                .expect("resource server");
            if ans.status == 401 {
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(5),
                "a logged-out session still verifies after 5 s"
            );
        }
        delays.push(answered.elapsed().as_secs_f64() * 1000.0);
    }
    delays.sort_by(f64::total_cmp);
    delays
}

/// Logs in `n` sessions, then logs them all out over `conns` connections at once.
async fn logout_flood(auth: SocketAddr, n: usize, conns: usize) -> Duration {
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..conns {
        let count = n / conns + usize::from(lane < n % conns);
        tasks.spawn(async move {
            let mut c = Conn::new(auth).await;
            let mut cookies = Vec::with_capacity(count);
            for _ in 0..count {
                cookies.push(c.mint(None).await.expect("flood login").1);
            }
            cookies
        });
    }
    let mut cookies = Vec::new();
    while let Some(c) = tasks.join_next().await {
        cookies.extend(c.unwrap());
    }
    let started = Instant::now();
    let chunk = cookies.len().div_ceil(conns);
    for part in cookies.chunks(chunk) {
        let part = part.to_vec();
        tasks.spawn(async move {
            let mut c = Conn::new(auth).await;
            for cookie in &part {
                assert_eq!(c.logout(cookie).await, Some(204), "flood logout");
            }
            vec![]
        });
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}

// ---------------------------------------------------------------- load

/// A token in circulation and whether the rotated-in key signed it.
struct Minted {
    token: String,
    new_key: bool,
}

/// Counters per second of the run.
const SLOTS: usize = 6;
const ME_OK: usize = 0;
const ME_FAIL: usize = 1;
const RS_OK: usize = 2;
const RS_FAIL: usize = 3;
const ME_NEW: usize = 4;
const RS_NEW: usize = 5;

struct Shared {
    started: Instant,
    pool: Vec<RwLock<Arc<Minted>>>,
    /// The kid that signed when the run started.
    first_kid: String,
    per_sec: Vec<AtomicU64>,
    stop: AtomicBool,
    /// When the first token signed by another key was minted.
    promoted: OnceLock<Instant>,
    /// Requests after the promotion with a token of the old key, at /auth/me and at the
    /// resource server (the previous key must go on verifying).
    old_after: [AtomicU64; 2],
    minted: AtomicU64,
    mint_failures: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Shared {
    fn count(&self, slot: usize) {
        let sec = self.started.elapsed().as_secs() as usize;
        if let Some(c) = self.per_sec.get(sec * SLOTS + slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sum(&self, slot: usize, from: usize, to: usize) -> u64 {
        (from..to)
            .filter_map(|s| self.per_sec.get(s * SLOTS + slot))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn put(&self, i: usize, token: String) {
        let new_key = kid_of(&token) != self.first_kid;
        if new_key {
            self.promoted.get_or_init(Instant::now);
        }
        self.minted.fetch_add(1, Ordering::Relaxed);
        *self.pool[i].write().unwrap() = Arc::new(Minted { token, new_key });
    }
}

/// Keeps the pool fresh: slots `slots` each hold a session; every `pause` one of them is
/// refreshed in turn, and every `login_every`-th time a new session is logged in instead.
async fn minter(
    shared: Arc<Shared>,
    auth: SocketAddr,
    slots: std::ops::Range<usize>,
    mut cookies: Vec<String>,
    pause: Duration,
    login_every: u64,
) {
    let mut c = Conn::new(auth).await;
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        for (k, i) in slots.clone().enumerate() {
            n += 1;
            let cookie = (n % login_every != 0).then_some(cookies[k].as_str());
            match c.mint(cookie).await {
                Some((token, next)) => {
                    cookies[k] = next;
                    shared.put(i, token);
                }
                None => {
                    shared.mint_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(pause).await;
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

/// Sends requests back to back with the pool's tokens in turn; counts answers per second.
async fn lane(shared: Arc<Shared>, addr: SocketAddr, path: &'static str, lane: usize) {
    let resource = path == "/hello";
    let (ok, fail, new) = if resource {
        (RS_OK, RS_FAIL, RS_NEW)
    } else {
        (ME_OK, ME_FAIL, ME_NEW)
    };
    let mut c = Conn::new(addr).await;
    let mut n = lane;
    while !shared.stop.load(Ordering::Relaxed) {
        n += 1;
        let minted = shared.pool[n % shared.pool.len()].read().unwrap().clone();
        let Some(a) = c.get(path, Some(&minted.token)).await else {
            shared.count(fail);
            continue;
        };
        if a.status == 200 {
            shared.count(ok);
            if minted.new_key {
                shared.count(new);
            } else if shared.promoted.get().is_some() {
                shared.old_after[usize::from(resource)].fetch_add(1, Ordering::Relaxed);
            }
        } else {
            shared.count(fail);
            let mut f = shared.failures.lock().unwrap();
            if f.len() < 10 {
                f.push(format!(
                    "{path} {} ({} key, {:.1} s into the run): {}",
                    a.status,
                    if minted.new_key { "new" } else { "old" },
                    shared.started.elapsed().as_secs_f64(),
                    String::from_utf8_lossy(&a.body)
                ));
            }
        }
    }
}

// ---------------------------------------------------------------- the run

fn env_of(db_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("JWT_ALGORITHM", "EdDSA".into()),
        ("JWT_KEY_ENCRYPTION_KEY", KEK.into()),
        ("DATABASE_URL", db_url.into()),
        // Logins mint tokens here; bcrypt's cost is measured elsewhere.
        ("BCRYPT_COST", "4".into()),
        ("ACCESS_TOKEN_EXPIRES_MIN", ACCESS_MIN.to_string()),
        ("SESSION_PURGE_INTERVAL_SECS", "5".into()),
    ]
}

/// `jwt-auth keys rotate`, a second process on the service's store.
fn cli_rotate(db_url: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jwt-auth"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["keys", "rotate"]);
    for (k, v) in SERVICE_ENV {
        cmd.env(k, v);
    }
    for (k, v) in env_of(db_url) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("jwt-auth keys rotate");
    assert!(
        out.status.success(),
        "keys rotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn sqlite(db_url: &str) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(db_url).await.expect("sqlite")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn phase_row(shared: &Shared, name: &str, from: usize, to: usize, floor: f64) {
    if to <= from {
        return;
    }
    let secs = (to - from) as f64;
    let me = shared.sum(ME_OK, from, to) as f64 / secs;
    let rs = shared.sum(RS_OK, from, to) as f64 / secs;
    println!(
        "| rotation: {name:<28} | {:>4} s | {me:>9.0} | {:>6} | {rs:>9.0} | {:>6} | {:>6.2} |",
        to - from,
        shared.sum(ME_FAIL, from, to),
        shared.sum(RS_FAIL, from, to),
        (me + rs) / floor,
    );
}

pub async fn rotation(smoke: bool, floor: f64, conns: usize, secs: u64) {
    use jwt_auth::adapters::outbound::key_lifecycle::KEY_RELOAD_SECS;
    use jwt_auth::domain::JWKS_MAX_AGE_SECS;
    let lead = JWKS_MAX_AGE_SECS + 2 * KEY_RELOAD_SECS;
    let window = ACCESS_MIN * 60;
    let (delay_n, flood_n) = if smoke { (10, 200) } else { (50, 800) };

    let path = std::env::temp_dir().join(format!("jwt-auth-rotation-{}.db", std::process::id()));
    let db_url = format!("sqlite://{}", path.display());
    let extra = env_of(&db_url);
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (svc, auth) = start_binary_env(env!("CARGO_BIN_EXE_jwt-auth"), None, &extra).await;
    let rs_port = free_port();
    let _rs = Proc(
        Command::new(std::env::current_exe().unwrap())
            .args(["--resource-server", &rs_port.to_string(), &auth.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start resource server"),
    );
    let rs_started = Instant::now();
    let rs = SocketAddr::from(([127, 0, 0, 1], rs_port));
    wait_ready(rs, "/hello").await;
    // The verifier's stream connects just after it starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!();
    println!(
        "service: EdDSA, generated keys in a SQLite file, ACCESS_TOKEN_EXPIRES_MIN={ACCESS_MIN}, \
         BCRYPT_COST=4; resource server: jwt_auth::verifier (push, poll 250 ms), another process"
    );

    // Revocation delay, then a flood.
    let delays = logout_delays(auth, rs, delay_n).await;
    let took = logout_flood(auth, flood_n, 8).await;
    let flooded_at = Instant::now();
    let mut admin = Conn::new(auth).await;
    let (entries, bytes, more) = feed_size(&mut admin).await;
    println!(
        "| revocation: logout → refused at the resource server (push), {delay_n} logouts: \
         p50 {:.2} ms, max {:.2} ms after the 204",
        pct(&delays, 0.5),
        pct(&delays, 1.0)
    );
    println!(
        "| revocation feed after a flood of {flood_n} logouts ({:.2} s): {entries} entries, \
         {bytes} bytes in one /revocations answer (more: {more})",
        took.as_secs_f64()
    );

    // The pool: fast slots refreshed in turn all the time, slow ones every ~16 s so that
    // tokens of the old key stay in use after the promotion.
    let (fast, slow) = (8, 8);
    let first_kid = {
        let kids = jwks_kids(&mut admin).await;
        assert_eq!(kids.len(), 1, "one key before the rotation: {kids:?}");
        kids[0].clone()
    };
    let max_secs = (secs * 2 + lead + 120) as usize;
    let mut seed = Conn::new(auth).await;
    let mut pool = Vec::new();
    let mut cookies = Vec::new();
    for _ in 0..fast + slow {
        let (token, cookie) = seed.mint(None).await.expect("login");
        pool.push(RwLock::new(Arc::new(Minted {
            token,
            new_key: false,
        })));
        cookies.push(cookie);
    }
    let shared = Arc::new(Shared {
        started: Instant::now(),
        pool,
        first_kid: first_kid.clone(),
        per_sec: (0..max_secs * SLOTS).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        promoted: OnceLock::new(),
        old_after: Default::default(),
        minted: AtomicU64::new(0),
        mint_failures: AtomicU64::new(0),
        failures: Mutex::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let slow_cookies = cookies.split_off(fast);
    tasks.spawn(minter(
        shared.clone(),
        auth,
        0..fast,
        cookies,
        Duration::from_millis(10),
        200,
    ));
    tasks.spawn(minter(
        shared.clone(),
        auth,
        fast..fast + slow,
        slow_cookies,
        Duration::from_secs(2),
        4,
    ));
    let half = (conns / 2).max(1);
    for i in 0..half {
        tasks.spawn(lane(shared.clone(), auth, "/auth/me", i));
        tasks.spawn(lane(shared.clone(), rs, "/hello", i));
    }

    let at = |t: Instant| t.duration_since(shared.started).as_secs() as usize;
    let before = if smoke { 3 } else { secs };
    tokio::time::sleep(Duration::from_secs(before)).await;
    let rotated_at = Instant::now();
    let said = cli_rotate(&db_url);
    println!("| keys rotate: {said}");
    let db = sqlite(&db_url).await;
    if smoke {
        // Due once the resource server has refetched its JWKS (once a minute), not 320 s on.
        let due = unix_now() + (60 + 3 - rs_started.elapsed().as_secs() as i64).max(1);
        sqlx::query("UPDATE signing_keys SET created_at = ? WHERE state = 'next'")
            .bind(due - lead as i64)
            .execute(&db)
            .await
            .expect("move the next key's publication back");
    }
    let deadline = rotated_at + Duration::from_secs(if smoke { 90 } else { lead + 60 });
    let mut published = None;
    while shared.promoted.get().is_none() && Instant::now() < deadline {
        if published.is_none() && jwks_kids(&mut admin).await.len() == 2 {
            published = Some(rotated_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let promoted = *shared
        .promoted
        .get()
        .expect("no token was signed by the next key: the rotation did not happen");
    let after = if smoke { 3 } else { secs };
    tokio::time::sleep(Duration::from_secs(after + 3)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let ended = Instant::now();
    while tasks.join_next().await.is_some() {}

    let kids = jwks_kids(&mut admin).await;
    println!(
        "| next key published by the service {:.1} s after `keys rotate`; first token signed by \
         it {:.1} s after (lead {lead} s{}); JWKS now {} keys",
        published.map_or(f64::NAN, |d| d.as_secs_f64()),
        promoted.duration_since(rotated_at).as_secs_f64(),
        if smoke {
            ", shortened in the store: smoke"
        } else {
            ""
        },
        kids.len()
    );
    println!();
    println!("| phase                                  | secs   | /auth/me/s | failed | resource/s | failed | ×floor |");
    println!("|----------------------------------------|--------|-----------|--------|-----------|--------|--------|");
    let (r, p, e) = (at(rotated_at), at(promoted), at(ended));
    phase_row(&shared, "before", 1, r, floor);
    phase_row(
        &shared,
        "published, not signing",
        r + 1,
        p.saturating_sub(2),
        floor,
    );
    phase_row(
        &shared,
        "promotion ± 2 s",
        p.saturating_sub(2),
        p + 3,
        floor,
    );
    phase_row(&shared, "after", p + 3, e, floor);
    phase_row(&shared, "whole run", 0, e + 1, floor);
    let total = |slot| shared.sum(slot, 0, e + 1);
    let failed = total(ME_FAIL) + total(RS_FAIL);
    println!(
        "| rotation: {} verifications at /auth/me ({} with the new key, {} with the old one after \
         the promotion), {} at the resource server ({} new, {} old after); {failed} failed; \
         {} tokens minted, {} mint failures",
        total(ME_OK) + total(ME_FAIL),
        total(ME_NEW),
        shared.old_after[0].load(Ordering::Relaxed),
        total(RS_OK) + total(RS_FAIL),
        total(RS_NEW),
        shared.old_after[1].load(Ordering::Relaxed),
        shared.minted.load(Ordering::Relaxed),
        shared.mint_failures.load(Ordering::Relaxed),
    );

    // The flood's entries leave the feed once the window has passed.
    let wait = (Duration::from_secs(window + 2)).saturating_sub(flooded_at.elapsed());
    tokio::time::sleep(wait).await;
    // The purge runs every few seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (entries, bytes, _) = feed_size(&mut admin).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM session_revocations")
        .fetch_one(&db)
        .await
        .unwrap();
    println!(
        "| revocation feed {:.0} s after the flood (window {window} s): {entries} entries, {bytes} \
         bytes in one answer; {rows} rows left in session_revocations",
        flooded_at.elapsed().as_secs_f64()
    );
    db.close().await;
    drop(svc);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    for f in shared.failures.lock().unwrap().iter() {
        eprintln!("failed verification: {f}");
    }
    assert_eq!(failed, 0, "failed verifications during the rotation");
    assert_eq!(
        shared.mint_failures.load(Ordering::Relaxed),
        0,
        "failed logins or refreshes"
    );
    assert!(
        total(ME_NEW) > 0 && total(RS_NEW) > 0,
        "the new key's tokens were verified"
    );
}

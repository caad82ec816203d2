//! The database wiring over HTTP: the flow, rotation, reuse, race, expiry, logout and disable
//! tests of `flow.rs` and `rotation.rs` on PostgreSQL and SQLite; 503 and recovery when the
//! database goes away; two instances sharing one database; start-up, migrations and the
//! operator commands of the real binary.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwt_auth::adapters::outbound::db::{Database, PoolSettings};
use jwt_auth::adapters::outbound::memory::InMemoryUserRepo;
use jwt_auth::config::Settings;
use jwt_auth::domain::{ClientAddress, RefreshToken, Session, SessionId, SessionOrigin, Timestamp};
use jwt_auth::startup::{Adapters, Application, DEMO_EMAIL, DEMO_PASSWORD};
use serde_json::json;

use crate::helpers::*;

macro_rules! on_databases {
    ($($case:path => $name:ident),* $(,)?) => {
        mod postgres {
            use crate::helpers::{spawn_app_on, Store};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
                async fn $name() {
                    if let Some(app) = spawn_app_on(Store::Postgres).await {
                        $case(app).await;
                    }
                }
            )*
        }
        mod sqlite {
            use crate::helpers::{spawn_app_on, Store};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(app) = spawn_app_on(Store::Sqlite).await {
                        $case(app).await;
                    }
                }
            )*
        }
    };
}

on_databases!(
    crate::flow::full_flow => full_flow_login_me_refresh_me_logout_refresh,
    crate::flow::logout_revokes_server_side => logout_clears_the_cookie_and_revokes_server_side,
    crate::flow::logout_is_idempotent => logout_is_idempotent_without_or_with_a_bad_cookie,
    crate::flow::two_logins_are_independent => two_logins_are_independent_families,
    crate::rotation::refresh_rotates => refresh_rotates_and_marks_the_old_token_used,
    crate::rotation::replay_revokes_the_family => replay_of_a_rotated_token_revokes_the_whole_family,
    crate::rotation::twenty_parallel_refreshes =>
        parallel_refreshes_with_one_token_all_get_one_successor,
    crate::rotation::session_ends_at_30_days => session_ends_at_30_days_and_rotation_never_extends_it,
    crate::rotation::disabling_a_user_revokes_everything =>
        disabling_a_user_revokes_every_family_and_access,
    crate::durable::cli_user_commands_work_on_the_served_database =>
        cli_user_commands_work_on_the_served_database,
    crate::durable::sessions_survive_a_restart => sessions_survive_a_restart,
    crate::rotation::session_is_bound_to_its_user =>
        a_token_pairing_one_users_session_with_another_user_is_refused,
    crate::rotation::user_store_outage_never_spends_the_cookie =>
        a_user_store_outage_during_refresh_never_spends_the_cookie,
    crate::rotation::refreshes_keep_storage_constant =>
        many_refreshes_of_one_session_keep_its_storage_constant,
    crate::durable::an_email_longer_once_normalized_is_refused =>
        an_email_longer_once_normalized_is_refused_and_breaks_nothing,
    crate::durable::an_unreadable_stored_account_never_fails_user_list =>
        an_unreadable_stored_account_never_fails_user_list,
    crate::hash_formats::a_legacy_prehashed_row_logs_in_and_is_rewritten_as_phc =>
        a_legacy_prehashed_2b_row_logs_in_and_is_rewritten_as_phc,
    crate::hash_formats::a_passlib_hash_imported_with_the_cli_logs_in_and_is_upgraded =>
        a_passlib_hash_imported_with_the_cli_logs_in_and_is_upgraded,
    crate::hash_formats::a_file_with_a_bad_row_imports_nothing =>
        an_import_file_with_a_bad_row_imports_nothing,
    crate::hash_formats::a_plain_bcrypt_hash_is_not_upgraded_from_a_password_past_72_bytes =>
        a_plain_bcrypt_hash_is_not_upgraded_from_a_password_past_72_bytes,
);

#[tokio::test]
async fn an_email_longer_once_normalized_is_refused_and_breaks_nothing() {
    an_email_longer_once_normalized_is_refused(spawn_app().await).await;
}

/// Finding: an email whose lower-case form is longer ('İ' becomes two characters) passed the
/// length check, was stored over the limit, and then failed to read back: login answered 500
/// and `user list` failed for everyone. It is refused up front now.
pub async fn an_email_longer_once_normalized_is_refused(app: TestApp) {
    let email = format!("{}@example.com", "\u{130}".repeat(200));
    assert!(email.chars().count() <= 254);
    app.register(&email, "a long password")
        .await
        .assert_error(400, "invalid_request");
    app.login(&email, "a long password")
        .await
        .assert_error(400, "invalid_request");
    let listed = app.users.inner.list().await.unwrap();
    assert_eq!(listed.len(), 1, "only the demo user: {listed:?}");
    assert_eq!(app.login_demo().await.status, 200);
}

/// Finding, continued: a row that no longer parses (from an older version, or edited by hand)
/// is skipped by `jwt-auth user list` with a warning naming its id, never its contents, and
/// is no account for the service.
pub async fn an_unreadable_stored_account_never_fails_user_list(app: TestApp) {
    let db = app.db.as_ref().unwrap();
    let bad = db.insert_unreadable_user().await;
    let list = jwt_auth(&["user", "list"], &[("DATABASE_URL", &db.url)], None);
    let (out, err) = (text(&list.stdout), text(&list.stderr));
    assert!(list.status.success(), "{err}");
    assert!(out.contains(DEMO_EMAIL), "{out}");
    assert!(!out.contains(&bad.to_string()), "{out}");
    assert!(
        err.contains(&bad.to_string()),
        "the warning names the row: {err}"
    );
    assert!(!err.contains("\u{307}"), "never the row's contents: {err}");
    assert_eq!(app.login_demo().await.status, 200);
}

// ---- 503 when the database cannot be reached ----

/// An access token as the service issues them, for a session the store cannot check.
fn some_access_token() -> String {
    let claims = good_claims(
        &uuid::Uuid::new_v4().to_string(),
        &uuid::Uuid::new_v4().to_string(),
        T0,
    );
    sign_hs256(&good_header(), &claims, TEST_SECRET.as_bytes())
}

async fn unreachable_store_answers_503(store: Store) {
    // Sessions unreachable, users in memory (so login gets as far as the session store).
    let dead = Stores::unreachable(store).unwrap();
    let app = spawn_app_from(
        Stores {
            users: Arc::new(InMemoryUserRepo::new()),
            sessions: dead.sessions,
            memory: None,
            db: None,
        },
        &[],
    )
    .await;
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(503, "unavailable");
    let cookie = RefreshToken::generate();
    let refresh = app.refresh(Some(cookie.as_str())).await;
    refresh.assert_error(503, "unavailable");
    assert!(
        refresh.set_cookie().is_none(),
        "an outage does not clear the cookie"
    );
    app.logout(Some(cookie.as_str()))
        .await
        .assert_error(503, "unavailable");
    app.me(&some_access_token())
        .await
        .assert_error(503, "unavailable");
    assert_eq!(app.get("/health/ready").await.status, 503);
    assert_eq!(app.get("/health/live").await.status, 200);

    // Users unreachable too.
    let dead = Stores::unreachable(store).unwrap();
    let app = spawn_app_from(dead, &[]).await;
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(503, "unavailable");
    app.register("new@example.com", "long enough")
        .await
        .assert_error(503, "unavailable");
}

#[tokio::test]
async fn postgres_on_a_closed_port_answers_503_unavailable() {
    unreachable_store_answers_503(Store::Postgres).await;
}

#[tokio::test]
async fn sqlite_that_cannot_open_answers_503_unavailable() {
    unreachable_store_answers_503(Store::Sqlite).await;
}

/// A TCP proxy to PostgreSQL that can be cut: existing connections are dropped and new ones
/// closed at once, as when the server goes away.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Self { port, up, links }
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }
    }
}

/// `url` with its `host:port` replaced.
pub(crate) fn with_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!(
        "{scheme}://{}{address}/{path}",
        userinfo.unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn postgres_lost_while_serving_gives_503_and_recovers_by_itself() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    let direct: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let target: SocketAddr = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = Database::connect(
        &with_address(&db.url, &format!("127.0.0.1:{}", proxy.port)),
        PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let app = spawn_app_from(
        Stores {
            users: proxied.users(),
            sessions: proxied.sessions(),
            memory: None,
            db: Some(db),
        },
        &[],
    )
    .await;
    let login = app.login_demo().await;
    let cookie = login.refresh_cookie().unwrap();

    proxy.set_up(false);
    let started = std::time::Instant::now();
    app.refresh(Some(&cookie))
        .await
        .assert_error(503, "unavailable");
    app.me(&login.access_token())
        .await
        .assert_error(503, "unavailable");
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(503, "unavailable");
    assert_eq!(app.get("/health/ready").await.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "503 quickly, not a hang: {:?}",
        started.elapsed()
    );

    proxy.set_up(true);
    assert_eq!(app.get("/health/ready").await.status, 200, "recovered");
    let refreshed = app.refresh(Some(&cookie)).await;
    assert_eq!(
        refreshed.status, 200,
        "nothing rotated during the outage: {}",
        refreshed.body
    );
    assert_eq!(app.me(&refreshed.access_token()).await.status, 200);
}

/// A pooled connection that broke while it sat idle is noticed before it is used (the pool
/// pings a connection idle for a second or more) and replaced: the client sees no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn postgres_connection_broken_while_idle_is_replaced_unnoticed() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    let direct: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let target: SocketAddr = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = Database::connect(
        &with_address(&db.url, &format!("127.0.0.1:{}", proxy.port)),
        PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let app = spawn_app_from(
        Stores {
            users: proxied.users(),
            sessions: proxied.sessions(),
            memory: None,
            db: Some(db),
        },
        &[],
    )
    .await;
    let login = app.login_demo().await;
    let cookie = login.refresh_cookie().unwrap();

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Every open connection is cut; new ones get through.
    proxy.set_up(false);
    proxy.set_up(true);
    let refreshed = app.refresh(Some(&cookie)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(app.me(&refreshed.access_token()).await.status, 200);
}

// ---- Several instances on one database ----

pub(crate) fn socket_settings(extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_SECRET_KEY", TEST_SECRET),
    ];
    pairs.extend_from_slice(extra);
    Settings::from_pairs(&pairs).unwrap()
}

/// Builds the service from settings exactly as `main` does and serves it on port 0.
pub(crate) async fn serve(
    settings: Settings,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    (base, tokio::spawn(app.run_until_stopped()))
}

struct Http(reqwest::Client);

impl Http {
    fn new() -> Self {
        Self(reqwest::Client::new())
    }

    /// Login as the demo user: (access token, refresh token).
    async fn login(&self, base: &str) -> (String, String) {
        let resp = self
            .0
            .post(format!("{base}/auth/login"))
            .json(&json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Self::tokens(resp).await
    }

    async fn tokens(resp: reqwest::Response) -> (String, String) {
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

    /// Refresh: the new tokens on 200, the status otherwise.
    async fn refresh(&self, base: &str, cookie: &str) -> Result<(String, String), u16> {
        let resp = self
            .0
            .post(format!("{base}/auth/refresh"))
            .header("cookie", format!("refresh_token={cookie}"))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => Ok(Self::tokens(resp).await),
            other => Err(other),
        }
    }

    async fn me(&self, base: &str, access: &str) -> u16 {
        self.0
            .get(format!("{base}/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn two_instances_share_sessions_and_reuse_detection() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    // Both instances run the start-up migrations (a no-op here) and seed the demo user.
    let settings = socket_settings(&[("DATABASE_URL", &db.url)]);
    let (a, server_a) = serve(settings.clone()).await;
    let (b, server_b) = serve(settings).await;
    let http = Http::new();

    // A session opened at A is refreshed at B.
    let (_, cookie) = http.login(&a).await;
    let (access_b, _) = http.refresh(&b, &cookie).await.unwrap();
    assert_eq!(http.me(&a, &access_b).await, 200);

    // Login at A, refresh twice at A. The token just rotated, replayed at B within the grace
    // window, gets the successor A issued: both instances derive the same one.
    let (_, old) = http.login(&a).await;
    let (_, mid) = http.refresh(&a, &old).await.unwrap();
    let (_, newest) = http.refresh(&a, &mid).await.unwrap();
    let (newest_access, again) = http.refresh(&b, &mid).await.unwrap();
    assert_eq!(again, newest, "B answers the replay with A's successor");
    // The token two generations old, replayed at B: 401 and the family is dead at both.
    assert_eq!(http.refresh(&b, &old).await, Err(401), "replay at B");
    assert_eq!(
        http.refresh(&a, &newest).await,
        Err(401),
        "newest dead at A"
    );
    assert_eq!(
        http.refresh(&b, &newest).await,
        Err(401),
        "newest dead at B"
    );
    assert_eq!(http.me(&a, &newest_access).await, 401);
    assert_eq!(http.me(&b, &newest_access).await, 401);
    // The first family is untouched.
    assert_eq!(http.me(&b, &access_b).await, 200);
    server_a.abort();
    server_b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn parallel_refreshes_across_two_instances_give_one_successor() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    let settings = socket_settings(&[("DATABASE_URL", &db.url)]);
    let (a, server_a) = serve(settings.clone()).await;
    let (b, server_b) = serve(settings).await;
    let http = Arc::new(Http::new());
    let (_, cookie) = http.login(&a).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (http, cookie) = (http.clone(), cookie.clone());
        let base = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { http.refresh(&base, &cookie).await });
    }
    let mut cookies = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let (_, next) = result.unwrap().expect("every tab is answered with 200");
        cookies.insert(next);
    }
    assert_eq!(cookies.len(), 1, "one successor over both instances");
    let next = cookies.into_iter().next().unwrap();
    assert!(http.refresh(&b, &next).await.is_ok(), "and it is current");
    let current = db
        .db
        .query_i64("SELECT count(*) FROM refresh_tokens WHERE consumed_at IS NULL")
        .await
        .unwrap();
    assert_eq!(current, 1, "exactly one current token");
    server_a.abort();
    server_b.abort();
}

pub async fn sessions_survive_a_restart(app: TestApp) {
    // The first "process": the test app. The second: the service built from settings on the
    // same database, as after a restart.
    let login = app.login_demo().await;
    let cookie = login.refresh_cookie().unwrap();
    let url = app.db.as_ref().unwrap().url.clone();
    let (base, server) = serve(socket_settings(&[("DATABASE_URL", &url)])).await;
    let http = Http::new();
    let (access, _) = http
        .refresh(&base, &cookie)
        .await
        .expect("the session survived the restart");
    assert_eq!(http.me(&base, &access).await, 200);
    server.abort();
}

// ---- Start-up, migrations and the operator commands of the binary ----

/// Runs the binary in an empty directory (no `.env`) with only these variables.
pub(crate) fn jwt_auth(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let dir = std::env::temp_dir().join(format!("jwt-auth-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwt-auth"))
        .args(args)
        .env_clear()
        .env("BCRYPT_COST", "4")
        .envs(env.iter().copied())
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    out
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn unreachable_database_at_start_is_one_line_and_a_non_zero_exit() {
    let missing_dir = std::env::temp_dir().join(format!("jwt-auth-nodir-{}", uuid::Uuid::new_v4()));
    let sqlite = format!("sqlite://{}", missing_dir.join("auth.db").display());
    for url in [
        "postgres://postgres:pw-canary@127.0.0.1:1/x",
        sqlite.as_str(),
    ] {
        for args in [&[][..], &["migrate"], &["user", "list"]] {
            let out = jwt_auth(
                args,
                &[("DATABASE_URL", url), ("JWT_SECRET_KEY", TEST_SECRET)],
                None,
            );
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{args:?} {url}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
            assert!(
                err.starts_with("jwt-auth: cannot "),
                "{args:?} {url}: {err}"
            );
            assert!(!err.contains("pw-canary"), "no password: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

async fn run_migrations_off_refuses_an_old_schema(store: Store) {
    let db = match store {
        Store::Postgres => match TestDb::postgres_unmigrated().await {
            Some(db) => db,
            None => return,
        },
        _ => TestDb::sqlite_unmigrated().await,
    };
    let off = socket_settings(&[("DATABASE_URL", &db.url), ("RUN_MIGRATIONS", "false")]);
    let err = format!("{:#}", Adapters::from_settings(&off).await.err().unwrap());
    assert!(err.contains("jwt-auth migrate"), "{err}");

    let first = jwt_auth(&["migrate"], &[("DATABASE_URL", &db.url)], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    // As many as the binary embeds: the files of this dialect's folder.
    let folder = if store == Store::Postgres {
        "postgres"
    } else {
        "sqlite"
    };
    let embedded = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
    })
    .count();
    assert!(
        text(&first.stdout).contains(&format!("{embedded} migration(s) applied")),
        "{}",
        text(&first.stdout)
    );
    let again = jwt_auth(&["migrate"], &[("DATABASE_URL", &db.url)], None);
    assert!(text(&again.stdout).contains("0 migration(s) applied"));
    assert!(Adapters::from_settings(&off).await.is_ok());
}

#[tokio::test]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn run_migrations_off_refuses_an_old_schema_on_postgres() {
    run_migrations_off_refuses_an_old_schema(Store::Postgres).await;
}

#[tokio::test]
async fn run_migrations_off_refuses_an_old_schema_on_sqlite() {
    run_migrations_off_refuses_an_old_schema(Store::Sqlite).await;
}

#[tokio::test]
async fn user_commands_need_a_database_and_migrate_says_so_too() {
    for args in [&["user", "list"][..], &["migrate"]] {
        let out = jwt_auth(args, &[], None);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("DATABASE_URL is not set"));
    }
}

/// `user add` (stdin), `list`, `disable` (sessions revoked, access cut) and `enable` against
/// the database the app serves from.
pub async fn cli_user_commands_work_on_the_served_database(app: TestApp) {
    let url = app.db.as_ref().unwrap().url.clone();
    let env = [("DATABASE_URL", url.as_str())];

    let add = jwt_auth(
        &["user", "add", "--email", "Ops@Example.com"],
        &env,
        Some("a long password\n"),
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    assert!(text(&add.stdout).contains("ops@example.com"));
    let login = app.login("ops@example.com", "a long password").await;
    assert_eq!(login.status, 200, "the CLI's hash works at login");

    for (email, password, why) in [
        ("OPS@example.com", "another long one\n", "already exists"),
        ("short@example.com", "short\n", "at least 8 characters"),
        ("not-an-email", "a long password\n", "email"),
    ] {
        let out = jwt_auth(&["user", "add", "--email", email], &env, Some(password));
        assert!(!out.status.success(), "{email}");
        let err = text(&out.stderr);
        assert!(err.contains(why), "{email}: {err}");
        assert!(!err.contains(password.trim()), "never echoes the password");
    }

    let list = jwt_auth(&["user", "list"], &env, None);
    let listed = text(&list.stdout);
    assert!(
        listed.starts_with("id\temail\tcreated\tdisabled\temail_verified\n"),
        "{listed}"
    );
    let ops_row = listed
        .lines()
        .find(|l| l.contains("ops@example.com"))
        .unwrap();
    assert!(
        ops_row.ends_with("\tfalse\ttrue"),
        "an account an operator adds counts as verified: {ops_row}"
    );
    assert!(listed.contains(DEMO_EMAIL) && listed.contains("ops@example.com"));
    assert!(
        !listed.contains("$2b$") && !listed.contains("$bcrypt"),
        "never a hash: {listed}"
    );

    let demo = app.login_demo().await;
    let disable = jwt_auth(&["user", "disable", "--email", DEMO_EMAIL], &env, None);
    assert!(disable.status.success(), "{}", text(&disable.stderr));
    assert!(
        text(&disable.stdout).contains("1 live session(s) revoked"),
        "{}",
        text(&disable.stdout)
    );
    app.me(&demo.access_token())
        .await
        .assert_error(401, "invalid_token");
    app.refresh(demo.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    assert!(text(&jwt_auth(&["user", "list"], &env, None).stdout).contains("\ttrue"));

    let enable = jwt_auth(&["user", "enable", "--email", DEMO_EMAIL], &env, None);
    assert!(enable.status.success());
    assert_eq!(app.login_demo().await.status, 200);
    let unknown = jwt_auth(
        &["user", "disable", "--email", "nobody@example.com"],
        &env,
        None,
    );
    assert!(!unknown.status.success());
}

#[tokio::test]
#[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
async fn purge_through_the_port_deletes_rows_and_tokens_cascade() {
    let Some(db) = TestDb::new(Store::Postgres).await else {
        return;
    };
    let app = spawn_app_from(
        Stores {
            users: db.users(),
            sessions: db.sessions(),
            memory: None,
            db: None,
        },
        &[],
    )
    .await;
    for _ in 0..3 {
        let cookie = app.login_demo().await.refresh_cookie();
        app.refresh(cookie.as_deref()).await;
    }
    let tokens = || async {
        db.db
            .query_i64("SELECT count(*) FROM refresh_tokens")
            .await
            .unwrap()
    };
    assert_eq!(tokens().await, 6);
    let end = Timestamp::from_unix(T0 + 30 * 86_400);
    assert_eq!(db.sessions().purge(end, 2).await.unwrap(), 2);
    assert_eq!(
        tokens().await,
        2,
        "the purged sessions' tokens went with them"
    );
    // A session that has not ended is kept.
    let live = Session {
        id: SessionId::new_random(),
        user_id: app.users.inner.list().await.unwrap()[0].id,
        created_at: end,
        expires_at: Timestamp::from_unix(T0 + 60 * 86_400),
        idle_expires_at: None,
    };
    let origin = SessionOrigin {
        user_agent: None,
        client: ClientAddress::unknown(),
    };
    assert!(db
        .sessions()
        .create_session(&live, RefreshToken::generate().hash(), &origin, 20)
        .await
        .unwrap());
    assert_eq!(db.sessions().purge(end, 100).await.unwrap(), 1);
    assert!(db
        .sessions()
        .live_session_user(live.id, end)
        .await
        .unwrap()
        .is_some());
}

/// On SQLite a made-up refresh cookie is refused without the database's one write lock, so a
/// flood of them cannot queue behind real writers (nor wait out the busy timeout into 503s).
#[tokio::test]
async fn an_unknown_refresh_token_is_refused_without_sqlites_write_lock() {
    use sqlx::{Connection, Executor};
    let app = spawn_app_on(Store::Sqlite).await.expect("SQLite");
    let url = app.db.as_ref().expect("a database").url.clone();
    let mut writer = sqlx::SqliteConnection::connect(&url).await.unwrap();
    writer.execute("BEGIN IMMEDIATE").await.unwrap(); // holds the write lock
                                                      // Waiting for the lock would end in the busy timeout's 503.
    app.refresh(Some(RefreshToken::generate().as_str()))
        .await
        .assert_error(401, "invalid_refresh_token");
    writer.execute("ROLLBACK").await.unwrap();
}

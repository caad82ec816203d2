//! Stored password-hash formats over HTTP and the real binary: a bare `$2b$` row left by an
//! earlier version, and bcrypt hashes made by Python's passlib brought in with
//! `jwt-auth user import`, all log in and are rewritten under the policy after the login.
//! The database cases run on PostgreSQL and SQLite through `durable.rs`'s `on_databases!`.

use std::time::Duration;

use jwt_auth::adapters::outbound::password_formats::prehash;
use jwt_auth::domain::Email;
use jwt_auth::ports::UserRepo;

use crate::durable::{jwt_auth, text};
use crate::helpers::*;

/// The password of `tests/fixtures/passlib_users.csv`, whose hash passlib 1.7.4 made with
/// `passlib.hash.bcrypt.using(rounds=4).hash(...)` (bcrypt 4.0.1).
const FIXTURE_PASSWORD: &str = "correct horse battery staple";
const FIXTURE_EMAIL: &str = "passlib.user@example.com";

/// The stored hash of `email`.
async fn stored(app: &TestApp, email: &str) -> String {
    let email = Email::parse(email).unwrap();
    app.users
        .find_by_email(&email)
        .await
        .unwrap()
        .expect("the account exists")
        .password_hash
        .as_str()
        .to_owned()
}

/// The stored hash once the background upgrade after a login has replaced `before`.
async fn upgraded(app: &TestApp, email: &str, before: &str) -> String {
    for _ in 0..250 {
        let now = stored(app, email).await;
        if now != before {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the hash of {email} was never replaced");
}

/// A row as earlier versions wrote it: bcrypt's own `$2b$` string over the pre-hash.
pub async fn a_legacy_prehashed_row_logs_in_and_is_rewritten_as_phc(app: TestApp) {
    let db = app.db.as_ref().expect("a database");
    let legacy = bcrypt::non_truncating_hash(prehash(b"an old passphrase"), 4).unwrap();
    db.insert_user_row("legacy@example.com", &legacy).await;

    app.login("legacy@example.com", "an old passphrase!")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        stored(&app, "legacy@example.com").await,
        legacy,
        "no upgrade on a failure"
    );
    assert_eq!(
        app.login("legacy@example.com", "an old passphrase")
            .await
            .status,
        200
    );
    let now = upgraded(&app, "legacy@example.com", &legacy).await;
    assert!(now.starts_with("$bcrypt-hmac-sha256$v=1$r=4$"), "{now}");
    assert_eq!(
        app.login("legacy@example.com", "an old passphrase")
            .await
            .status,
        200,
        "the password still works after the rewrite"
    );
    app.login("legacy@example.com", "an old passphrase!")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        stored(&app, "legacy@example.com").await,
        now,
        "stable once current"
    );
}

/// Imports `file` into the app's database with the binary, then logs in with `password`:
/// the row holds the marked plain-bcrypt form until the login, the policy's form after it.
async fn import_log_in_and_upgrade(
    app: &TestApp,
    file: &std::path::Path,
    email: &str,
    password: &str,
) {
    let url = app.db.as_ref().expect("a database").url.clone();
    let file = file.to_str().unwrap();
    let out = jwt_auth(&["user", "import", file], &[("DATABASE_URL", &url)], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 1 account(s), skipped 0 existing"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("$2") && !stderr.contains("$2"),
        "never a hash: {stdout}{stderr}"
    );

    let account = app
        .users
        .find_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .expect("imported");
    assert!(
        account.email_verified,
        "an imported account counts as verified"
    );
    let imported = stored(app, email).await;
    assert!(
        imported.starts_with("$bcrypt$r="),
        "marked as plain bcrypt: {imported}"
    );
    app.login(email, &format!("{password}x"))
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(app.login(email, password).await.status, 200);
    let now = upgraded(app, email, &imported).await;
    assert!(now.starts_with("$bcrypt-hmac-sha256$v=1$r=4$"), "{now}");
    assert_eq!(
        app.login(email, password).await.status,
        200,
        "after the upgrade"
    );
    app.login(email, &format!("{password}x"))
        .await
        .assert_error(401, "invalid_credentials");

    // A second run changes nothing and says why.
    let again = jwt_auth(&["user", "import", file], &[("DATABASE_URL", &url)], None);
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        stdout.contains("imported 0 account(s), skipped 1 existing"),
        "{stdout}"
    );
    assert_eq!(stored(app, email).await, now);
}

/// Plain bcrypt reads 72 bytes, so a password that shares them verifies whatever follows;
/// the upgrade must not store that password, or the owner's own would stop working.
pub async fn a_plain_bcrypt_hash_is_not_upgraded_from_a_password_past_72_bytes(app: TestApp) {
    let db = app.db.as_ref().expect("a database");
    let head = "p".repeat(72);
    let (own, other) = (format!("{head}-the-owners-tail"), format!("{head}-guessed"));
    let plain = bcrypt::hash(own.as_bytes(), 4).unwrap();
    let imported = jwt_auth::adapters::outbound::password_formats::import(&plain).unwrap();
    assert!(imported.starts_with("$bcrypt$r=4$"), "{imported}");
    db.insert_user_row("long@example.com", &imported).await;

    assert_eq!(app.login("long@example.com", &other).await.status, 200);
    // Give a background upgrade every chance to run, then check it did not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&app, "long@example.com").await, imported);
    assert_eq!(
        app.login("long@example.com", &own).await.status,
        200,
        "the owner's password still works"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&app, "long@example.com").await, imported);

    // A password within 72 bytes is upgraded as before.
    let short = bcrypt::hash("short enough", 4).unwrap();
    let short = jwt_auth::adapters::outbound::password_formats::import(&short).unwrap();
    db.insert_user_row("short@example.com", &short).await;
    assert_eq!(
        app.login("short@example.com", "short enough").await.status,
        200
    );
    let now = upgraded(&app, "short@example.com", &short).await;
    assert!(now.starts_with("$bcrypt-hmac-sha256$"), "{now}");
}

/// The committed passlib fixture, so `cargo test` alone covers the import path.
pub async fn a_passlib_hash_imported_with_the_cli_logs_in_and_is_upgraded(app: TestApp) {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/passlib_users.csv");
    import_log_in_and_upgrade(&app, &file, FIXTURE_EMAIL, FIXTURE_PASSWORD).await;
}

/// A bad row refuses the whole file: nothing is written, every problem is listed by row,
/// and no hash is echoed.
pub async fn a_file_with_a_bad_row_imports_nothing(app: TestApp) {
    let url = app.db.as_ref().expect("a database").url.clone();
    let dir = std::env::temp_dir().join(format!("jwt-auth-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = "$2b$04$1XD4f8Lx2noy4jmAjNtQReMiD5aEKH6GMwPH42zh7GN6U4ss.N5le";
    let rows = serde_json::json!([
        { "email": "ok@example.com", "hash": good },
        { "email": "OK@example.com", "hash": good },
        { "email": "not-an-email", "hash": good },
        { "email": "costly@example.com", "hash": good.replacen("$04$", "$31$", 1) },
        { "email": "argon@example.com", "hash": "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA" },
        { "email": "junk@example.com", "hash": "secret-looking-junk" },
    ]);
    let file = dir.join("users.json");
    std::fs::write(&file, rows.to_string()).unwrap();
    let out = jwt_auth(
        &["user", "import", file.to_str().unwrap()],
        &[("DATABASE_URL", &url)],
        None,
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("nothing imported; 5 problem(s)"),
        "{stderr}"
    );
    for row in [
        "row 2:",
        "row 3:",
        "row 4 (costly@example.com)",
        "row 5 (argon@example.com)",
        "row 6 (junk@example.com)",
    ] {
        assert!(stderr.contains(row), "{row}: {stderr}");
    }
    assert!(
        !stderr.contains("1XD4f8") && !stderr.contains("secret-looking"),
        "{stderr}"
    );
    let email = Email::parse("ok@example.com").unwrap();
    assert!(
        app.users.find_by_email(&email).await.unwrap().is_none(),
        "nothing written"
    );

    let csv = dir.join("broken.csv");
    std::fs::write(&csv, "mail,pw\na@b.co,x\n").unwrap();
    let out = jwt_auth(
        &["user", "import", csv.to_str().unwrap()],
        &[("DATABASE_URL", &url)],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("header row"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The same with a hash Python's passlib makes now (CI installs passlib 1.7.4 and bcrypt
/// 4.0.1 first; see `.ci/run`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs python3 with passlib and bcrypt; .ci/run runs it"]
async fn a_hash_made_by_python_passlib_imports_logs_in_and_is_upgraded() {
    let app = spawn_app_on(Store::Sqlite).await.unwrap();
    let password = "Ünïcode and a long passphrase, made by passlib";
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from passlib.hash import bcrypt; \
             print(bcrypt.using(rounds=4).hash(sys.argv[1]))",
            password,
        ])
        .output()
        .expect("python3 runs (CI installs passlib and bcrypt)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout).trim().to_owned();
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    let dir = std::env::temp_dir().join(format!("jwt-auth-passlib-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.csv");
    std::fs::write(&file, format!("email,hash\npython@example.com,{hash}\n")).unwrap();
    import_log_in_and_upgrade(&app, &file, "python@example.com", password).await;
    let _ = std::fs::remove_dir_all(dir);
}

//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds them at compile time.
//!
//! Without `TEST_DATABASE_URL` the PostgreSQL tests are marked ignored (`cfg(no_postgres)`),
//! so `cargo test` reports them as ignored instead of passing without running. With
//! `REQUIRE_POSTGRES=1` they are never ignored: they run and fail for want of the URL.
//! The Redis tests likewise: `TEST_REDIS_URL`, `cfg(no_redis)`, `REQUIRE_REDIS=1`.

fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=REQUIRE_POSTGRES");
    println!("cargo::rustc-check-cfg=cfg(no_postgres)");
    let url_set = std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.trim().is_empty());
    let required = std::env::var("REQUIRE_POSTGRES").as_deref() == Ok("1");
    if !url_set {
        if required {
            println!(
                "cargo::warning=REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set: \
                 the PostgreSQL tests will fail"
            );
        } else {
            println!("cargo::rustc-cfg=no_postgres");
        }
    }
    println!("cargo::rerun-if-env-changed=TEST_REDIS_URL");
    println!("cargo::rerun-if-env-changed=REQUIRE_REDIS");
    println!("cargo::rustc-check-cfg=cfg(no_redis)");
    let url_set = std::env::var("TEST_REDIS_URL").is_ok_and(|url| !url.trim().is_empty());
    let required = std::env::var("REQUIRE_REDIS").as_deref() == Ok("1");
    if !url_set {
        if required {
            println!(
                "cargo::warning=REQUIRE_REDIS=1 but TEST_REDIS_URL is not set: \
                 the Redis tests will fail"
            );
        } else {
            println!("cargo::rustc-cfg=no_redis");
        }
    }
}

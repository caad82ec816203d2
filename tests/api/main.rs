//! HTTP integration tests: the real app in-process (poem's test client), with adapters swapped
//! per test (a manual clock, failing stores), plus one smoke test over a real socket.

/// Runs each named `async fn(SigningAlgorithm)` once per algorithm family: HS256 and each
/// asymmetric algorithm, as its own test (`hs256::name`, `eddsa::name`, ...).
macro_rules! for_each_algorithm {
    ($($name:ident),* $(,)?) => {
        for_each_algorithm!(@one hs256, HS256, $($name),*);
        for_each_algorithm!(@one eddsa, EdDSA, $($name),*);
        for_each_algorithm!(@one es256, ES256, $($name),*);
        for_each_algorithm!(@one rs256, RS256, $($name),*);
    };
    (@one $module:ident, $alg:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(jwt_auth::domain::SigningAlgorithm::$alg).await;
                }
            )*
        }
    };
}

/// Runs each named `async fn(Store)` once per store: `memory::name`, `sqlite::name` and
/// `postgres::name` (ignored, so counted, without `TEST_DATABASE_URL`).
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(crate::helpers::Store::Memory).await;
                }
            )*
        }
        on_databases!($($case),*);
    };
}

/// As `on_every_store`, on SQLite and PostgreSQL only.
macro_rules! on_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(crate::helpers::Store::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
                async fn $case() {
                    super::$case(crate::helpers::Store::Postgres).await;
                }
            )*
        }
    };
}

mod architecture;
mod at_rest;
mod audit;
mod boundaries;
mod claims;
mod contract;
mod csrf;
mod db;
mod demo;
mod durable;
mod events;
mod faults;
mod flow;
mod forgery;
mod group_commit;
mod hash_formats;
mod hash_queue;
mod helpers;
mod host;
mod input;
mod key_rotation;
mod keys;
mod login;
mod mail;
mod metrics;
mod openapi;
mod password;
mod reset;
mod reset_tokens;
mod revocation_stream;
mod revocations;
mod rotation;
mod sessions;
mod shutdown;
mod slow_clients;
mod smoke;
mod strict_json;
mod throttle;
mod throttle_pool;
mod throttle_shared;
mod verifier;
mod verifier_tls;
mod verify;
mod webhooks;

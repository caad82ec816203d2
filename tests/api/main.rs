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

mod architecture;
mod at_rest;
mod boundaries;
mod claims;
mod contract;
mod csrf;
mod db;
mod demo;
mod durable;
mod faults;
mod flow;
mod forgery;
mod hash_queue;
mod helpers;
mod host;
mod input;
mod key_rotation;
mod keys;
mod login;
mod openapi;
mod revocations;
mod rotation;
mod sessions;
mod shutdown;
mod slow_clients;
mod smoke;
mod strict_json;
mod throttle;
mod throttle_shared;
mod verifier;
mod webhooks;

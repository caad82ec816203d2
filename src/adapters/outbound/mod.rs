//! Driven adapters, each behind exactly one port.

pub mod audit;
pub mod clock;
pub mod db;
pub mod jose_issuer;
pub mod key_lifecycle;
pub mod mail;
pub mod memory;
pub mod memory_keys;
pub mod memory_reset;
pub mod memory_throttle;
pub mod metrics;
pub mod password_formats;
pub mod password_hasher;
pub mod redis_throttle;
pub mod rehash;
pub mod signing_keys;
pub mod successors;
pub mod throttle_outage;
pub mod verified_cache;
pub mod webhooks;

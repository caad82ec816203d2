//! Driven adapters, each behind exactly one port.

pub mod bcrypt_hasher;
pub mod clock;
pub mod jose_issuer;
pub mod memory;
pub mod memory_throttle;
pub mod postgres;
pub mod sql;
pub mod sqlite;

//! Driving adapters.

pub mod http;

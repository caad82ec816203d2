//! jwt-auth: short-lived JWT access tokens and rotating refresh tokens, as a ports-and-adapters
//! service. See README.md.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod ports;
pub mod startup;
pub mod telemetry;
pub mod verifier;

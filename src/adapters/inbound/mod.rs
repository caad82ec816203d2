//! Driving adapters: the HTTP edge and the operator command line.

pub mod cli;
pub mod http;

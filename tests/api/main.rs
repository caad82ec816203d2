//! HTTP integration tests: the real app in-process (poem's test client), with adapters swapped
//! per test (a manual clock, failing stores), plus one smoke test over a real socket.

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
mod login;
mod openapi;
mod rotation;
mod sessions;
mod shutdown;
mod slow_clients;
mod smoke;
mod strict_json;
mod throttle;

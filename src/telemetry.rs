//! Logging setup. Log lines carry ids and reasons, never a password, a token or a secret.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `RUST_LOG` (default `info`).
pub fn init() {
    init_with_default("info");
}

/// Logs to stderr at `RUST_LOG`, else at `default` (the operator commands use `warn`, so
/// their standard error shows only what needs attention).
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

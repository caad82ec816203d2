//! Logging setup. Log lines carry ids and reasons, never a password, a token or a secret.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

//! Logging setup. Log lines carry ids and reasons, never a password, a token or a secret.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Logs to stderr at `RUST_LOG`, else at `default` (the operator commands use `warn`, so
/// their standard error shows only what needs attention). Colour only on a terminal, so a
/// log file or collector never gets escape codes; `LogFormat::Json` writes one object a line.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

//! Composition root: parse the command line, load settings, wire adapters, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jwt_auth::adapters::inbound::cli;
use jwt_auth::adapters::inbound::http::openapi_service;
use jwt_auth::config::Settings;
use jwt_auth::startup::{Adapters, Application, UseCases};

// mimalloc: the request path allocates many small, short-lived objects (headers, JSON maps);
// glibc's malloc took ~15 % of `/auth/me` CPU in a profile, mimalloc about half of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "jwt-auth", version, about = "JWT authentication service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Write the OpenAPI document as openapi.json and openapi.yaml into a folder.
    Openapi {
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
    },
    /// Apply the pending database migrations (DATABASE_URL) and exit.
    Migrate,
    /// Manage accounts in the database (DATABASE_URL).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Manage the generated signing keys in the database (JWT_ALGORITHM EdDSA, ES256 or RS256
    /// without JWT_PRIVATE_KEY_FILE).
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Inspect the security-event webhook outbox in the database (DATABASE_URL).
    Webhooks {
        #[command(subcommand)]
        action: WebhooksCommand,
    },
    /// List the security events of the audit trail in the database (DATABASE_URL), newest
    /// first.
    Audit {
        /// Only the events of this account.
        #[arg(long)]
        email: Option<String>,
        /// Only events of this kind (e.g. login_failed, reuse_detected).
        #[arg(long, value_parser = cli::parse_kind)]
        kind: Option<jwt_auth::domain::EventKind>,
        /// Only events since: RFC 3339, Unix seconds, or a span back (30m, 24h, 7d, 2w).
        #[arg(long, value_parser = cli::parse_since)]
        since: Option<cli::Since>,
        /// At most this many events (default 100, at most 10000).
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// How many events wait for delivery, and how many were given up on (dead-lettered).
    Status,
    /// Send every dead-lettered event again (after fixing the receiver).
    RetryDead,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the keys: kid, algorithm, state, created, activated, deactivated.
    List,
    /// Publish a next key now; the running instances make it current once it has been
    /// published for longer than verifiers cache the JWKS.
    Rotate,
    /// Withdraw a next or previous key at once (a compromised key): its tokens are refused
    /// from the instances' next reload on.
    Retire {
        #[arg(long)]
        kid: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is prompted for twice, or read from standard input
    /// when it is not a terminal; never from an argument.
    Add {
        #[arg(long)]
        email: String,
    },
    /// Disable an account and revoke all its sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// List the accounts: id, email, created, disabled.
    List,
    /// Create accounts from a file of `email` and `hash` (a JSON array of objects, or CSV
    /// with a header row): bcrypt hashes as passlib writes them, or PHC strings. Every row
    /// is checked first; a bad one refuses the file; existing emails are skipped.
    Import {
        file: PathBuf,
        /// json or csv; by default from the file name's extension.
        #[arg(long, value_enum)]
        format: Option<cli::ImportFormat>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("jwt-auth: {e}");
            return ExitCode::from(2);
        }
    };
    let default_level = match cli.command {
        None | Some(Command::Serve) => "info",
        Some(_) => "warn",
    };
    jwt_auth::telemetry::init(settings.log_format, default_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jwt-auth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Openapi { out } => write_openapi(&out),
            Command::Migrate => print(jwt_auth::startup::migrate(&settings).await),
            Command::User { action } => user(&settings, action).await,
            Command::Keys { action } => keys(&settings, action).await,
            Command::Webhooks { action } => webhooks(&settings, action).await,
            Command::Audit {
                email,
                kind,
                since,
                limit,
                json,
            } => {
                let args = cli::AuditArgs {
                    email,
                    kind,
                    since,
                    limit,
                    json,
                };
                audit(&settings, &args).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jwt-auth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let adapters = Adapters::from_settings(&settings).await?;
    let app = Application::build(&settings, &adapters).await?;
    tracing::info!(
        app = %settings.app_name,
        env = ?settings.env,
        "listening on http://{}:{} (Swagger UI at /docs)",
        settings.host,
        app.port()
    );
    app.run_until_stopped().await?;
    Ok(())
}

async fn user(settings: &Settings, action: UserCommand) -> anyhow::Result<()> {
    // Read before connecting, so a refused password opens nothing.
    let password = match &action {
        UserCommand::Add { .. } => Some(cli::read_new_password()?),
        _ => None,
    };
    let adapters = Adapters::of_database(settings).await?;
    let cases = UseCases::new(settings, &adapters);
    let out = match (action, password) {
        (UserCommand::Add { email }, Some(password)) => {
            cli::user_add(&cases.register, &email, &password).await
        }
        (UserCommand::Add { .. }, None) => Err(anyhow::anyhow!("no password was read")),
        (UserCommand::Disable { email }, _) => {
            cli::user_set_disabled(&cases.set_disabled, &email, true).await
        }
        (UserCommand::Enable { email }, _) => {
            cli::user_set_disabled(&cases.set_disabled, &email, false).await
        }
        (UserCommand::List, _) => cli::user_list(adapters.users.as_ref()).await,
        (UserCommand::Import { file, format }, _) => {
            cli::user_import(
                adapters.users.as_ref(),
                adapters.clock.as_ref(),
                &file,
                format,
            )
            .await
        }
    };
    // Events of the command (e.g. account_disabled, when selected) join the outbox that
    // the running instances deliver from.
    if let Some(webhooks) = &adapters.webhooks {
        if let Err(e) = webhooks.flush().await {
            tracing::warn!(error = %e, "webhook events of this command not queued");
        }
    }
    adapters.close().await;
    print(out)
}

async fn webhooks(settings: &Settings, action: WebhooksCommand) -> anyhow::Result<()> {
    let db = jwt_auth::startup::open_database(settings)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "DATABASE_URL is not set: the in-memory outbox lives only inside a running server"
            )
        })?;
    let outbox = db.webhook_outbox();
    let out = match action {
        WebhooksCommand::Status => cli::webhooks_status(outbox.as_ref()).await,
        WebhooksCommand::RetryDead => cli::webhooks_retry_dead(outbox.as_ref()).await,
    };
    db.close().await;
    print(out)
}

async fn audit(settings: &Settings, args: &cli::AuditArgs) -> anyhow::Result<()> {
    let adapters = Adapters::of_database(settings).await?;
    let log = adapters
        .audit
        .as_ref()
        .map(|t| t.log())
        .ok_or_else(|| anyhow::anyhow!("AUDIT_ENABLED is off: no audit trail is kept"))?;
    let out = cli::audit(
        log.as_ref(),
        adapters.users.as_ref(),
        adapters.clock.as_ref(),
        args,
    )
    .await;
    adapters.close().await;
    print(out)
}

async fn keys(settings: &Settings, action: KeysCommand) -> anyhow::Result<()> {
    if !settings.generates_keys() {
        anyhow::bail!(
            "keys are generated and stored only under JWT_ALGORITHM EdDSA, ES256 or RS256 without \
             JWT_PRIVATE_KEY_FILE"
        );
    }
    let adapters = Adapters::of_database(settings).await?;
    let lifecycle = adapters
        .key_lifecycle
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no key lifecycle for these settings"))?;
    let out = match action {
        KeysCommand::List => lifecycle.list().await,
        KeysCommand::Rotate => lifecycle.rotate().await,
        KeysCommand::Retire { kid } => lifecycle.retire(&kid).await,
    };
    adapters.close().await;
    print(out)
}

fn print(out: anyhow::Result<String>) -> anyhow::Result<()> {
    println!("{}", out?);
    Ok(())
}

fn write_openapi(out: &std::path::Path) -> anyhow::Result<()> {
    // The committed spec has the relative server entry, whatever is configured.
    let service = openapi_service(None);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("openapi.json"), service.spec())?;
    std::fs::write(out.join("openapi.yaml"), service.spec_yaml())?;
    println!("wrote {}/openapi.json and openapi.yaml", out.display());
    Ok(())
}

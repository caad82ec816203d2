//! Which database to open, and the migration policy at start-up.

use crate::adapters::outbound::db::{Database, PoolSettings};
use crate::config::Settings;

/// The pool settings for this configuration.
pub fn pool_settings(settings: &Settings) -> PoolSettings {
    PoolSettings {
        max_connections: settings.database_max_connections,
        ..PoolSettings::default()
    }
}

/// Connects to the database `DATABASE_URL` names, if any, and migrates it unless
/// `RUN_MIGRATIONS` is off (then checks that nothing is pending).
///
/// # Errors
/// One line when the database cannot be reached, its migration fails or its schema is behind
/// this binary; never the URL's password.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Option<Database>> {
    let Some(url) = settings.database_url.as_ref() else {
        return Ok(None);
    };
    let db = Database::connect(url.expose(), pool_settings(settings)).await?;
    if settings.run_migrations {
        db.migrate().await?;
    } else {
        let pending = db.pending_migrations().await?;
        if pending > 0 {
            anyhow::bail!(
                "the schema of {} is {pending} migration(s) behind this binary: run `jwt-auth \
                 migrate` or set RUN_MIGRATIONS=true",
                db.describe()
            );
        }
    }
    tracing::info!(database = db.describe(), "using the database store");
    Ok(Some(db))
}

/// `jwt-auth migrate`: applies the pending migrations, whatever `RUN_MIGRATIONS` says.
///
/// # Errors
/// Without `DATABASE_URL`, or when the database cannot be reached or a migration fails.
pub async fn migrate(settings: &Settings) -> anyhow::Result<String> {
    let url = settings.database_url.as_ref().ok_or_else(|| {
        anyhow::anyhow!("DATABASE_URL is not set: the in-memory store has no schema to migrate")
    })?;
    let db = Database::connect(url.expose(), pool_settings(settings)).await?;
    let pending = db.pending_migrations().await?;
    db.migrate().await?;
    let out = format!(
        "{}: {pending} migration(s) applied, schema up to date",
        db.describe()
    );
    db.close().await;
    Ok(out)
}

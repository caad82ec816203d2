//! Real databases for tests: a fresh SQLite file, or a fresh PostgreSQL database on the server
//! `TEST_DATABASE_URL` names, per test, so tests run in parallel; dropped when the test ends.
//!
//! Without `TEST_DATABASE_URL` the PostgreSQL tests are ignored (`cfg(no_postgres)`, set by
//! `build.rs`), unless `REQUIRE_POSTGRES=1` (CI) makes them run and fail instead. Should one
//! run without the URL anyway, it prints why it skips.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jwt_auth::adapters::outbound::db::{Database, DatabaseKind, PoolSettings};
use jwt_auth::adapters::outbound::memory::{InMemoryRefreshStore, InMemoryUserRepo};
use jwt_auth::ports::{RefreshStore, UserRepo};

/// The line a skipped PostgreSQL test prints on stderr.
pub const SKIP_LINE: &str = "SKIPPED postgres contract: TEST_DATABASE_URL not set";

/// Which adapters a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    Sqlite,
    Postgres,
}

/// The PostgreSQL server for tests, or `None` after printing `SKIP_LINE`.
///
/// # Panics
/// When `REQUIRE_POSTGRES=1` and `TEST_DATABASE_URL` is not set: a silent skip must fail CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set: the PostgreSQL tests \
                 would not run"
            );
            eprintln!("{SKIP_LINE}");
            None
        }
    }
}

/// `url` with its database name replaced by `name` (the query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("a URL with a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Pools for tests: enough connections for the races to be real, a short acquire timeout.
pub fn test_pool() -> PoolSettings {
    PoolSettings {
        max_connections: 12,
        acquire_timeout: Duration::from_secs(10),
    }
}

/// A database that lives as long as this value.
pub struct TestDb {
    pub db: Database,
    /// The `DATABASE_URL` of this database.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Postgres { server: String, name: String },
}

impl TestDb {
    /// A migrated database of this kind; `None` for the in-memory store, or when PostgreSQL
    /// is not configured (after printing why).
    pub async fn new(store: Store) -> Option<Self> {
        let db = match store {
            Store::Memory => return None,
            Store::Sqlite => Self::sqlite_unmigrated().await,
            Store::Postgres => Self::postgres_unmigrated().await?,
        };
        db.db.migrate().await.expect("migrations apply");
        Some(db)
    }

    /// An empty SQLite file in a fresh temporary directory (no schema yet).
    pub async fn sqlite_unmigrated() -> Self {
        let dir = std::env::temp_dir().join(format!("jwt-auth-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("auth.db").display());
        let db = Database::connect(&url, test_pool()).await.unwrap();
        Self {
            db,
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A freshly created, empty PostgreSQL database (no schema yet); `None` when skipped.
    pub async fn postgres_unmigrated() -> Option<Self> {
        let server = postgres_url()?;
        let name = format!("jwt_auth_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&server, test_pool())
            .await
            .expect("TEST_DATABASE_URL answers");
        assert_eq!(
            admin.kind(),
            DatabaseKind::Postgres,
            "TEST_DATABASE_URL must be a postgres:// URL"
        );
        admin
            .execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        let url = with_database(&server, &name);
        let db = Database::connect(&url, test_pool()).await.unwrap();
        Some(Self {
            db,
            url,
            cleanup: Cleanup::Postgres { server, name },
        })
    }

    pub fn users(&self) -> Arc<dyn UserRepo> {
        self.db.users()
    }

    pub fn sessions(&self) -> Arc<dyn RefreshStore> {
        self.db.sessions()
    }

    /// Stores, behind the service's back, an account whose email no longer parses (longer than
    /// allowed once lower-cased, as an older version could write); returns its id.
    pub async fn insert_unreadable_user(&self) -> uuid::Uuid {
        let email = format!("{}@x.io", "\u{69}\u{307}".repeat(200));
        self.insert_user_row(&email, "x").await
    }

    /// An account row written with SQL, as an earlier version (or an operator) left it.
    pub async fn insert_user_row(&self, email: &str, password_hash: &str) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        let created_at = match self.db.kind() {
            DatabaseKind::Postgres => "to_timestamp(1800000000)",
            DatabaseKind::Sqlite => "1800000000",
        };
        self.db
            .execute(&format!(
                "INSERT INTO users (id, email, password_hash, created_at, disabled) \
                 VALUES ('{id}', '{email}', '{password_hash}', {created_at}, false)"
            ))
            .await
            .unwrap();
        id
    }

    /// Sessions not revoked (ended or not), as the in-memory store counts them.
    pub async fn live_sessions(&self) -> i64 {
        self.db
            .query_i64("SELECT count(*) FROM sessions WHERE revoked_at IS NULL")
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { server, name } => {
                // On a thread of its own: Drop cannot await, and the test's runtime may be
                // single-threaded. FORCE ends the test's own pooled connections.
                let (server, name) = (server.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        if let Ok(admin) = Database::connect(&server, test_pool()).await {
                            if admin.kind() == DatabaseKind::Postgres {
                                let _ = admin
                                    .execute(&format!(
                                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                    ))
                                    .await;
                            }
                            admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// The two stores a test runs against, and what keeps their database alive.
pub struct Stores {
    pub users: Arc<dyn UserRepo>,
    pub sessions: Arc<dyn RefreshStore>,
    /// Set for the in-memory store, whose counts tests may read.
    pub memory: Option<Arc<InMemoryRefreshStore>>,
    pub db: Option<TestDb>,
}

impl Stores {
    /// Fresh stores of this kind; `None` when PostgreSQL is not configured.
    pub async fn new(store: Store) -> Option<Self> {
        if store == Store::Memory {
            let users = InMemoryUserRepo::new();
            let memory = Arc::new(InMemoryRefreshStore::new(&users));
            return Some(Self {
                users: Arc::new(users),
                sessions: memory.clone(),
                memory: Some(memory),
                db: None,
            });
        }
        let db = TestDb::new(store).await?;
        Some(Self {
            users: db.users(),
            sessions: db.sessions(),
            memory: None,
            db: Some(db),
        })
    }

    /// Stores on a database nobody answers for: a closed PostgreSQL port, or a SQLite file in
    /// a directory that does not exist. `None` for the in-memory store.
    pub fn unreachable(store: Store) -> Option<Self> {
        let url = match store {
            Store::Memory => return None,
            Store::Postgres => "postgres://postgres:pw-canary@127.0.0.1:1/x".to_owned(),
            Store::Sqlite => format!(
                "sqlite://{}",
                std::env::temp_dir()
                    .join(format!("jwt-auth-missing-{}", uuid::Uuid::new_v4()))
                    .join("auth.db")
                    .display()
            ),
        };
        let pool = PoolSettings {
            max_connections: 2,
            acquire_timeout: Duration::from_millis(500),
        };
        let db = Database::connect_lazy(&url, pool).unwrap();
        Some(Self {
            users: db.users(),
            sessions: db.sessions(),
            memory: None,
            db: None,
        })
    }
}

//! Connections to either backend behind one type, pooled by r2d2.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbError;
use crate::config::{DatabaseSettings, DatabaseUrl};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Two instances started together must not both run migrations at once; any constant works
/// as long as every tollgate uses the same one.
const MIGRATION_LOCK_ID: i64 = 0x746f_6c6c_6761_7465; // "tollgate"

/// How long a SQLite writer waits for another before reporting "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections for the backend the URL names. Diesel's own r2d2 manager for a
/// `MultiConnection` hides the real connection error; this one reports it.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    /// SQLite has one writer at a time, and a writer that finds the database locked sleeps
    /// in steps of milliseconds; under load those sleeps line up into a convoy. Writers of
    /// this process therefore queue here instead, where the next one wakes the moment the
    /// previous finishes. (Other processes on the same file still meet the busy timeout.)
    sqlite_writer: Option<Arc<Mutex<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] ConnectionError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("cannot create the SQLite directory {0}: {1}")]
    Directory(String, std::io::Error),
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        let sqlite_writer = matches!(url, DatabaseUrl::Sqlite(_)).then(Arc::default);
        Self { url, sqlite_writer }
    }

    fn establish(&self) -> Result<DbConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Postgres(PgConnection::establish(url)?)),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // WAL lets readers run beside the one writer; the busy timeout makes
                // concurrent writers wait for each other instead of failing.
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                ))?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// A pooled connection, marked broken when a query found the database gone, so that the
/// pool replaces it rather than hand it out again. This spares a ping on every checkout.
pub struct PoolConnection {
    conn: DbConnection,
    broken: bool,
    sqlite_writer: Option<Arc<Mutex<()>>>,
}

impl std::ops::Deref for PoolConnection {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for PoolConnection {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PoolConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<PoolConnection, ConnectError> {
        Ok(PoolConnection {
            conn: self.establish()?,
            broken: false,
            sqlite_writer: self.sqlite_writer.clone(),
        })
    }

    fn is_valid(&self, conn: &mut PoolConnection) -> Result<(), ConnectError> {
        Ok(R2D2Connection::ping(&mut conn.conn)?)
    }

    fn has_broken(&self, conn: &mut PoolConnection) -> bool {
        conn.broken || R2D2Connection::is_broken(&mut conn.conn)
    }
}

/// Builds the pool without waiting for the database: requests then fail fast with 503
/// while it is down and succeed again once it is back.
pub fn build_pool(settings: &DatabaseSettings) -> Result<Pool, ConnectError> {
    super::tls::init();
    if let DatabaseUrl::Sqlite(path) = &settings.url
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| ConnectError::Directory(dir.display().to_string(), e))?;
    }
    Ok(r2d2::Pool::builder()
        .max_size(settings.max_connections)
        .min_idle(Some(0))
        .connection_timeout(settings.connect_timeout)
        .test_on_check_out(false)
        .idle_timeout(Some(Duration::from_secs(300)))
        .build_unchecked(ConnectionManager::new(settings.url.clone())))
}

/// Applies pending migrations; returns how many ran. Instances starting together take
/// turns: a lock makes the second wait for the first, then find nothing pending.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, String> {
    type MigrationError = Box<dyn std::error::Error + Send + Sync>;
    let applied = match conn {
        // An exclusive transaction is SQLite's lock; each migration nests as a savepoint.
        DbConnection::Sqlite(conn) => conn.exclusive_transaction(|conn| -> Result<usize, MigrationError> {
            Ok(conn.run_pending_migrations(SQLITE_MIGRATIONS)?.len())
        }),
        DbConnection::Postgres(conn) => {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
                .map_err(|e| e.to_string())?;
            let result = conn.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len());
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
                .map_err(|e| e.to_string())?;
            result
        }
    };
    applied.map_err(|e| e.to_string())
}

/// Runs blocking database work on the runtime's blocking pool, never on an async worker.
pub async fn run<T, F>(pool: &Pool, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    run_on_pool(pool, false, work).await
}

/// [`run`] for work that writes: on SQLite, this process's writers take turns.
pub async fn run_write<T, F>(pool: &Pool, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    run_on_pool(pool, true, work).await
}

async fn run_on_pool<T, F>(pool: &Pool, writes: bool, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    // The request's log span (its id) goes along to the blocking thread.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _span = span.enter();
        let mut conn = pool.get()?;
        let writer = conn.sqlite_writer.clone().filter(|_| writes);
        let _turn = writer.as_ref().map(|lock| lock.lock().unwrap_or_else(|p| p.into_inner()));
        let result = work(&mut conn);
        conn.broken |= matches!(result, Err(DbError::Unavailable(_)));
        result
    })
    .await
    .map_err(|e| DbError::Other(format!("blocking pool: {e}")))?
}

//! Connections to either backend behind one type, pooled by r2d2.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbError;
use super::rotations::Rotations;
use super::writer::Writer;
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

/// The r2d2 pool (`get` and the rest through `Deref`), one permit per connection, and a
/// thread with a connection of its own for writes: on SQLite the one writer ([`Writer`]),
/// on PostgreSQL the batched rotations ([`Rotations`]).
/// Database work ([`run`]) waits for a permit, asynchronously and first come first
/// served, before it takes a thread of the blocking pool; without it, every request
/// waiting for a connection parks a blocking thread in r2d2's `get` (dozens under load),
/// and the threads are woken in no particular order.
#[derive(Clone)]
pub struct Pool {
    connections: r2d2::Pool<ConnectionManager>,
    permits: Arc<tokio::sync::Semaphore>,
    writes: Writes,
}

#[derive(Clone)]
enum Writes {
    Sqlite(Writer),
    Postgres(Rotations),
}

impl Pool {
    /// Starts what runs beside the writes once the schema is in place: on SQLite the
    /// checkpoints of the write-ahead log. Before the migrations they would only find the
    /// database locked. Later calls do nothing.
    pub fn start_background_work(&self) -> std::io::Result<()> {
        match &self.writes {
            Writes::Sqlite(writer) => writer.start_checkpoints(),
            Writes::Postgres(_) => Ok(()),
        }
    }

    /// PostgreSQL's batched rotations; `None` on SQLite, where every write is batched.
    pub fn rotations(&self) -> Option<&Rotations> {
        match &self.writes {
            Writes::Postgres(rotations) => Some(rotations),
            Writes::Sqlite(_) => None,
        }
    }
}

impl std::ops::Deref for Pool {
    type Target = r2d2::Pool<ConnectionManager>;
    fn deref(&self) -> &Self::Target {
        &self.connections
    }
}

pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections for the backend the URL names. Diesel's own r2d2 manager for a
/// `MultiConnection` hides the real connection error; this one reports it.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] ConnectionError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("cannot create the SQLite directory {0}: {1}")]
    Directory(String, std::io::Error),
    #[error("cannot start the database's write thread: {0}")]
    Writes(std::io::Error),
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    /// [`ConnectionManager::establish`] for a thread with a connection of its own, which
    /// answers its callers with [`DbError`]: a failure to connect is the database being
    /// unavailable.
    pub(super) fn open(&self) -> Result<DbConnection, DbError> {
        self.establish().map_err(|e| DbError::Unavailable(e.to_string()))
    }

    pub(super) fn establish(&self) -> Result<DbConnection, ConnectError> {
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
        Ok(PoolConnection { conn: self.establish()?, broken: false })
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
    let manager = ConnectionManager::new(settings.url.clone());
    let writes = match &settings.url {
        DatabaseUrl::Sqlite(_) => Writer::spawn(manager.clone()).map(Writes::Sqlite),
        DatabaseUrl::Postgres(_) => {
            Rotations::spawn(manager.clone(), settings.connect_timeout).map(Writes::Postgres)
        }
    }
    .map_err(ConnectError::Writes)?;
    let connections = r2d2::Pool::builder()
        .max_size(settings.max_connections)
        .min_idle(Some(0))
        .connection_timeout(settings.connect_timeout)
        .test_on_check_out(false)
        .idle_timeout(Some(Duration::from_secs(300)))
        .build_unchecked(manager);
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.max_connections as usize));
    Ok(Pool { connections, permits, writes })
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
    run_on_pool(pool, work).await
}

/// [`run`] for work that writes: on SQLite, it goes to the one writer and commits with
/// the writes queued beside it; on PostgreSQL, it runs on a pooled connection.
pub async fn run_write<T, F>(pool: &Pool, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    match &pool.writes {
        Writes::Sqlite(writer) => writer.run(work).await,
        Writes::Postgres(_) => run_on_pool(pool, work).await,
    }
}

async fn run_on_pool<T, F>(pool: &Pool, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    // Waiting as long as r2d2 would for a connection, and answering the same way.
    let permit = tokio::time::timeout(pool.connection_timeout(), pool.permits.clone().acquire_owned())
        .await
        .map_err(|_| DbError::Unavailable("timed out waiting for a database connection".into()))?
        .map_err(|e| DbError::Other(format!("connection permits: {e}")))?;
    let pool = pool.clone();
    // The request's log span (its id) goes along to the blocking thread.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        // Held until the work ends, even if the request that asked for it is gone.
        let _permit = permit;
        let _span = span.enter();
        let mut conn = pool.get()?;
        let result = work(&mut conn);
        conn.broken |= matches!(result, Err(DbError::Unavailable(_)));
        result
    })
    .await
    .map_err(|e| DbError::Other(format!("blocking pool: {e}")))?
}

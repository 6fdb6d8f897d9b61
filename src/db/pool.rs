//! The pool: reads on pooled connections, writes through [`Pool::write`] (on SQLite the
//! one writer, with group commit), and nothing else reaches a connection.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbError;
use super::manager::{ConnectError, ConnectionManager, DbConnection, WriteConn};
use super::models::LiveRotation;
use super::models::Rotated;
use super::rotations::Rotations;
use super::sessions::SessionStore;
use super::writer::Writer;
use crate::config::{DatabaseSettings, DatabaseUrl};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Two instances started together must not both run migrations at once; any constant works
/// as long as every tollgate uses the same one.
const MIGRATION_LOCK_ID: i64 = 0x746f_6c6c_6761_7465; // "tollgate"

/// The r2d2 pool, one permit per connection, and a thread with a connection of its own
/// for writes: on SQLite the one writer ([`Writer`]), on PostgreSQL the batched
/// rotations ([`Rotations`]). Work waits for a permit, asynchronously and first come
/// first served, before it takes a thread of the blocking pool; without it, every request
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
    /// Runs `work`, which only reads, on a pooled connection on the runtime's blocking
    /// pool, never on an async worker.
    pub async fn read<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        self.on_pool(work).await
    }

    /// Runs `work`, which writes: on SQLite in the one writer's next batch, committed with
    /// the writes queued beside it; on PostgreSQL on a pooled connection.
    pub async fn write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut WriteConn<'_>) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        match &self.writes {
            Writes::Sqlite(writer) => writer.run(move |conn| work(&mut WriteConn::in_writer(conn))).await,
            Writes::Postgres(_) => self.on_pool(move |conn| work(&mut WriteConn::new(conn))).await,
        }
    }

    /// Rotates a live refresh token in PostgreSQL's next batch of rotations; `None` when
    /// it was not rotated there (not live, the batch failed) and on SQLite, whose writes
    /// are all batched by the writer: then the caller takes the full rotation.
    pub async fn rotate_live_in_batch(
        &self,
        rotation: LiveRotation,
        store: SessionStore,
    ) -> Result<Option<Rotated>, DbError> {
        match &self.writes {
            Writes::Postgres(rotations) => rotations.rotate(rotation, store.batch_sql()).await,
            Writes::Sqlite(_) => Ok(None),
        }
    }

    /// Applies pending migrations, and only then starts what runs beside the writes
    /// (SQLite's checkpoints, which beside the migrations' exclusive transaction would
    /// find the database locked); returns how many migrations ran. Instances starting
    /// together take turns: a lock makes the second wait for the first, then find nothing
    /// pending.
    pub fn migrate(&self) -> Result<usize, String> {
        let mut conn = self.connections.get().map_err(|e| e.to_string())?;
        let applied = run_migrations(&mut conn)?;
        drop(conn);
        log::debug!("database schema is current ({applied} migration(s) applied)");
        if let Writes::Sqlite(writer) = &self.writes {
            writer.start_checkpoints().map_err(|e| e.to_string())?;
        }
        Ok(applied)
    }

    /// Runs `work`, which only reads, on the calling thread: for start-up, before any
    /// request is served.
    pub fn read_now<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        work(&mut self.connections.get()?.conn)
    }

    /// Connections handed out now, for the metrics.
    pub fn connections_in_use(&self) -> u32 {
        let state = self.connections.state();
        state.connections.saturating_sub(state.idle_connections)
    }

    async fn on_pool<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        // Waiting as long as r2d2 would for a connection, and answering the same way.
        let permit =
            tokio::time::timeout(self.connections.connection_timeout(), self.permits.clone().acquire_owned())
                .await
                .map_err(|_| DbError::Unavailable("timed out waiting for a database connection".into()))?
                .map_err(|e| DbError::Other(format!("connection permits: {e}")))?;
        let connections = self.connections.clone();
        // The request's log span (its id) goes along to the blocking thread.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            // Held until the work ends, even if the request that asked for it is gone.
            let _permit = permit;
            let _span = span.enter();
            let mut conn = connections.get()?;
            let result = work(&mut conn);
            conn.broken |= matches!(result, Err(DbError::Unavailable(_)));
            result
        })
        .await
        .map_err(|e| DbError::Other(format!("blocking pool: {e}")))?
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

fn run_migrations(conn: &mut DbConnection) -> Result<usize, String> {
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

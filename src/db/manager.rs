//! Connections to either backend behind one type, and what opens them: a leaf that the
//! pool, the batch threads and the queries all build on.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;

use super::DbError;
use crate::config::DatabaseUrl;

/// How long a SQLite writer waits for another before reporting "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
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

    pub fn establish(&self) -> Result<DbConnection, ConnectError> {
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
    pub(super) conn: DbConnection,
    pub(super) broken: bool,
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

/// A connection that may write, handed out only by [`super::Pool::write`]: queries that
/// write take one, so that a write cannot be sent through [`super::Pool::read`] and skip
/// SQLite's writer. On SQLite it runs inside the writer's batch transaction (a savepoint of
/// its own); on PostgreSQL it is a pooled connection in autocommit, so a write of several
/// statements takes [`WriteConn::transaction`].
pub struct WriteConn<'c> {
    conn: &'c mut DbConnection,
    /// The connection holds SQLite's write lock already: it is the writer's, whose batch
    /// began IMMEDIATE.
    write_locked: bool,
}

impl<'c> WriteConn<'c> {
    pub(super) fn new(conn: &'c mut DbConnection) -> Self {
        Self { conn, write_locked: false }
    }

    /// The SQLite writer's connection, inside its batch's `BEGIN IMMEDIATE`.
    pub(super) fn in_writer(conn: &'c mut DbConnection) -> Self {
        Self { conn, write_locked: true }
    }

    /// A write on a connection of the caller's own, outside the pool, its writer and its
    /// batches: for the tests and benchmarks that count or time single statements.
    /// Nothing in `src` calls it.
    pub fn direct(conn: &'c mut DbConnection) -> Self {
        Self::new(conn)
    }

    /// The connection itself, for a statement.
    pub fn conn(&mut self) -> &mut DbConnection {
        self.conn
    }

    /// Whether SQLite's write lock is held already (see [`WriteConn::in_writer`]).
    pub fn write_locked(&self) -> bool {
        self.write_locked
    }

    /// Runs `work` in a transaction (a savepoint inside one already open).
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut WriteConn<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let write_locked = self.write_locked;
        self.conn.transaction(|conn| work(&mut WriteConn { conn, write_locked }))
    }
}

impl std::ops::Deref for WriteConn<'_> {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        self.conn
    }
}

impl std::ops::DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut DbConnection {
        self.conn
    }
}

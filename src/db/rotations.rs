//! On PostgreSQL, the common refresh of many requests in one statement.
//!
//! One rotation alone is a round trip and a commit, and PostgreSQL spends most of its
//! time on the statement and the commit, not on the row. A thread with a connection of
//! its own rotates the live tokens presented meanwhile in one `UPDATE … FROM unnest(…)`
//! ([`User::rotate_live_sessions`]): one round trip and one commit for the batch. Only
//! the common case is batched; a token that was not rotated (expired, replayed, retried,
//! unknown), and every token of a batch that failed, is answered `None`, and the request
//! takes the full rotation ([`crate::auth::refresh::RefreshSessions::rotate`]) on a pooled
//! connection, which decides it exactly as before. That is also why a batch lost with its
//! connection after its commit costs nothing: the full rotation finds the token rotated
//! within the grace window and answers the same successor.
//!
//! The thread's transactions are REPEATABLE READ, so that the roles the statement reads
//! go with the rows it writes (see [`User::rotate_live_session`]). A batch that meets a
//! row written since its snapshot (a role taken away meanwhile) rotates nothing, and each
//! of its requests takes the full rotation, which retries; the connection stays.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use super::batch::Batches;
use super::manager::ConnectionManager;
use super::models::{LiveRotation, Rotated, User};
use super::{DbConnection, DbError};

/// The queue to the rotations thread; the thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Rotations {
    jobs: mpsc::Sender<Pending>,
    /// How long a request waits for its batch: as long as for a pooled connection.
    timeout: Duration,
}

struct Pending {
    rotation: LiveRotation,
    /// The statement for where the session lives (`SessionStore::batch_sql`).
    sql: &'static str,
    rotated: Option<Rotated>,
    reply: oneshot::Sender<Option<Rotated>>,
}

impl Rotations {
    pub fn spawn(manager: ConnectionManager, timeout: Duration) -> std::io::Result<Self> {
        let batches =
            Batches { name: "pg-rotations", max: 128, prepare: repeatable_read, run: rotate, answer };
        Ok(Self { jobs: batches.spawn(manager)?, timeout })
    }

    /// Rotates a live token in the next batch; `None` if it was not rotated there. A
    /// batch still waiting after the timeout (its connection hangs) answers
    /// `Unavailable`; should it commit later, a retry finds the token in the grace window.
    pub async fn rotate(
        &self,
        rotation: LiveRotation,
        sql: &'static str,
    ) -> Result<Option<Rotated>, DbError> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Pending { rotation, sql, rotated: None, reply }).is_err() {
            return Ok(None);
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(answer) => Ok(answer.ok().flatten()),
            Err(_) => Err(DbError::Unavailable("timed out waiting for a batch of rotations".into())),
        }
    }
}

/// Set once per connection, so that a batch stays one round trip.
fn repeatable_read(conn: &mut DbConnection) -> Result<(), DbError> {
    Ok(postgres(conn)?
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")?)
}

fn postgres(conn: &mut DbConnection) -> Result<&mut diesel::PgConnection, DbError> {
    match conn {
        DbConnection::Postgres(conn) => Ok(conn),
        DbConnection::Sqlite(_) => Err(DbError::Other("batched rotations are PostgreSQL's".into())),
    }
}

fn rotate(conn: &mut DbConnection, batch: &mut [Pending]) -> Result<(), DbError> {
    let conn = postgres(conn)?;
    // One statement for each store the batch names: in practice the configured one.
    let mut statements: Vec<&'static str> = batch.iter().map(|job| job.sql).collect();
    statements.sort_unstable();
    statements.dedup();
    for sql in statements {
        rotate_in(conn, sql, batch)?;
    }
    Ok(())
}

fn rotate_in(
    conn: &mut diesel::PgConnection,
    sql: &'static str,
    batch: &mut [Pending],
) -> Result<(), DbError> {
    // A token presented twice at once is rotated by its first request; the others find
    // it rotated, in the full rotation's grace window.
    let mut tokens = HashSet::new();
    let unique: Vec<&LiveRotation> = batch
        .iter()
        .filter(|job| job.sql == sql)
        .map(|job| &job.rotation)
        .filter(|r| tokens.insert(r.current_hash.as_str()))
        .collect();
    let rotated = User::rotate_live_sessions(conn, sql, &unique).inspect_err(|e| {
        log::warn!("a batch of {} rotations failed; each is retried alone: {e}", unique.len());
    })?;
    let Some(rotated) = rotated else {
        log::debug!(
            "a batch of {} rotations met a row written meanwhile; each is retried alone",
            unique.len()
        );
        return Ok(());
    };
    // Each successor is unique to the rotation that wrote it.
    let mut by_successor: HashMap<String, Rotated> =
        rotated.into_iter().map(|row| (row.successor.clone(), row.rotated())).collect();
    for job in batch.iter_mut().filter(|job| job.sql == sql) {
        job.rotated = by_successor.remove(&job.rotation.successor_hash);
    }
    Ok(())
}

fn answer(job: Pending, _: &Result<(), DbError>) {
    // The request may be gone (its client hung up); the rotation stands all the same, and
    // a retry of that token finds it in the grace window.
    let _ = job.reply.send(job.rotated);
}

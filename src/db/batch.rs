//! A thread with a database connection of its own that takes the jobs queued while it was
//! busy as one batch: the SQLite writer's group commit ([`super::writer`]) and
//! PostgreSQL's batched rotations ([`super::rotations`]). Alone, a job is a batch of one;
//! under load, batches grow by themselves, with no timer to wait for.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use super::manager::ConnectionManager;
use super::{DbConnection, DbError};

/// What a batch thread does with its jobs.
pub(super) struct Batches<J> {
    pub name: &'static str,
    /// Jobs in one batch at most: bounds how long the first of a batch waits.
    pub max: usize,
    /// Prepares a new connection before its first batch.
    pub prepare: fn(&mut DbConnection) -> Result<(), DbError>,
    /// Runs one batch; an error (or a panic) fails all of it.
    pub run: fn(&mut DbConnection, &mut [J]) -> Result<(), DbError>,
    /// Answers one job once its batch is done, with the batch's outcome.
    pub answer: fn(J, &Result<(), DbError>),
}

impl<J: Send + 'static> Batches<J> {
    /// Starts the thread; it ends when the last clone of the queue is dropped. The
    /// connection is opened at the first batch, and again after a batch that failed.
    pub fn spawn(self, manager: ConnectionManager) -> std::io::Result<mpsc::Sender<J>> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new().name(self.name.into()).spawn(move || self.serve(&manager, &queue))?;
        Ok(jobs)
    }

    fn serve(&self, manager: &ConnectionManager, queue: &mpsc::Receiver<J>) {
        let mut conn = None;
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            batch.extend(queue.try_iter().take(self.max - 1));
            let outcome = self.run_on(manager, &mut conn, &mut batch);
            if outcome.is_err() {
                // Closing the connection rolls back whatever the failed batch left open.
                conn = None;
            }
            for job in batch {
                (self.answer)(job, &outcome);
            }
        }
    }

    fn run_on(
        &self,
        manager: &ConnectionManager,
        conn: &mut Option<DbConnection>,
        batch: &mut [J],
    ) -> Result<(), DbError> {
        let conn = match conn {
            Some(conn) => conn,
            None => {
                let mut new = manager.open()?;
                (self.prepare)(&mut new)?;
                conn.insert(new)
            }
        };
        // A panic is a bug; its batch fails, and the thread goes on.
        std::panic::catch_unwind(AssertUnwindSafe(|| (self.run)(conn, batch)))
            .map_err(|_| DbError::Other(format!("a job of {} panicked; its batch failed", self.name)))?
    }
}

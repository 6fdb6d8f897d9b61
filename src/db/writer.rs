//! SQLite's one writer, with group commit.
//!
//! SQLite takes one write transaction at a time. Instead of every request's thread taking
//! its turn at the lock and committing alone, one thread owns a connection and runs the
//! writes queued meanwhile in one transaction: each in a savepoint of its own (a write that
//! fails leaves nothing behind and costs the others nothing), one commit for the batch,
//! and every answer only after that commit. Under load this saves a commit, a lock
//! hand-off and a blocking-pool thread per write; alone, a write is a batch of one.

use std::sync::mpsc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use tokio::sync::oneshot;

use super::batch::Batches;
use super::connection::ConnectionManager;
use super::{DbConnection, DbError};

/// The queue to the writer thread; the thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub fn spawn(manager: ConnectionManager) -> std::io::Result<Self> {
        let batches: Batches<Box<dyn Job>> = Batches {
            name: "sqlite-writer",
            max: 64,
            run: commit,
            answer: |job, outcome| job.answer(outcome),
        };
        Ok(Self { jobs: batches.spawn(manager)? })
    }

    /// Runs `work` in the writer's next batch; its result once that batch has committed.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // The request's log span (its id) goes along to the writer thread.
        let job = Queued { work: Some((work, tracing::Span::current())), result: None, reply };
        self.jobs.send(Box::new(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> DbError {
    DbError::Other("the SQLite writer has stopped".into())
}

/// One queued write, type-erased so that writes of any result type share the queue.
trait Job: Send {
    /// Runs the work in a savepoint; the result waits for the batch's commit.
    fn run(&mut self, conn: &mut DbConnection);
    /// Answers with the work's result, or with the batch's error if it did not commit.
    fn answer(self: Box<Self>, batch: &Result<(), DbError>);
}

struct Queued<T, F> {
    work: Option<(F, tracing::Span)>,
    result: Option<Result<T, DbError>>,
    reply: oneshot::Sender<Result<T, DbError>>,
}

impl<T, F> Job for Queued<T, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        if let Some((work, span)) = self.work.take() {
            let _span = span.enter();
            self.result = Some(conn.transaction(work));
        }
    }

    fn answer(self: Box<Self>, batch: &Result<(), DbError>) {
        let result = match (batch, self.result) {
            (Err(e), _) => Err(e.clone()),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(DbError::Other("a write was not run".into())),
        };
        // The request may be gone (its client hung up); the write stands all the same.
        let _ = self.reply.send(result);
    }
}

/// Runs the batch in one `BEGIN IMMEDIATE` transaction and commits it.
fn commit(conn: &mut DbConnection, batch: &mut [Box<dyn Job>]) -> Result<(), DbError> {
    // IMMEDIATE: the write lock (or the busy timeout) now, not at the batch's first write.
    AnsiTransactionManager::begin_transaction_sql(sqlite(conn)?, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.run(conn);
    }
    let sqlite = sqlite(conn)?;
    if let Err(e) = AnsiTransactionManager::commit_transaction(sqlite) {
        let _ = AnsiTransactionManager::rollback_transaction(sqlite);
        return Err(e.into());
    }
    Ok(())
}

fn sqlite(conn: &mut DbConnection) -> Result<&mut SqliteConnection, DbError> {
    match conn {
        DbConnection::Sqlite(conn) => Ok(conn),
        DbConnection::Postgres(_) => Err(DbError::Other("the writer serves SQLite only".into())),
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::config::DatabaseUrl;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        x: i64,
    }

    fn insert(conn: &mut DbConnection, x: i64) -> Result<(), DbError> {
        diesel::sql_query("INSERT INTO t (x) VALUES (?)").bind::<BigInt, _>(x).execute(conn)?;
        Ok(())
    }

    fn rows(conn: &mut DbConnection) -> Vec<i64> {
        let rows: Vec<Row> = diesel::sql_query("SELECT x FROM t ORDER BY x").load(conn).unwrap();
        rows.into_iter().map(|row| row.x).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_leaves_nothing_and_costs_its_batch_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let manager = ConnectionManager::new(DatabaseUrl::Sqlite(dir.path().join("w.db")));
        let writer = Writer::spawn(manager.clone()).unwrap();
        let create = "CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t (x) VALUES (-1)";
        writer.run(move |conn| Ok(conn.batch_execute(create)?)).await.unwrap();
        // 200 writes at once, so that batches hold many: every odd one writes two rows
        // and then fails; a duplicate key fails in the database itself.
        let writes = (0..200i64).map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |conn| {
                        insert(conn, i)?;
                        if i % 2 == 1 {
                            insert(conn, 1000 + i)?;
                            return Err(DbError::Other("refused".into()));
                        }
                        if i % 10 == 4 {
                            insert(conn, -1)?;
                        }
                        Ok(i)
                    })
                    .await
            })
        });
        let results = futures_util::future::join_all(writes).await;
        for (i, result) in results.into_iter().enumerate() {
            let result = result.unwrap();
            match i % 10 {
                4 => assert!(matches!(result, Err(DbError::UniqueViolation)), "{i}: {result:?}"),
                _ if i % 2 == 1 => assert!(matches!(result, Err(DbError::Other(_))), "{i}"),
                _ => assert_eq!(result.unwrap(), i as i64),
            }
        }
        let expected: Vec<i64> = (-1..200).filter(|i| *i == -1 || (i % 2 == 0 && i % 10 != 4)).collect();
        assert_eq!(writer.run(|conn| Ok(rows(conn))).await.unwrap(), expected);
        // Committed for everyone else too, not only on the writer's connection.
        let mut other = manager.establish().unwrap();
        assert_eq!(rows(&mut other), expected);
    }

    #[tokio::test]
    async fn a_panicking_write_rolls_back_its_batch_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let writer =
            Writer::spawn(ConnectionManager::new(DatabaseUrl::Sqlite(dir.path().join("w.db")))).unwrap();
        writer.run(|conn| Ok(conn.batch_execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")?)).await.unwrap();
        let panicked: Result<(), _> = writer
            .run(|conn| {
                insert(conn, 1)?;
                panic!("a bug")
            })
            .await;
        assert!(matches!(panicked, Err(DbError::Other(_))));
        writer.run(|conn| insert(conn, 2)).await.unwrap();
        assert_eq!(writer.run(|conn| Ok(rows(conn))).await.unwrap(), vec![2]);
    }
}

//! SQLite's one writer, with group commit.
//!
//! SQLite takes one write transaction at a time. Instead of every request's thread taking
//! its turn at the lock and committing alone, one thread owns a connection and runs the
//! writes queued meanwhile in one transaction: each in a savepoint of its own (a write that
//! fails leaves nothing behind and costs the others nothing), one commit for the batch,
//! and every answer only after that commit. Under load this saves a commit, a lock
//! hand-off and a blocking-pool thread per write; alone, a write is a batch of one.
//! Checkpoints of the write-ahead log run on a thread of their own beside the writer, from
//! when the migrations are done.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use tokio::sync::oneshot;

use super::batch::Batches;
use super::manager::ConnectionManager;
use super::{DbConnection, DbError};

/// The queue to the writer thread; the thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    checkpoints: Arc<Checkpoints>,
}

/// The checkpoint thread, once started; dropped with the last clone of the writer, which
/// ends it.
struct Checkpoints {
    manager: ConnectionManager,
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl Writer {
    /// Starts the writer thread. Checkpoints wait for [`Writer::start_checkpoints`].
    pub fn spawn(manager: ConnectionManager) -> std::io::Result<Self> {
        let batches: Batches<Box<dyn Job>> = Batches {
            name: "sqlite-writer",
            max: 64,
            prepare: checkpoint_rarely,
            run: commit,
            answer: |job, outcome| job.answer(outcome),
        };
        let checkpoints = Arc::new(Checkpoints { manager: manager.clone(), stop: Mutex::new(None) });
        Ok(Self { jobs: batches.spawn(manager)?, checkpoints })
    }

    /// Starts the checkpoint thread (once; later calls do nothing). Only after the
    /// migrations: a checkpoint beside their exclusive transaction finds the database
    /// locked.
    pub fn start_checkpoints(&self) -> std::io::Result<()> {
        let mut stop = self.checkpoints.stop.lock().unwrap_or_else(|p| p.into_inner());
        if stop.is_none() {
            let (sender, stopped) = mpsc::channel::<()>();
            let manager = self.checkpoints.manager.clone();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_while(&manager, &stopped))?;
            *stop = Some(sender);
        }
        Ok(())
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

/// The writer leaves checkpoints to a thread of their own ([`checkpoint_while`]). Run by
/// SQLite at a commit, every ~1,000 pages written, each held up its batch and everyone
/// queued behind it for the copy and its fsyncs (a sixth of the writer's time, BENCHMARKS.md).
/// The writer still checkpoints itself past this many pages, should that thread fall behind.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

fn checkpoint_rarely(conn: &mut DbConnection) -> Result<(), DbError> {
    let pragma = format!("PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}");
    Ok(sqlite(conn)?.batch_execute(&pragma)?)
}

/// Checkpoints the write-ahead log beside the writer (`PASSIVE`: never waiting for it or
/// for readers) until `stop` is dropped: every 10 ms while there is work, backing off to
/// 100 ms when there is none.
fn checkpoint_while(manager: &ConnectionManager, stop: &mpsc::Receiver<()>) {
    const BUSY: Duration = Duration::from_millis(10);
    const IDLE: Duration = Duration::from_millis(100);
    log::debug!("checkpoints of the SQLite log begin");
    let mut conn = None;
    let mut pause = BUSY;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(pause) {
        let copied = checkpoint(manager, &mut conn).unwrap_or_else(|e| {
            // Busy is the database in someone else's hands (a migration, a writer's
            // checkpoint): the next round tries again. Anything else is worth a look.
            if is_busy(&e) {
                log::debug!("checkpointing the SQLite log found it busy: {e}");
            } else {
                log::warn!("checkpointing the SQLite log failed: {e}");
            }
            conn = None;
            0
        });
        pause = if copied > 0 { BUSY } else { (pause * 2).min(IDLE) };
    }
}

/// SQLITE_BUSY, which SQLite reports as "database is locked".
fn is_busy(error: &DbError) -> bool {
    matches!(error, DbError::Unavailable(message) if message.contains("database is locked"))
}

/// What `PRAGMA wal_checkpoint` answers that matters here: how many frames of the log
/// are in the database file.
#[derive(QueryableByName)]
struct Checkpointed {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

/// One passive checkpoint on the thread's connection (opened again after a failure);
/// how many frames it copied (when the log restarted meanwhile, at most that many).
fn checkpoint(manager: &ConnectionManager, conn: &mut Option<(DbConnection, i32)>) -> Result<i32, DbError> {
    let (conn, before) = match conn {
        Some(conn) => conn,
        None => conn.insert((manager.open()?, 0)),
    };
    let rows: Vec<Checkpointed> = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").load(sqlite(conn)?)?;
    let now = rows.first().map_or(0, |row| row.checkpointed);
    let copied = if now >= *before { now - *before } else { now };
    *before = now;
    Ok(copied)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_checkpointed_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let writer = Writer::spawn(ConnectionManager::new(DatabaseUrl::Sqlite(path.clone()))).unwrap();
        writer.start_checkpoints().unwrap();
        writer.run(|conn| Ok(conn.batch_execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")?)).await.unwrap();
        let writes = (0..300i64).map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.run(move |conn| insert(conn, i)).await })
        });
        for write in futures_util::future::join_all(writes).await {
            write.unwrap().unwrap();
        }
        // The database file alone, without the log: the rows are there only once a
        // checkpoint copied them, and the writer itself would not have (a few hundred
        // pages are far below its threshold).
        let file = format!("file:{}?immutable=1", path.display());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut view = SqliteConnection::establish(&file).unwrap();
            let seen: Result<Vec<Row>, _> = diesel::sql_query("SELECT x FROM t").load(&mut view);
            if seen.is_ok_and(|rows| rows.len() == 300) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no checkpoint within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_busy_database_is_told_from_a_failure() {
        let busy = DbError::from(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        ));
        assert!(is_busy(&busy));
        assert!(is_busy(&DbError::Unavailable("cannot connect to the database: database is locked".into())));
        assert!(!is_busy(&DbError::Unavailable("unable to open database file".into())));
        assert!(!is_busy(&DbError::Other("disk I/O error".into())));
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

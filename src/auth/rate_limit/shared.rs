//! The limits in the PostgreSQL database, so that every instance on it counts together.
//!
//! Each attempt is one statement: an upsert that counts the client IP and, in the same
//! round trip, reads the username's lock. A wrong password is one more (an upsert that
//! appends the failure and locks on the tenth); a right one writes nothing unless failures
//! were on record. Times are the injected clock's, passed in as unix milliseconds, never
//! the database's `now()`. Expired rows are deleted in bounded batches, by one attempt a
//! minute per instance, found through an index on their expiry.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};

use super::{
    FIRST_LOCKOUT, LOGIN_FAILURE_WINDOW, LOGIN_FAILURES_BEFORE_LOCK, LOGIN_RECORD_TTL, LimitError,
    MAX_LOCKOUT, WINDOW, limited_until,
};
use crate::clock::Clock;
use crate::db::{DbConnection, DbError, Pool};

/// How often an instance deletes expired rows.
const SWEEP_INTERVAL: TimeDelta = TimeDelta::seconds(60);
/// Rows deleted per table and sweep: a backlog is worked off over several attempts rather
/// than by one long statement.
const SWEEP_BATCH: i64 = 1_000;

/// Counts the IP (`$1`, NULL to count nothing) and reads the lock of the username key
/// (`$2`, NULL for none) at `$3`; `$4` is the per-minute limit, `$5` the window.
/// A count stops at one past the limit, which is all a refusal needs to know.
const CHECK: &str = "
WITH counted AS (
    INSERT INTO ip_attempts AS a (ip, attempts, expires_at_ms)
    SELECT $1, 1, $3 + $5 WHERE $1 IS NOT NULL
    ON CONFLICT (ip) DO UPDATE SET
        attempts = CASE WHEN a.expires_at_ms <= $3 THEN 1 ELSE LEAST(a.attempts + 1, $4 + 1) END,
        expires_at_ms = CASE WHEN a.expires_at_ms <= $3 THEN $3 + $5 ELSE a.expires_at_ms END
    RETURNING attempts, expires_at_ms
)
SELECT c.attempts, c.expires_at_ms AS window_ends_ms, f.locked_until_ms,
       f.username_key IS NOT NULL AS on_record
FROM (VALUES (1)) AS one (x)
LEFT JOIN counted AS c ON TRUE
LEFT JOIN login_failures AS f ON f.username_key = $2 AND f.expires_at_ms > $3";

/// Records a failure of the username key `$1` at `$2`: keeps the failures within the
/// window (`$3`) and appends this one; the `$4`-th locks the key for `$5` doubling with
/// each lockout up to `$6`, and clears the failures. A row unseen for `$7` starts afresh.
const RECORD_FAILURE: &str = "
INSERT INTO login_failures AS f (username_key, failures_ms, lockouts, locked_until_ms, expires_at_ms)
VALUES ($1, ARRAY[$2], 0, NULL, $2 + $7)
ON CONFLICT (username_key) DO UPDATE SET
    (failures_ms, lockouts, locked_until_ms, expires_at_ms) = (
        SELECT CASE WHEN locks THEN '{}' ELSE recent || $2 END,
               lockouts + locks::int,
               CASE WHEN locks THEN $2 + LEAST($5 << LEAST(lockouts, 10), $6) ELSE locked_until_ms END,
               $2 + $7
        FROM (
            SELECT recent, lockouts, locked_until_ms, cardinality(recent) + 1 >= $4 AS locks
            FROM (
                SELECT CASE WHEN f.expires_at_ms <= $2 THEN '{}'
                            ELSE ARRAY(SELECT t FROM unnest(f.failures_ms) AS t WHERE t > $2 - $3)
                       END::bigint[] AS recent,
                       CASE WHEN f.expires_at_ms <= $2 THEN 0 ELSE f.lockouts END AS lockouts,
                       CASE WHEN f.expires_at_ms <= $2 THEN NULL ELSE f.locked_until_ms END AS locked_until_ms
            ) AS fresh
        ) AS decided
    )
RETURNING cardinality(failures_ms) = 0 AS locked, locked_until_ms";

const FORGET: &str = "DELETE FROM login_failures WHERE username_key = $1";

/// Deletes up to `$2` rows of each table that expired by `$1`.
const SWEEP: &str = "
WITH windows AS (
    DELETE FROM ip_attempts WHERE ip IN
        (SELECT ip FROM ip_attempts WHERE expires_at_ms <= $1 LIMIT $2)
    RETURNING 1
), failures AS (
    DELETE FROM login_failures WHERE username_key IN
        (SELECT username_key FROM login_failures WHERE expires_at_ms <= $1 LIMIT $2)
    RETURNING 1
)
SELECT GREATEST((SELECT count(*) FROM windows), (SELECT count(*) FROM failures)) AS deleted";

#[derive(QueryableByName)]
struct Checked {
    #[diesel(sql_type = Nullable<Integer>)]
    attempts: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    window_ends_ms: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    locked_until_ms: Option<i64>,
    #[diesel(sql_type = Bool)]
    on_record: bool,
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = Bool)]
    locked: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    locked_until_ms: Option<i64>,
}

#[derive(QueryableByName)]
struct Swept {
    #[diesel(sql_type = BigInt)]
    deleted: i64,
}

pub struct SharedLimits {
    pool: Pool,
    /// The count never goes past `i32::MAX`, the column's range.
    per_minute: i32,
    clock: Clock,
    /// When this instance next deletes expired rows (unix milliseconds).
    next_sweep_ms: AtomicI64,
}

impl SharedLimits {
    pub fn new(pool: Pool, per_minute: u32, clock: Clock) -> Self {
        let per_minute = per_minute.min(i32::MAX as u32 - 1) as i32;
        Self { pool, per_minute, clock, next_sweep_ms: AtomicI64::new(i64::MIN) }
    }

    pub(super) async fn check(&self, ip: Option<IpAddr>, key: Option<&str>) -> Result<bool, LimitError> {
        let ip = ip.filter(|_| self.per_minute > 0).map(|ip| ip.to_string());
        if ip.is_none() && key.is_none() {
            return Ok(false);
        }
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let sweep = self.sweep_due(now_ms);
        let (key, per_minute) = (key.map(str::to_owned), self.per_minute);
        let (checked, swept) = self
            .pool
            .write(move |conn| {
                let conn = postgres(conn.conn())?;
                let checked = diesel::sql_query(CHECK)
                    .bind::<Nullable<Text>, _>(ip)
                    .bind::<Nullable<Text>, _>(key)
                    .bind::<BigInt, _>(now_ms)
                    .bind::<Integer, _>(per_minute)
                    .bind::<BigInt, _>(WINDOW.num_milliseconds())
                    .get_result::<Checked>(conn)?;
                let swept = sweep.then(|| sweep_expired(conn, now_ms));
                Ok((checked, swept))
            })
            .await?;
        if let Some(swept) = swept {
            self.swept(swept, now_ms);
        }
        if let (Some(attempts), Some(ends)) = (checked.attempts, checked.window_ends_ms)
            && attempts > per_minute
        {
            return Err(limited_until(from_millis(ends), now).into());
        }
        match checked.locked_until_ms.map(from_millis) {
            Some(until) if until > now => Err(limited_until(until, now).into()),
            _ => Ok(checked.on_record),
        }
    }

    pub(super) async fn record_failure(&self, key: &str) -> Result<Option<TimeDelta>, DbError> {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let key = key.to_owned();
        let recorded = self
            .pool
            .write(move |conn| {
                Ok(diesel::sql_query(RECORD_FAILURE)
                    .bind::<Text, _>(key)
                    .bind::<BigInt, _>(now_ms)
                    .bind::<BigInt, _>(LOGIN_FAILURE_WINDOW.num_milliseconds())
                    .bind::<Integer, _>(LOGIN_FAILURES_BEFORE_LOCK as i32)
                    .bind::<BigInt, _>(FIRST_LOCKOUT.num_milliseconds())
                    .bind::<BigInt, _>(MAX_LOCKOUT.num_milliseconds())
                    .bind::<BigInt, _>(LOGIN_RECORD_TTL.num_milliseconds())
                    .get_result::<Recorded>(postgres(conn.conn())?)?)
            })
            .await?;
        Ok(recorded.locked.then(|| recorded.locked_until_ms.map(|until| from_millis(until) - now)).flatten())
    }

    pub(super) async fn record_success(&self, key: &str) -> Result<(), DbError> {
        let key = key.to_owned();
        self.pool
            .write(move |conn| {
                diesel::sql_query(FORGET).bind::<Text, _>(key).execute(postgres(conn.conn())?)?;
                Ok(())
            })
            .await
    }

    /// Claims this minute's sweep, so that one attempt per instance and minute does it.
    fn sweep_due(&self, now_ms: i64) -> bool {
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        due <= now_ms
            && self
                .next_sweep_ms
                .compare_exchange(
                    due,
                    now_ms + SWEEP_INTERVAL.num_milliseconds(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// A full batch leaves more behind: the next attempt sweeps again. A failed sweep is
    /// only logged; the next one catches up.
    fn swept(&self, swept: Result<i64, DbError>, now_ms: i64) {
        match swept {
            Ok(deleted) if deleted >= SWEEP_BATCH => self.next_sweep_ms.store(now_ms, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => log::warn!("deleting expired abuse-limit rows failed: {e}"),
        }
    }
}

fn sweep_expired(conn: &mut PgConnection, now_ms: i64) -> Result<i64, DbError> {
    let swept = diesel::sql_query(SWEEP)
        .bind::<BigInt, _>(now_ms)
        .bind::<BigInt, _>(SWEEP_BATCH)
        .get_result::<Swept>(conn)?;
    Ok(swept.deleted)
}

/// The shared limits are chosen only on PostgreSQL.
fn postgres(conn: &mut DbConnection) -> Result<&mut PgConnection, DbError> {
    match conn {
        DbConnection::Postgres(conn) => Ok(conn),
        DbConnection::Sqlite(_) => Err(DbError::Other("shared abuse limits need PostgreSQL".into())),
    }
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

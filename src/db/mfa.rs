//! What the second factor keeps in the database: the TOTP factor of each user (its secret
//! encrypted, `auth::mfa`), the hashes of the recovery codes left, and the second steps of
//! logins in progress (their tokens' hashes).
//!
//! Every use is a conditional write, so that a code, a recovery code or a second step is
//! accepted once however many requests present it at once. Times are unix milliseconds.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::DbError;
use super::manager::{DbConnection, WriteConn};
use super::models::{DbUuid, User};
use super::schema::{mfa_challenges, mfa_recovery_codes, mfa_totp, users};

/// A user's TOTP factor, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = mfa_totp)]
pub struct TotpFactor {
    /// The confirmed secret, encrypted; `None` until confirmed.
    pub secret: Option<String>,
    /// A secret set up and not yet confirmed, encrypted.
    pub pending_secret: Option<String>,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

impl TotpFactor {
    pub fn find(conn: &mut DbConnection, user_id: Uuid) -> Result<Option<TotpFactor>, DbError> {
        Ok(mfa_totp::table.find(DbUuid(user_id)).select(TotpFactor::as_select()).first(conn).optional()?)
    }

    /// Keeps `pending` as the secret set up, replacing one set up before and not confirmed.
    pub fn set_pending(
        conn: &mut WriteConn,
        user_id: Uuid,
        pending: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let row = mfa_totp::table.find(DbUuid(user_id));
        let updated = diesel::update(row).set(mfa_totp::pending_secret.eq(pending)).execute(conn.conn())?;
        if updated == 0 {
            diesel::insert_into(mfa_totp::table)
                .values((
                    mfa_totp::user_id.eq(DbUuid(user_id)),
                    mfa_totp::pending_secret.eq(pending),
                    mfa_totp::created_at_ms.eq(now_ms),
                ))
                .execute(conn.conn())?;
        }
        Ok(())
    }

    /// Makes the pending secret the factor, if it is still `pending` (a setup meanwhile
    /// replaced it otherwise), with `step` accepted, and the recovery codes `codes` (their
    /// hashes) the only ones: whether it did. On the user's row as locked.
    pub fn confirm(
        conn: &mut WriteConn,
        user: &User,
        pending: &str,
        step: i64,
        codes: &[String],
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let row = mfa_totp::table.find(user.id).filter(mfa_totp::pending_secret.eq(pending));
        let confirmed = diesel::update(row)
            .set((
                mfa_totp::secret.eq(pending),
                mfa_totp::pending_secret.eq(None::<String>),
                mfa_totp::last_step.eq(step),
            ))
            .execute(conn.conn())?;
        if confirmed == 0 {
            return Ok(false);
        }
        RecoveryCodes::replace(conn, user.id.0, codes)?;
        set_enabled(conn, user, true, now)?;
        Ok(true)
    }

    /// Accepts a code of `step`, unless a code of it or of a later step was accepted
    /// already (a replay): whether it did.
    pub fn accept_step(conn: &mut WriteConn, user_id: Uuid, step: i64) -> Result<bool, DbError> {
        let row = mfa_totp::table
            .find(DbUuid(user_id))
            .filter(mfa_totp::secret.is_not_null())
            .filter(mfa_totp::last_step.is_null().or(mfa_totp::last_step.lt(step)));
        Ok(diesel::update(row).set(mfa_totp::last_step.eq(step)).execute(conn.conn())? == 1)
    }

    /// Removes the factor and its recovery codes; whether there was one. On the user's row
    /// as locked.
    pub fn remove(conn: &mut WriteConn, user: &User, now: NaiveDateTime) -> Result<bool, DbError> {
        let removed = diesel::delete(mfa_totp::table.find(user.id)).execute(conn.conn())? == 1;
        diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user.id)))
            .execute(conn.conn())?;
        set_enabled(conn, user, false, now)?;
        Ok(removed)
    }

    /// Whether any user has a confirmed factor: then the key that encrypts the secrets
    /// must not be made anew.
    pub fn any_confirmed(conn: &mut DbConnection) -> Result<bool, DbError> {
        let any = mfa_totp::table.filter(mfa_totp::secret.is_not_null()).select(mfa_totp::user_id);
        Ok(diesel::select(diesel::dsl::exists(any)).get_result(conn)?)
    }
}

/// Sets `users.mfa_enabled`, a change of the account (its `updated_at` moves on, so that a
/// cached account is re-read).
fn set_enabled(conn: &mut WriteConn, user: &User, enabled: bool, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(users::table.find(user.id))
        .set((users::mfa_enabled.eq(enabled), users::updated_at.eq(user.stamp(now))))
        .execute(conn.conn())?;
    Ok(())
}

pub struct RecoveryCodes;

impl RecoveryCodes {
    /// Makes `hashes` the user's only recovery codes.
    pub fn replace(conn: &mut WriteConn, user_id: Uuid, hashes: &[String]) -> Result<(), DbError> {
        let owner = mfa_recovery_codes::user_id.eq(DbUuid(user_id));
        diesel::delete(mfa_recovery_codes::table.filter(owner)).execute(conn.conn())?;
        // One by one: `MultiConnection` takes no multi-row insert.
        for hash in hashes {
            diesel::insert_into(mfa_recovery_codes::table)
                .values((
                    mfa_recovery_codes::user_id.eq(DbUuid(user_id)),
                    mfa_recovery_codes::code_hash.eq(hash),
                ))
                .execute(conn.conn())?;
        }
        Ok(())
    }

    /// Uses a recovery code (its hash): whether it was one of the user's, left.
    pub fn use_code(conn: &mut WriteConn, user_id: Uuid, hash: &str) -> Result<bool, DbError> {
        let code = mfa_recovery_codes::table
            .filter(mfa_recovery_codes::user_id.eq(DbUuid(user_id)))
            .filter(mfa_recovery_codes::code_hash.eq(hash));
        Ok(diesel::delete(code).execute(conn.conn())? == 1)
    }
}

/// The second step of a login in progress.
pub struct Challenge {
    pub user_id: Uuid,
    pub expires_at_ms: i64,
    pub failures: i32,
}

const CHALLENGE_COLUMNS: (mfa_challenges::user_id, mfa_challenges::expires_at_ms, mfa_challenges::failures) =
    (mfa_challenges::user_id, mfa_challenges::expires_at_ms, mfa_challenges::failures);

impl Challenge {
    fn of((user_id, expires_at_ms, failures): (DbUuid, i64, i32)) -> Self {
        Self { user_id: user_id.0, expires_at_ms, failures }
    }
}

pub struct Challenges;

impl Challenges {
    /// Starts a second step for the user; expired ones go in passing.
    pub fn create(
        conn: &mut WriteConn,
        hash: &str,
        user_id: Uuid,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), DbError> {
        diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at_ms.le(now_ms)))
            .execute(conn.conn())?;
        diesel::insert_into(mfa_challenges::table)
            .values((
                mfa_challenges::token_hash.eq(hash),
                mfa_challenges::user_id.eq(DbUuid(user_id)),
                mfa_challenges::expires_at_ms.eq(expires_at_ms),
                mfa_challenges::failures.eq(0),
            ))
            .execute(conn.conn())?;
        Ok(())
    }

    /// The live second step of this token hash, without using it.
    pub fn live(conn: &mut DbConnection, hash: &str, now_ms: i64) -> Result<Option<Challenge>, DbError> {
        let row: Option<(DbUuid, i64, i32)> = mfa_challenges::table
            .find(hash)
            .filter(mfa_challenges::expires_at_ms.gt(now_ms))
            .select(CHALLENGE_COLUMNS)
            .first(conn)
            .optional()?;
        Ok(row.map(Challenge::of))
    }

    /// Uses the second step, if it is live: once, however many use it at once.
    pub fn consume(conn: &mut WriteConn, hash: &str, now_ms: i64) -> Result<Option<Challenge>, DbError> {
        let live = mfa_challenges::table.find(hash).filter(mfa_challenges::expires_at_ms.gt(now_ms));
        let row: Option<(DbUuid, i64, i32)> =
            diesel::delete(live).returning(CHALLENGE_COLUMNS).get_result(conn.conn()).optional()?;
        Ok(row.map(Challenge::of))
    }

    /// Puts a used second step back, with `failures` (its code did not hold after all).
    pub fn restore(conn: &mut WriteConn, hash: &str, used: &Challenge, failures: i32) -> Result<(), DbError> {
        diesel::insert_into(mfa_challenges::table)
            .values((
                mfa_challenges::token_hash.eq(hash),
                mfa_challenges::user_id.eq(DbUuid(used.user_id)),
                mfa_challenges::expires_at_ms.eq(used.expires_at_ms),
                mfa_challenges::failures.eq(failures),
            ))
            .execute(conn.conn())?;
        Ok(())
    }

    /// Counts a wrong code against the second step; at `limit` it is gone.
    pub fn failed(conn: &mut WriteConn, hash: &str, limit: i32) -> Result<(), DbError> {
        let row = mfa_challenges::table.find(hash);
        diesel::update(row)
            .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1))
            .execute(conn.conn())?;
        diesel::delete(row.filter(mfa_challenges::failures.ge(limit))).execute(conn.conn())?;
        Ok(())
    }
}

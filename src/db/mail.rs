//! What mail keeps in the database: the one live token per account and purpose that a
//! mail carries (its SHA-256 only), the cooldown of password-reset requests per address,
//! and the outbox every mail goes out through.
//!
//! Times are unix milliseconds of tollgate's clock, as in the abuse limits' tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::DbError;
use super::manager::{DbConnection, WriteConn};
use super::models::{DbUuid, User};
use super::schema::{mail_cooldowns, mail_tokens, outbox, users};

/// What a mail's token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    EmailVerify,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::EmailVerify => "email_verify",
        }
    }
}

/// A token to issue: its hash and the nonce it is derived from (see `mail::tokens`), the
/// address the mail goes to, and its lifetime.
pub struct NewMailToken<'a> {
    pub user_id: Uuid,
    pub purpose: Purpose,
    pub hash: &'a str,
    pub nonce: &'a str,
    pub email: &'a str,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Insertable)]
#[diesel(table_name = mail_tokens)]
struct MailTokenRow<'a> {
    user_id: DbUuid,
    purpose: &'a str,
    token_hash: Option<&'a str>,
    nonce: &'a str,
    email: &'a str,
    created_at_ms: i64,
    expires_at_ms: i64,
}

/// A token used: whose it was, and the address its mail went to.
pub struct UsedToken {
    pub user_id: Uuid,
    pub email: String,
}

pub struct MailTokens;

impl MailTokens {
    /// Issues the account's token for the purpose, replacing any other, unless one for the
    /// same address was issued within `cooldown_ms`: whether it did. In the caller's
    /// transaction, after the user's row was locked, so that two requests at once cannot
    /// both pass the cooldown.
    pub fn issue(conn: &mut WriteConn, new: &NewMailToken, cooldown_ms: i64) -> Result<bool, DbError> {
        let row = mail_tokens::table.find((DbUuid(new.user_id), new.purpose.as_str()));
        let last: Option<(i64, String)> =
            row.select((mail_tokens::created_at_ms, mail_tokens::email)).first(conn.conn()).optional()?;
        if last.is_some_and(|(at, email)| email == new.email && new.now_ms < at.saturating_add(cooldown_ms)) {
            return Ok(false);
        }
        diesel::delete(row).execute(conn.conn())?;
        let row = MailTokenRow {
            user_id: DbUuid(new.user_id),
            purpose: new.purpose.as_str(),
            token_hash: Some(new.hash),
            nonce: new.nonce,
            email: new.email,
            created_at_ms: new.now_ms,
            expires_at_ms: new.expires_at_ms,
        };
        diesel::insert_into(mail_tokens::table).values(&row).execute(conn.conn())?;
        Ok(true)
    }

    /// Uses a live token of the purpose, at most once however many requests present it at
    /// once: one conditional write, never a read then a write. The row stays, without its
    /// hash, for the cooldown.
    pub fn consume(
        conn: &mut WriteConn,
        purpose: Purpose,
        hash: &str,
        now_ms: i64,
    ) -> Result<Option<UsedToken>, DbError> {
        let live = mail_tokens::table
            .filter(mail_tokens::token_hash.eq(hash))
            .filter(mail_tokens::purpose.eq(purpose.as_str()))
            .filter(mail_tokens::expires_at_ms.gt(now_ms));
        let used: Option<(DbUuid, String)> = diesel::update(live)
            .set(mail_tokens::token_hash.eq(None::<String>))
            .returning((mail_tokens::user_id, mail_tokens::email))
            .get_result(conn.conn())
            .optional()?;
        Ok(used.map(|(user_id, email)| UsedToken { user_id: user_id.0, email }))
    }

    /// Withdraws the account's token of the purpose, if it has one (its address changed
    /// under it).
    pub fn revoke(conn: &mut WriteConn, user_id: Uuid, purpose: Purpose) -> Result<(), DbError> {
        diesel::delete(mail_tokens::table.find((DbUuid(user_id), purpose.as_str()))).execute(conn.conn())?;
        Ok(())
    }

    /// Uses a live password-reset token of `user` (the row as locked), and verifies the
    /// address if the link went to the one the account has: whether it was live.
    pub fn use_reset(
        conn: &mut WriteConn,
        user: &User,
        hash: &str,
        now_ms: i64,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let used = Self::consume(conn, Purpose::PasswordReset, hash, now_ms)?;
        let Some(used) = used.filter(|used| used.user_id == user.id.0) else { return Ok(false) };
        if user.email.as_deref() == Some(used.email.as_str()) {
            User::verify_email(conn, user, &used.email, now)?;
        }
        Ok(true)
    }

    /// The account of a live token of the purpose, without using it.
    pub fn live(
        conn: &mut DbConnection,
        purpose: Purpose,
        hash: &str,
        now_ms: i64,
    ) -> Result<Option<Uuid>, DbError> {
        let id: Option<DbUuid> = mail_tokens::table
            .filter(mail_tokens::token_hash.eq(hash))
            .filter(mail_tokens::purpose.eq(purpose.as_str()))
            .filter(mail_tokens::expires_at_ms.gt(now_ms))
            .select(mail_tokens::user_id)
            .first(conn)
            .optional()?;
        Ok(id.map(|id| id.0))
    }
}

/// Takes a password-reset request for an address (its SHA-256, known or not) unless one was
/// taken within the cooldown: whether it was. One statement: an entry whose cooldown is
/// over is taken again in place (expired entries go in the background,
/// [`purge_cooldowns`]).
pub fn address_allowed(
    conn: &mut WriteConn,
    address_hash: &str,
    now_ms: i64,
    cooldown_ms: i64,
) -> Result<bool, DbError> {
    let until = now_ms.saturating_add(cooldown_ms);
    let insert = || {
        let upsert = diesel::insert_into(mail_cooldowns::table)
            .values((mail_cooldowns::address_hash.eq(address_hash), mail_cooldowns::until_ms.eq(until)))
            .on_conflict(mail_cooldowns::address_hash)
            .do_update()
            .set(mail_cooldowns::until_ms.eq(until));
        // `ON CONFLICT … DO UPDATE … WHERE`: the method of the upsert, not of `QueryDsl`.
        diesel::query_dsl::methods::FilterDsl::filter(upsert, mail_cooldowns::until_ms.le(now_ms))
    };
    // `ON CONFLICT` is each backend's own: `MultiConnection` does not take it.
    let inserted = match conn.conn() {
        DbConnection::Sqlite(sqlite) => insert().execute(sqlite)?,
        DbConnection::Postgres(pg) => insert().execute(pg)?,
    };
    Ok(inserted == 1)
}

/// Removes the cooldowns that are over; how many.
pub fn purge_cooldowns(conn: &mut WriteConn, now_ms: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(mail_cooldowns::table.filter(mail_cooldowns::until_ms.le(now_ms)))
        .execute(conn.conn())?)
}

/// The ids and usernames of the enabled accounts with this address (lower-case, as stored).
pub fn enabled_accounts_with_email(
    conn: &mut DbConnection,
    email: &str,
) -> Result<Vec<(Uuid, String)>, DbError> {
    let rows: Vec<(DbUuid, String)> = users::table
        .filter(users::email.eq(email))
        .filter(users::disabled.eq(false))
        .select((users::id, users::username))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, username)| (id.0, username)).collect())
}

/// A row of the outbox, as a sender claims it.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i32,
}

pub struct Outbox;

impl Outbox {
    /// Queues a message, in the caller's transaction: it goes out if and only if the
    /// change it belongs to commits.
    pub fn enqueue(conn: &mut WriteConn, kind: &str, payload: &str, now_ms: i64) -> Result<(), DbError> {
        diesel::insert_into(outbox::table)
            .values((
                outbox::kind.eq(kind),
                outbox::payload.eq(payload),
                outbox::attempts.eq(0),
                outbox::created_at_ms.eq(now_ms),
                outbox::next_attempt_at_ms.eq(now_ms),
            ))
            .execute(conn.conn())?;
        Ok(())
    }

    /// Claims up to `limit` messages due at `now_ms` that no sender holds, for `lease_ms`:
    /// on PostgreSQL rows another instance is claiming are skipped (`SKIP LOCKED`), so each
    /// message goes to one sender.
    pub fn claim_due(
        conn: &mut WriteConn,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, DbError> {
        conn.transaction(|conn| {
            let due = || {
                outbox::table
                    .filter(outbox::next_attempt_at_ms.le(now_ms))
                    .filter(outbox::claimed_until_ms.is_null().or(outbox::claimed_until_ms.le(now_ms)))
                    .order(outbox::id)
                    .limit(limit)
            };
            let rows: Vec<OutboxRow> = match conn.conn() {
                DbConnection::Postgres(pg) => {
                    due().select(OutboxRow::as_select()).for_update().skip_locked().load(pg)?
                }
                DbConnection::Sqlite(sqlite) => due().select(OutboxRow::as_select()).load(sqlite)?,
            };
            let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
            diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                .set(outbox::claimed_until_ms.eq(now_ms.saturating_add(lease_ms)))
                .execute(conn.conn())?;
            Ok(rows)
        })
    }

    /// The message went out: it leaves the outbox.
    pub fn delivered(conn: &mut WriteConn, id: i64) -> Result<(), DbError> {
        diesel::delete(outbox::table.find(id)).execute(conn.conn())?;
        Ok(())
    }

    /// The attempt failed: tried again at `retry_at_ms`, or, with `None`, given up.
    pub fn failed(
        conn: &mut WriteConn,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), DbError> {
        let Some(retry_at_ms) = retry_at_ms else {
            diesel::delete(outbox::table.find(id)).execute(conn.conn())?;
            return Ok(());
        };
        diesel::update(outbox::table.find(id))
            .set((
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(error),
                outbox::next_attempt_at_ms.eq(retry_at_ms),
                outbox::claimed_until_ms.eq(None::<i64>),
            ))
            .execute(conn.conn())?;
        Ok(())
    }
}

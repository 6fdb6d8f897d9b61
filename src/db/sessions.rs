//! Where a session lives (`SESSIONS_PER_USER`), and the queries on it.
//!
//! The refresh rotation (`auth::refresh`) is written once, over [`SessionStore`]. With one
//! session per user the session is the `users` row's (the design card's model, with every
//! optimisation of the rotation); with more, each is a row of `sessions`. Both keep the
//! same columns for the chain (current and previous hash, rotation time, expiry), and each
//! store answers the same questions: rotate a live token, find the chain of a hash, lock
//! it, stamp it, end it.
//!
//! Ending one session of many refuses its access tokens by a per-session revocation (a
//! [`Tombstone`] with the session's id), which the user's cached account and the revocation
//! feed carry. Ending them all is the user's `tokens_valid_after`, as with one session.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::DbError;
use super::manager::{DbConnection, WriteConn};
use super::models::{
    DbUuid, LiveRotation, NewSession, PreparedOnce, Rotated, RotatedRow, SessionChange, Tombstone,
    UnixMillis, User, joined_roles, repeatable_read, rotate_rows, split_roles, tokens_valid_after,
};
use super::schema::{sessions, users};

/// Where the sessions live: on the users row, one per user, or in `sessions`, up to
/// `limit` per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    UsersRow,
    Table {
        limit: usize,
        /// How long a per-session revocation is kept: the longest an access token lives.
        max_token_age_secs: i64,
    },
}

/// A refresh chain as a rotation decides on it.
#[derive(Clone)]
pub struct Chain {
    /// `None` on a users row whose session started before sessions had ids.
    pub session_id: Option<Uuid>,
    pub user_id: Uuid,
    pub current_hash: Option<String>,
    pub previous_hash: Option<String>,
    pub rotated_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: NaiveDateTime,
    /// The methods the session was started with, comma-joined; `None`: a password.
    pub amr: Option<String>,
}

/// A session as its user sees it listed.
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What a new session does to the user's password, in the session's transaction.
pub enum PasswordWrite<'a> {
    Keep,
    /// The login verified an imported hash: store tollgate's argon2id instead, if the
    /// stored hash is still the one verified (else the session does not start).
    Rehash {
        verified: &'a str,
        rehashed: &'a str,
    },
    /// A password change: every other session ends and every access token issued so far
    /// is revoked.
    Change(&'a str),
}

/// A `sessions` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: DbUuid,
    user_id: DbUuid,
    refresh_token_hash: String,
    refresh_token_expires_at: NaiveDateTime,
    previous_refresh_token_hash: Option<String>,
    refresh_token_rotated_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    last_used_at: NaiveDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
    amr: Option<String>,
}

impl SessionRow {
    fn chain(&self) -> Chain {
        Chain {
            session_id: Some(self.id.0),
            user_id: self.user_id.0,
            current_hash: Some(self.refresh_token_hash.clone()),
            previous_hash: self.previous_refresh_token_hash.clone(),
            rotated_at: self.refresh_token_rotated_at,
            expires_at: Some(self.refresh_token_expires_at),
            last_used_at: self.last_used_at,
            amr: self.amr.clone(),
        }
    }

    fn info(self) -> SessionInfo {
        SessionInfo {
            id: self.id.0,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.refresh_token_expires_at,
            user_agent: self.user_agent,
            ip: self.ip,
        }
    }
}

impl User {
    /// The chain of the session on this row.
    pub fn chain(&self) -> Chain {
        Chain {
            session_id: self.session_id.map(|id| id.0),
            user_id: self.id.0,
            current_hash: self.refresh_token_hash.clone(),
            previous_hash: self.previous_refresh_token_hash.clone(),
            rotated_at: self.refresh_token_rotated_at,
            expires_at: self.refresh_token_expires_at,
            last_used_at: self
                .refresh_token_rotated_at
                .or(self.session_created_at)
                .unwrap_or(self.updated_at),
            amr: self.session_amr.clone(),
        }
    }
}

/// The keys of the statements of a `sessions` row's rotation on SQLite (`PreparedOnce`).
struct RotateSessionRow;
struct RotatedUser;

/// The batch statement of the users row (`Rotations`): `SessionChange::rotated`, row by
/// row from the arrays.
const USERS_ROTATE: &str = "UPDATE users SET refresh_token_hash = b.successor_hash, \
     refresh_token_expires_at = b.expires_at, previous_refresh_token_hash = b.current_hash, \
     refresh_token_rotated_at = b.now, updated_at = b.now \
     FROM unnest($1::text[], $2::text[], $3::timestamp[], $4::timestamp[]) \
         AS b (current_hash, successor_hash, expires_at, now) \
     WHERE users.refresh_token_hash = b.current_hash AND users.refresh_token_expires_at > b.now \
         AND NOT users.disabled \
     RETURNING users.*, users.session_id AS sid, users.refresh_token_hash AS successor, \
         (SELECT string_agg(user_roles.role, ',') FROM user_roles WHERE user_roles.user_id = users.id) AS roles, \
         users.session_amr AS amr";

/// The same for `sessions` rows; their users are read in the statement's snapshot, which
/// the transaction's REPEATABLE READ keeps consistent with the rows it writes.
const SESSIONS_ROTATE: &str = "WITH r AS (UPDATE sessions SET refresh_token_hash = b.successor_hash, \
     refresh_token_expires_at = b.expires_at, previous_refresh_token_hash = b.current_hash, \
     refresh_token_rotated_at = b.now, last_used_at = b.now \
     FROM unnest($1::text[], $2::text[], $3::timestamp[], $4::timestamp[]) \
         AS b (current_hash, successor_hash, expires_at, now) \
     WHERE sessions.refresh_token_hash = b.current_hash AND sessions.refresh_token_expires_at > b.now \
         AND EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND NOT users.disabled) \
     RETURNING sessions.user_id, sessions.id, sessions.refresh_token_hash, sessions.amr) \
     SELECT users.*, r.id AS sid, r.refresh_token_hash AS successor, \
         (SELECT string_agg(user_roles.role, ',') FROM user_roles WHERE user_roles.user_id = users.id) AS roles, \
         r.amr AS amr \
     FROM r JOIN users ON users.id = r.user_id";

impl SessionStore {
    /// One session per user (`per_user` ≤ 1) on the users row, else a table of them.
    pub fn new(per_user: usize, max_token_age_secs: i64) -> Self {
        if per_user <= 1 { Self::UsersRow } else { Self::Table { limit: per_user, max_token_age_secs } }
    }

    /// The statement that rotates a batch of live tokens on PostgreSQL (see
    /// [`User::rotate_live_sessions`]).
    pub fn batch_sql(self) -> &'static str {
        match self {
            Self::UsersRow => USERS_ROTATE,
            Self::Table { .. } => SESSIONS_ROTATE,
        }
    }

    /// Rotates `live` if it is the current, unexpired token of an enabled user's session:
    /// one compare-and-set on the token (see [`User::rotate_live_session`]); `None` when
    /// nothing was written.
    pub fn rotate_live(self, conn: &mut WriteConn, live: &LiveRotation) -> Result<Option<Rotated>, DbError> {
        if self == Self::UsersRow {
            return User::rotate_live_session(conn, live);
        }
        let sqlite = match conn.conn() {
            DbConnection::Postgres(pg) => {
                let rows = repeatable_read(pg, |pg| rotate_rows(pg, SESSIONS_ROTATE, &[live]))?;
                return Ok(rows.into_iter().next().map(RotatedRow::rotated));
            }
            DbConnection::Sqlite(sqlite) => sqlite,
        };
        // SQLite: the one writer runs nothing beside this, so the user may be read after. On
        // the backend's own connection, each statement prepared once (as the users row's).
        // Correlated, so that only the session's user is looked at.
        let enabled = users::table.filter(users::id.eq(sessions::user_id)).filter(users::disabled.eq(false));
        let target = sessions::table
            .filter(sessions::refresh_token_hash.eq(&live.current_hash))
            .filter(sessions::refresh_token_expires_at.gt(live.now))
            .filter(diesel::dsl::exists(enabled));
        let update = diesel::update(target)
            .set((
                sessions::refresh_token_hash.eq(&live.successor_hash),
                sessions::refresh_token_expires_at.eq(live.expires_at),
                sessions::previous_refresh_token_hash.eq(&live.current_hash),
                sessions::refresh_token_rotated_at.eq(live.now),
                sessions::last_used_at.eq(live.now),
            ))
            .returning((sessions::user_id, sessions::id, sessions::amr));
        let rotated: Option<(DbUuid, DbUuid, Option<String>)> =
            PreparedOnce::<_, RotateSessionRow>::new(update).get_result(sqlite).optional()?;
        let Some((user_id, session_id, amr)) = rotated else { return Ok(None) };
        let user = users::table.find(user_id).select((User::as_select(), joined_roles()));
        let rows: Vec<(User, Option<String>)> = PreparedOnce::<_, RotatedUser>::new(user).load(sqlite)?;
        Ok(rows.into_iter().next().map(|(user, roles)| Rotated {
            user,
            session_id: Some(session_id.0),
            roles: split_roles(roles),
            amr,
        }))
    }

    /// The chain whose current or previous token has this hash.
    pub fn find(self, conn: &mut DbConnection, hash: &str) -> Result<Option<Chain>, DbError> {
        match self {
            Self::UsersRow => Ok(User::find_by_refresh_hash(conn, hash)?.map(|user| user.chain())),
            Self::Table { .. } => {
                let found = sessions::table
                    .filter(
                        sessions::refresh_token_hash
                            .eq(hash)
                            .or(sessions::previous_refresh_token_hash.eq(hash)),
                    )
                    .select(SessionRow::as_select())
                    .load(conn)?;
                Ok(found.first().map(SessionRow::chain))
            }
        }
    }

    /// The chain whose previous token has one of these hashes.
    pub fn find_by_previous_hashes(
        self,
        conn: &mut DbConnection,
        hashes: &[String],
    ) -> Result<Option<Chain>, DbError> {
        match self {
            Self::UsersRow => Ok(User::find_by_previous_hashes(conn, hashes)?.map(|user| user.chain())),
            Self::Table { .. } => Ok(sessions::table
                .filter(sessions::previous_refresh_token_hash.eq_any(hashes))
                .select(SessionRow::as_select())
                .first(conn)
                .optional()?
                .map(|row| row.chain())),
        }
    }

    /// Locks the chain's user row ([`User::lock`]) and, for a session of its own, the
    /// session's row; both as they are then, `None` when either is gone (or the session is
    /// not the user's). In a transaction only.
    pub fn lock(self, conn: &mut WriteConn, chain: &Chain) -> Result<Option<(User, Chain)>, DbError> {
        let Some(user) = User::lock(conn, chain.user_id)? else { return Ok(None) };
        if self == Self::UsersRow {
            let chain = user.chain();
            return Ok(Some((user, chain)));
        }
        let Some(id) = chain.session_id else { return Ok(None) };
        let row = sessions::table.find(DbUuid(id)).filter(sessions::user_id.eq(user.id));
        let rows: Vec<SessionRow> = match conn.conn() {
            DbConnection::Postgres(pg) => row.select(SessionRow::as_select()).for_update().load(pg)?,
            DbConnection::Sqlite(sqlite) => row.select(SessionRow::as_select()).load(sqlite)?,
        };
        Ok(rows.first().map(|row| (user, row.chain())))
    }

    /// Records, on the chain as locked, that a token is issued at `now` without any other
    /// change (a retry within the grace window): revocations count it (see
    /// [`tokens_valid_after`]).
    pub fn stamp_issue(
        self,
        conn: &mut WriteConn,
        user: &User,
        chain: &Chain,
        now: NaiveDateTime,
    ) -> Result<(), DbError> {
        match (self, chain.session_id) {
            (Self::Table { .. }, Some(id)) => {
                diesel::update(sessions::table.find(DbUuid(id)))
                    .set(sessions::last_used_at.eq(now.max(chain.last_used_at)))
                    .execute(conn.conn())?;
                Ok(())
            }
            _ => User::stamp_issue(conn, user, now),
        }
    }

    /// Ends the chain's session if `still` holds for it as locked, and refuses its access
    /// tokens from then on; the user row as it was, or `None` (gone, or `still` refused).
    pub fn end_if(
        self,
        conn: &mut WriteConn,
        chain: &Chain,
        now: NaiveDateTime,
        still: impl FnOnce(&Chain) -> bool,
    ) -> Result<Option<User>, DbError> {
        conn.transaction(|conn| {
            let Some((user, locked)) = self.lock(conn, chain)?.filter(|(_, chain)| still(chain)) else {
                return Ok(None);
            };
            match (self, locked.session_id) {
                (Self::Table { max_token_age_secs, .. }, Some(id)) => {
                    end_one(conn, &user, id, now, max_token_age_secs)?;
                }
                // The user's one session: every token the user was issued.
                _ => end_every_session_locked(conn, &user, now)?,
            }
            Ok(Some(user))
        })
    }

    /// Ends the session `id` of the user, if it is the user's and live.
    pub fn end(
        self,
        conn: &mut WriteConn,
        user_id: Uuid,
        id: Uuid,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let chain = Chain {
            session_id: Some(id),
            user_id,
            current_hash: None,
            previous_hash: None,
            rotated_at: None,
            expires_at: None,
            last_used_at: now,
            amr: None,
        };
        let live = |chain: &Chain| chain.session_id == Some(id) && chain.current_hash.is_some();
        Ok(self.end_if(conn, &chain, now, live)?.is_some())
    }

    /// Ends every session of the locked `user` but `keep`; with one session per user there
    /// is no other.
    pub fn end_others(
        self,
        conn: &mut WriteConn,
        user: &User,
        keep: Uuid,
        now: NaiveDateTime,
    ) -> Result<(), DbError> {
        let Self::Table { max_token_age_secs, .. } = self else { return Ok(()) };
        let others: Vec<DbUuid> = sessions::table
            .filter(sessions::user_id.eq(user.id))
            .filter(sessions::id.ne(DbUuid(keep)))
            .select(sessions::id)
            .load(conn.conn())?;
        for id in others {
            end_one(conn, user, id.0, now, max_token_age_secs)?;
        }
        Ok(())
    }

    /// Starts the session `new` for `user`, the row as locked, with the password write
    /// that goes with it; `false` (and nothing written) when a rehash found the password
    /// changed. With sessions of their own, the session beyond the limit that was used
    /// least recently ends.
    pub fn start(
        self,
        conn: &mut WriteConn,
        user: &User,
        new: &NewSession,
        password: PasswordWrite,
    ) -> Result<bool, DbError> {
        let id = user.id.0;
        let stamp = user.stamp(new.now);
        let mut change = match self {
            Self::UsersRow => SessionChange::start(new, stamp),
            Self::Table { .. } => SessionChange::unchanged(stamp),
        };
        let started = match password {
            PasswordWrite::Keep => User::set_session(conn, id, &change).map(|()| true),
            PasswordWrite::Rehash { verified, rehashed } => {
                User::rehash_and_set_session(conn, id, verified, rehashed, &change)
            }
            PasswordWrite::Change(new_hash) => {
                let used = Session::end_all(conn, id)?;
                change = change.revoking_access_tokens(tokens_valid_after(new.now, user, used));
                User::set_password_and_session(conn, id, new_hash, &change).map(|()| true)
            }
        }?;
        if let (true, Self::Table { limit, max_token_age_secs }) = (started, self) {
            Session::insert(conn, id, new)?;
            // Never the new one, though another may share its instant.
            let beyond: Vec<DbUuid> = sessions::table
                .filter(sessions::user_id.eq(user.id))
                .filter(sessions::id.ne(DbUuid(new.id)))
                .order((sessions::last_used_at.desc(), sessions::created_at.desc()))
                .offset(limit as i64 - 1)
                .select(sessions::id)
                .load(conn.conn())?;
            for old in beyond {
                log::info!("session limit reached, least recently used session ended user_id={id}");
                end_one(conn, user, old.0, new.now, max_token_age_secs)?;
            }
        }
        Ok(started)
    }

    /// The user's live sessions at `now`, most recently used first; `None` when there is
    /// no such user.
    pub fn list(
        self,
        conn: &mut DbConnection,
        user_id: Uuid,
        now: NaiveDateTime,
    ) -> Result<Option<Vec<SessionInfo>>, DbError> {
        let Some(user) = User::find(conn, user_id)? else { return Ok(None) };
        if let Self::Table { .. } = self {
            let rows: Vec<SessionRow> = sessions::table
                .filter(sessions::user_id.eq(user.id))
                .filter(sessions::refresh_token_expires_at.gt(now))
                .order((sessions::last_used_at.desc(), sessions::created_at.desc()))
                .select(SessionRow::as_select())
                .load(conn)?;
            return Ok(Some(rows.into_iter().map(SessionRow::info).collect()));
        }
        let chain = user.chain();
        let live = chain.current_hash.is_some() && chain.expires_at.is_some_and(|at| at > now);
        let session = match (chain.session_id, chain.expires_at) {
            (Some(id), Some(expires_at)) if live => Some(SessionInfo {
                id,
                created_at: user.session_created_at.unwrap_or(user.updated_at),
                last_used_at: chain.last_used_at,
                expires_at,
                user_agent: user.session_user_agent,
                ip: user.session_ip,
            }),
            _ => None,
        };
        Ok(Some(session.into_iter().collect()))
    }
}

/// The queries on `sessions` that every revocation of a user makes, whichever the store.
pub struct Session;

impl Session {
    fn insert(conn: &mut WriteConn, user_id: Uuid, new: &NewSession) -> Result<(), DbError> {
        let row = SessionRow {
            id: DbUuid(new.id),
            user_id: DbUuid(user_id),
            refresh_token_hash: new.hash.clone(),
            refresh_token_expires_at: new.expires_at,
            previous_refresh_token_hash: None,
            refresh_token_rotated_at: None,
            created_at: new.now,
            last_used_at: new.now,
            user_agent: new.user_agent.clone(),
            ip: new.ip.clone(),
            amr: new.amr.clone(),
        };
        diesel::insert_into(sessions::table).values(&row).execute(conn.conn())?;
        Ok(())
    }

    /// Deletes every session row of the user, and answers their latest use (what a
    /// revocation of all the user's tokens must be past, see [`tokens_valid_after`]).
    pub fn end_all(conn: &mut WriteConn, user_id: Uuid) -> Result<Option<NaiveDateTime>, DbError> {
        let used: Vec<NaiveDateTime> =
            diesel::delete(sessions::table.filter(sessions::user_id.eq(DbUuid(user_id))))
                .returning(sessions::last_used_at)
                .get_results(conn.conn())?;
        Ok(used.into_iter().max())
    }

    /// Writes every session row of the user without changing it, and answers their latest
    /// use: a revocation that keeps the sessions (a role taken away) takes their rows, so
    /// that a rotation racing it on PostgreSQL fails to serialise and is retried (see
    /// [`User::rotate_live_session`]) instead of issuing a token with the roles from before.
    pub fn touch_all(conn: &mut WriteConn, user_id: Uuid) -> Result<Option<NaiveDateTime>, DbError> {
        let used: Vec<NaiveDateTime> =
            diesel::update(sessions::table.filter(sessions::user_id.eq(DbUuid(user_id))))
                .set(sessions::last_used_at.eq(sessions::last_used_at))
                .returning(sessions::last_used_at)
                .get_results(conn.conn())?;
        Ok(used.into_iter().max())
    }
}

/// Ends every session of `user`, the row as locked, and revokes every token it was issued.
pub fn end_every_session_locked(
    conn: &mut WriteConn,
    user: &User,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let used = Session::end_all(conn, user.id.0)?;
    User::set_session(conn, user.id.0, &SessionChange::revoked(now, user, used))
}

/// Ends every session of the user, if `still` holds for its row as locked: the row as it
/// was, or `None` when there is no such user or `still` refused.
pub fn end_every_session_if(
    conn: &mut WriteConn,
    id: Uuid,
    now: NaiveDateTime,
    still: impl FnOnce(&User) -> bool,
) -> Result<Option<User>, DbError> {
    conn.transaction(|conn| {
        let Some(user) = User::lock(conn, id)?.filter(|user| still(user)) else { return Ok(None) };
        end_every_session_locked(conn, &user, now)?;
        Ok(Some(user))
    })
}

/// Deletes one session row of `user` (locked) and revokes its tokens: a per-session
/// revocation past its last use, and the user's `updated_at` written, so that the caches of
/// every instance re-read the account (`Freshness`).
fn end_one(
    conn: &mut WriteConn,
    user: &User,
    id: Uuid,
    now: NaiveDateTime,
    max_token_age_secs: i64,
) -> Result<(), DbError> {
    let used: Option<NaiveDateTime> = diesel::delete(sessions::table.find(DbUuid(id)))
        .returning(sessions::last_used_at)
        .get_result(conn.conn())
        .optional()?;
    let Some(used) = used else { return Ok(()) };
    let not_before = UnixMillis(UnixMillis::of(now.max(used)).0 + 1);
    let forget_before = UnixMillis(UnixMillis::of(now).0.saturating_sub(max_token_age_secs * 1000));
    Tombstone::session(user.id.0, id, not_before).keep(conn, forget_before)?;
    User::set_session(conn, user.id.0, &SessionChange::unchanged(user.stamp(now)))
}

//! The `users` row and every query on it.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, Double, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use std::io::Write;
use std::marker::PhantomData;
use uuid::Uuid;

use super::DbError;
use super::manager::{DbConnection, MultiBackend, WriteConn};
use super::schema::{revocations, user_roles, users};

/// A uuid stored as TEXT, the one column type both backends share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct DbUuid(pub Uuid);

impl ToSql<Text, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl ToSql<Text, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes())?;
        Ok(IsNull::No)
    }
}

impl ToSql<Text, MultiBackend> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Text, self));
        Ok(IsNull::No)
    }
}

impl<DB: Backend> FromSql<Text, DB> for DbUuid
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        Ok(DbUuid(Uuid::parse_str(&text)?))
    }
}

/// A revocation time in unix milliseconds, what Rust compares and tokens carry (the issue
/// time in a token's `jti`, see `auth::tokens`). The database keeps unix seconds with a
/// fraction (`users.tokens_valid_after`, whose name and unit the contract fixes, and
/// `revocations.not_before`): this type is the one conversion between the two. Any
/// millisecond survives the round trip, since a double holds today's seconds to within a
/// microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Double)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// `at`, to the millisecond (rounded down, as a token's issue time is).
    pub fn of(at: NaiveDateTime) -> Self {
        Self(at.and_utc().timestamp_millis())
    }

    fn seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Whole unix seconds, rounded up: every token whose whole-second `iat` is before
    /// this was issued before `self`.
    pub fn ceil_seconds(self) -> i64 {
        self.0.div_euclid(1000) + i64::from(self.0.rem_euclid(1000) != 0)
    }
}

impl ToSql<Double, Sqlite> for UnixMillis {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.seconds());
        Ok(IsNull::No)
    }
}

impl ToSql<Double, Pg> for UnixMillis {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&self.seconds().to_be_bytes())?;
        Ok(IsNull::No)
    }
}

impl ToSql<Double, MultiBackend> for UnixMillis {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Double, self));
        Ok(IsNull::No)
    }
}

impl<DB: Backend> FromSql<Double, DB> for UnixMillis
where
    f64: FromSql<Double, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(UnixMillis((f64::from_sql(bytes)? * 1000.0).round() as i64))
    }
}

/// A user row. Deliberately not `Debug`: it holds the password hash.
#[derive(Queryable, QueryableByName, Selectable, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: DbUuid,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub refresh_token_hash: Option<String>,
    pub refresh_token_expires_at: Option<NaiveDateTime>,
    pub previous_refresh_token_hash: Option<String>,
    pub refresh_token_rotated_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Access tokens issued before this are revoked (see [`tokens_valid_after`]).
    pub tokens_valid_after: Option<UnixMillis>,
    /// A disabled account cannot log in or refresh, and its tokens are refused.
    pub disabled: bool,
    /// The session on this row (`SESSIONS_PER_USER=1`): its id (the access tokens' `sid`),
    /// when it started, and from where; `None` without one.
    pub session_id: Option<DbUuid>,
    pub session_created_at: Option<NaiveDateTime>,
    pub session_user_agent: Option<String>,
    pub session_ip: Option<String>,
    /// The address was shown to be the user's (a link from a mail was used, an admin said
    /// so, or an import from Django did).
    pub email_verified: bool,
    /// A second factor is confirmed (`db::mfa`): a login takes two steps.
    pub mfa_enabled: bool,
    /// The methods the session on this row was started with, comma-joined; `None`: a
    /// password alone.
    pub session_amr: Option<String>,
}

/// What a new user row is made of. A signup's refresh session starts with the account;
/// one made by an administrator has none.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: DbUuid,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub refresh_token_hash: Option<String>,
    pub refresh_token_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub disabled: bool,
    pub email_verified: bool,
}

/// The `tokens_valid_after` of a revocation at `now` of `user`, the row as read under its
/// lock ([`User::lock`]) before the revoking transaction wrote to it: after every token
/// issued so far, and by as little as that allows, so that the next token issued is
/// hardly ahead of the clock.
///
/// A token's issue time is `max(its now, the row's tokens_valid_after)` to the millisecond
/// (`AccessTokens::issue`), and every request that issues one writes the row first with its
/// `now` (or later) as `updated_at`, under the row's lock. So a token issued so far is
/// before a millisecond past `now` (issued by a request that read the clock earlier), past
/// the row's last write (issued by one that committed before this took the lock, though its
/// clock read came after this request's), and, while a session is live (a token may have
/// been issued since the current value was set, and then carries that value), past the
/// current value. Without a session no token was issued since the revocation that ended
/// it, so consecutive revocations do not push the value on. Tokens issued afterwards are
/// at or past the new value, and so accepted.
///
/// With sessions of their own (`sessions` rows), `sessions_used` is the latest use of any of
/// the user's sessions, read as the revoking transaction wrote to them (`Session::end_all`,
/// `Session::touch_all`): their rotations issue tokens without writing this row.
pub fn tokens_valid_after(
    now: NaiveDateTime,
    user: &User,
    sessions_used: Option<NaiveDateTime>,
) -> UnixMillis {
    let last_write = user.refresh_token_rotated_at.map_or(user.updated_at, |at| at.max(user.updated_at));
    let last_write = sessions_used.map_or(last_write, |used| used.max(last_write));
    let past_writes = UnixMillis::of(now.max(last_write)).0 + 1;
    let current = user.tokens_valid_after.map_or(0, |current| {
        let live = user.refresh_token_hash.is_some() || sessions_used.is_some();
        current.0 + i64::from(live)
    });
    UnixMillis(past_writes.max(current))
}

/// A session to start: its id (the access tokens' `sid`), its first refresh token's hash
/// and expiry, when, and from where (the user agent capped, as given).
pub struct NewSession {
    pub id: Uuid,
    pub hash: String,
    pub expires_at: NaiveDateTime,
    pub now: NaiveDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The methods it was started with, comma-joined (`auth::Amr`); `None`: a password.
    pub amr: Option<String>,
}

/// The columns that describe the refresh session, written together. An outer `None`
/// leaves a column as it is; `Some(None)` clears it.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
pub struct SessionChange<'a> {
    refresh_token_hash: Option<Option<&'a str>>,
    refresh_token_expires_at: Option<Option<NaiveDateTime>>,
    previous_refresh_token_hash: Option<Option<&'a str>>,
    refresh_token_rotated_at: Option<Option<NaiveDateTime>>,
    tokens_valid_after: Option<Option<UnixMillis>>,
    updated_at: Option<NaiveDateTime>,
    session_id: Option<Option<DbUuid>>,
    session_created_at: Option<Option<NaiveDateTime>>,
    session_user_agent: Option<Option<&'a str>>,
    session_ip: Option<Option<&'a str>>,
    session_amr: Option<Option<&'a str>>,
}

impl<'a> SessionChange<'a> {
    /// A new refresh token with no predecessor, in the session as it is.
    fn fresh(hash: &'a str, expires_at: NaiveDateTime, now: NaiveDateTime) -> Self {
        Self {
            refresh_token_hash: Some(Some(hash)),
            refresh_token_expires_at: Some(Some(expires_at)),
            previous_refresh_token_hash: Some(None),
            refresh_token_rotated_at: Some(None),
            tokens_valid_after: None,
            updated_at: Some(now),
            session_id: None,
            session_created_at: None,
            session_user_agent: None,
            session_ip: None,
            session_amr: None,
        }
    }

    /// A new session (login, password change) on the row, replacing any other; `updated_at`
    /// is `stamp`, the row's stamp for the write ([`User::stamp`]).
    pub fn start(new: &'a NewSession, stamp: NaiveDateTime) -> Self {
        Self {
            session_id: Some(Some(DbUuid(new.id))),
            session_created_at: Some(Some(new.now)),
            session_user_agent: Some(new.user_agent.as_deref()),
            session_ip: Some(new.ip.as_deref()),
            session_amr: Some(new.amr.as_deref()),
            ..Self::fresh(&new.hash, new.expires_at, stamp)
        }
    }

    /// No change to the session on the row, only its stamp ([`User::stamp`]): for sessions
    /// kept in their own rows.
    pub fn unchanged(stamp: NaiveDateTime) -> Self {
        Self {
            refresh_token_hash: None,
            refresh_token_expires_at: None,
            previous_refresh_token_hash: None,
            refresh_token_rotated_at: None,
            ..Self::fresh("", stamp, stamp)
        }
    }

    /// The successor of `previous_hash`, which stays known for the grace window.
    pub fn rotated(
        hash: &'a str,
        expires_at: NaiveDateTime,
        previous_hash: &'a str,
        now: NaiveDateTime,
    ) -> Self {
        Self {
            previous_refresh_token_hash: Some(Some(previous_hash)),
            refresh_token_rotated_at: Some(Some(now)),
            ..Self::fresh(hash, expires_at, now)
        }
    }

    /// No session at all (logout, reuse detected); access tokens issued so far die too.
    /// `user` is the row as locked ([`User::lock`]), `sessions_used` as for
    /// [`tokens_valid_after`].
    pub fn revoked(now: NaiveDateTime, user: &User, sessions_used: Option<NaiveDateTime>) -> Self {
        Self {
            refresh_token_hash: Some(None),
            refresh_token_expires_at: Some(None),
            previous_refresh_token_hash: Some(None),
            refresh_token_rotated_at: Some(None),
            tokens_valid_after: None,
            updated_at: Some(user.stamp(now)),
            session_id: Some(None),
            session_created_at: Some(None),
            session_user_agent: Some(None),
            session_ip: Some(None),
            session_amr: Some(None),
        }
        .revoking_access_tokens(tokens_valid_after(now, user, sessions_used))
    }

    /// Leaves `updated_at` to the statement (a stamp computed in SQL).
    pub fn unstamped(self) -> Self {
        Self { updated_at: None, ..self }
    }

    /// Also revokes the access tokens issued before `valid_after` (see [`tokens_valid_after`]).
    pub fn revoking_access_tokens(self, valid_after: UnixMillis) -> Self {
        Self { tokens_valid_after: Some(Some(valid_after)), ..self }
    }
}

/// A live refresh token's rotation: the common refresh, written by one statement
/// ([`User::rotate_live_session`], or [`User::rotate_live_sessions`] for many at once).
pub struct LiveRotation {
    /// The presented token's hash, replaced if it is live.
    pub current_hash: String,
    pub successor_hash: String,
    pub expires_at: NaiveDateTime,
    pub now: NaiveDateTime,
}

impl LiveRotation {
    fn change(&self) -> SessionChange<'_> {
        SessionChange::rotated(&self.successor_hash, self.expires_at, &self.current_hash, self.now)
    }
}

diesel::define_sql_function! {
    /// Joins a group's values with a separator; SQLite (3.44 and later) and PostgreSQL
    /// both have it under this name.
    #[aggregate]
    fn string_agg(value: Text, separator: Text) -> Nullable<Text>;
}

/// What separates the roles `string_agg` joins: a character no role name has
/// (`auth::rules::is_valid_role`).
const ROLE_SEPARATOR: &str = ",";
// `User::rotate_live_sessions` writes it into its SQL by hand.
const _: () = assert!(ROLE_SEPARATOR.len() == 1 && ROLE_SEPARATOR.as_bytes()[0] == b',');

/// The sorted roles `string_agg` joined; in Rust, not SQL: PostgreSQL would order by its
/// collation, not bytewise.
pub(super) fn split_roles(joined: Option<String>) -> Vec<String> {
    let mut roles: Vec<String> =
        joined.iter().flat_map(|joined| joined.split(ROLE_SEPARATOR)).map(str::to_owned).collect();
    roles.sort_unstable();
    roles
}

/// The roles of the `users` row at hand, joined by [`ROLE_SEPARATOR`]: a subquery, so
/// that a user comes with its roles in one round trip.
#[diesel::dsl::auto_type]
pub(super) fn joined_roles() -> _ {
    let separator: &'static str = ROLE_SEPARATOR;
    user_roles::table
        .filter(user_roles::user_id.eq(users::id))
        .select(string_agg(user_roles::role, separator))
        .single_value()
}

/// A rotated session's user, with its sorted roles and the session's id (`None` for a
/// session on the users row from before sessions had ids).
pub struct Rotated {
    pub user: User,
    pub session_id: Option<Uuid>,
    pub roles: Vec<String>,
    /// The session's methods, comma-joined; `None`: a password.
    pub amr: Option<String>,
}

/// A row of a batch of rotations ([`User::rotate_live_sessions`]): the user, the session
/// and its new token's hash, and the user's roles joined.
#[derive(QueryableByName)]
pub(super) struct RotatedRow {
    #[diesel(embed)]
    user: User,
    #[diesel(sql_type = Nullable<Text>)]
    sid: Option<DbUuid>,
    #[diesel(sql_type = Text)]
    pub(super) successor: String,
    #[diesel(sql_type = Nullable<Text>)]
    roles: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    amr: Option<String>,
}

impl RotatedRow {
    pub(super) fn rotated(self) -> Rotated {
        Rotated {
            user: self.user,
            session_id: self.sid.map(|id| id.0),
            roles: split_roles(self.roles),
            amr: self.amr,
        }
    }
}

/// A statement that diesel would prepare anew for every execution (it never keeps an
/// UPDATE, since a changeset's columns may differ from one execution to the next), marked
/// as one whose SQL is the same every time, so that each connection prepares it once and
/// keeps it, keyed by `Id`. For statements built the same way on every call only.
pub(super) struct PreparedOnce<Q, Id> {
    query: Q,
    id: PhantomData<Id>,
}

impl<Q, Id> PreparedOnce<Q, Id> {
    pub(super) fn new(query: Q) -> Self {
        Self { query, id: PhantomData }
    }
}

impl<Q: Query, Id> Query for PreparedOnce<Q, Id> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<DB>, Id, DB: Backend> QueryFragment<DB> for PreparedOnce<Q, Id> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Id: 'static> QueryId for PreparedOnce<Q, Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Q, Id, Conn> RunQueryDsl<Conn> for PreparedOnce<Q, Id> {}

/// The key of [`User::rotate_live_session`]'s statement.
struct RotateLiveSession;

/// How often a PostgreSQL transaction is tried while concurrent writes to its rows make it
/// fail to serialise. Each retry starts from a snapshot that has the write that failed the
/// last, so one retry is the rule: more needs a user's row written again and again.
const SERIALIZATION_ATTEMPTS: usize = 5;

fn is_serialization_failure(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _))
}

/// Runs `work` in a REPEATABLE READ transaction, again while it fails to serialise (see
/// [`SERIALIZATION_ATTEMPTS`]); past those, the database is as good as unavailable.
pub(super) fn repeatable_read<T>(
    conn: &mut PgConnection,
    mut work: impl FnMut(&mut PgConnection) -> QueryResult<T>,
) -> Result<T, DbError> {
    for _ in 0..SERIALIZATION_ATTEMPTS {
        match conn.build_transaction().repeatable_read().run(&mut work) {
            Err(e) if is_serialization_failure(&e) => continue,
            result => return Ok(result?),
        }
    }
    Err(DbError::Unavailable("concurrent writes to one user kept a rotation from serialising".into()))
}

/// Runs a statement of rotations (`db::sessions::SessionStore::batch_sql`): its binds are
/// the arrays of the rotations' columns, sorted by token (the plan walks the arrays in
/// order, probing the token's index), so that the batches of concurrent instances lock
/// the rows they share in one order.
pub(super) fn rotate_rows(
    conn: &mut PgConnection,
    sql: &str,
    rotations: &[&LiveRotation],
) -> QueryResult<Vec<RotatedRow>> {
    let mut sorted = rotations.to_vec();
    sorted.sort_unstable_by(|a, b| a.current_hash.cmp(&b.current_hash));
    let current: Vec<&str> = sorted.iter().map(|r| r.current_hash.as_str()).collect();
    let successor: Vec<&str> = sorted.iter().map(|r| r.successor_hash.as_str()).collect();
    let expires_at: Vec<NaiveDateTime> = sorted.iter().map(|r| r.expires_at).collect();
    let now: Vec<NaiveDateTime> = sorted.iter().map(|r| r.now).collect();
    diesel::sql_query(sql)
        .bind::<Array<Text>, _>(current)
        .bind::<Array<Text>, _>(successor)
        .bind::<Array<Timestamp>, _>(expires_at)
        .bind::<Array<Timestamp>, _>(now)
        .load(conn)
}

/// A revocation that outlives its `users` row (a deleted user's): the revocation feed
/// lists it beside the users' `tokens_valid_after` until it can refuse only expired tokens.
#[derive(Insertable)]
#[diesel(table_name = revocations)]
pub struct Tombstone {
    user_id: DbUuid,
    /// `None`: every session of the user.
    session_id: Option<DbUuid>,
    not_before: UnixMillis,
}

impl Tombstone {
    /// Revokes every token of the user issued before `not_before`.
    pub fn user(id: Uuid, not_before: UnixMillis) -> Self {
        Self { user_id: DbUuid(id), session_id: None, not_before }
    }

    /// Revokes the tokens of one session of the user issued before `not_before`.
    pub fn session(user_id: Uuid, session_id: Uuid, not_before: UnixMillis) -> Self {
        Self { user_id: DbUuid(user_id), session_id: Some(DbUuid(session_id)), not_before }
    }

    /// Stores this one and forgets those before `forget_before`, in passing: they bound
    /// the table by the deletions of one token lifetime.
    pub fn keep(&self, conn: &mut WriteConn, forget_before: UnixMillis) -> Result<(), DbError> {
        diesel::delete(revocations::table.filter(revocations::not_before.lt(forget_before)))
            .execute(conn.conn())?;
        diesel::insert_into(revocations::table).values(self).execute(conn.conn())?;
        Ok(())
    }
}

impl User {
    // The lookups by a unique key load their one row rather than ask for `first()`: the
    // bundled SQLite plans `LIMIT ?` with the bound value and so prepares the statement
    // again at every execution (20% of `/auth/me` at 30,000 users, BENCHMARKS.md).
    pub fn find(conn: &mut DbConnection, id: Uuid) -> Result<Option<User>, DbError> {
        let rows = users::table.find(DbUuid(id)).select(User::as_select()).load(conn)?;
        Ok(rows.into_iter().next())
    }

    /// The row a login checks the password against.
    pub fn find_for_login(conn: &mut DbConnection, username: &str) -> Result<Option<User>, DbError> {
        let rows = users::table.filter(users::username.eq(username)).select(User::as_select()).load(conn)?;
        Ok(rows.into_iter().next())
    }

    /// The user whose current or previous refresh token has this hash.
    pub fn find_by_refresh_hash(conn: &mut DbConnection, hash: &str) -> Result<Option<User>, DbError> {
        let rows = users::table
            .filter(users::refresh_token_hash.eq(hash).or(users::previous_refresh_token_hash.eq(hash)))
            .select(User::as_select())
            .load(conn)?;
        Ok(rows.into_iter().next())
    }

    /// The user whose previous refresh token has one of these hashes.
    pub fn find_by_previous_hashes(
        conn: &mut DbConnection,
        hashes: &[String],
    ) -> Result<Option<User>, DbError> {
        Ok(users::table
            .filter(users::previous_refresh_token_hash.eq_any(hashes))
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// The `updated_at` of a write at `now` to this row, as read under its lock: `now`, or
    /// the stamp already there if that is later (another instance's clock, or a request
    /// that read the clock after this one but wrote first). So the stamp never goes back:
    /// [`tokens_valid_after`] takes it for the latest `now` a token was issued at.
    pub fn stamp(&self, now: NaiveDateTime) -> NaiveDateTime {
        now.max(self.updated_at)
    }

    /// Locks the user's row until the end of the transaction, and reads it as it is then;
    /// `None` when there is no such user. Requests that issue tokens or revoke them decide
    /// on the row as read here, so that of two the later sees what the earlier wrote. In a
    /// transaction only. PostgreSQL locks the row; SQLite locks the whole database, and
    /// only at a write: the SQLite writer's batch holds it already (`BEGIN IMMEDIATE`), and
    /// on another connection a write that changes nothing takes it here.
    pub fn lock(conn: &mut WriteConn, id: Uuid) -> Result<Option<User>, DbError> {
        let row = users::table.find(DbUuid(id));
        if let DbConnection::Postgres(pg) = conn.conn() {
            let rows = row.select(User::as_select()).for_update().load(pg)?;
            return Ok(rows.into_iter().next());
        }
        if conn.write_locked() {
            return User::find(conn, id);
        }
        if diesel::update(row).set(users::updated_at.eq(users::updated_at)).execute(conn.conn())? == 0 {
            return Ok(None);
        }
        User::find(conn, id)
    }

    /// Makes `email` the user's address, verified: a verification link to it was used, or
    /// a reset link mailed to it. On the row as locked.
    pub fn verify_email(
        conn: &mut WriteConn,
        user: &User,
        email: &str,
        now: NaiveDateTime,
    ) -> Result<(), DbError> {
        diesel::update(users::table.find(user.id))
            .set((
                users::email.eq(email),
                users::email_verified.eq(true),
                users::updated_at.eq(user.stamp(now)),
            ))
            .execute(conn.conn())?;
        Ok(())
    }

    /// Records, on the row as locked, that a token is being issued at `now` without any
    /// other change (a retry within the grace window): see [`tokens_valid_after`].
    pub fn stamp_issue(conn: &mut WriteConn, user: &User, now: NaiveDateTime) -> Result<(), DbError> {
        diesel::update(users::table.find(user.id))
            .set(users::updated_at.eq(user.stamp(now)))
            .execute(conn.conn())?;
        Ok(())
    }

    /// Writes a session change unconditionally.
    pub fn set_session(conn: &mut WriteConn, id: Uuid, change: &SessionChange) -> Result<(), DbError> {
        diesel::update(users::table.find(DbUuid(id))).set(change).execute(conn.conn())?;
        Ok(())
    }

    /// Rotates a live session in one statement: writes `change` only if `current_hash` is
    /// the current refresh token, unexpired at `now`, of an enabled user, and returns that
    /// user (as changed) with its sorted roles; `None` when nothing was written. A
    /// compare-and-set on the token itself, so that of concurrent rotations of one token
    /// exactly one wins (on PostgreSQL the losers re-check the row after the winner
    /// commits and find the token replaced).
    ///
    /// The roles are a subquery of the statement, which reads the statement's snapshot.
    /// SQLite's one writer has no concurrent write. On PostgreSQL the statement runs in a
    /// REPEATABLE READ transaction: a row written since that snapshot (a role taken away,
    /// committed while the rotation waited for the row) fails the transaction, and the
    /// retry reads the roles that go with the row it writes. Under READ COMMITTED it would
    /// write and return the row as that write left it, with the roles from before.
    pub fn rotate_live_session(
        conn: &mut WriteConn,
        rotation: &LiveRotation,
    ) -> Result<Option<Rotated>, DbError> {
        let update = || {
            let live = users::table
                .filter(users::refresh_token_hash.eq(&rotation.current_hash))
                .filter(users::refresh_token_expires_at.gt(rotation.now))
                .filter(users::disabled.eq(false));
            let update = diesel::update(live)
                .set(rotation.change())
                // The columns `as_select` names: a `SelectBy` cannot serve a
                // `MultiConnection`'s RETURNING.
                .returning((<User as Selectable<MultiBackend>>::construct_selection(), joined_roles()));
            // A rotation's change always sets the same columns, so its SQL never varies.
            PreparedOnce::<_, RotateLiveSession>::new(update)
        };
        // On the backend's own connection: through the `MultiConnection`, the SQL of even a
        // prepared statement is built again for every execution.
        let row: Option<(User, Option<String>)> = match conn.conn() {
            DbConnection::Sqlite(conn) => update().get_result(conn).optional()?,
            DbConnection::Postgres(conn) => {
                repeatable_read(conn, |conn| update().get_result(conn).optional())?
            }
        };
        Ok(row.map(|(user, roles)| Rotated {
            session_id: user.session_id.map(|id| id.0),
            roles: split_roles(roles),
            amr: user.session_amr.clone(),
            user,
        }))
    }

    /// [`User::rotate_live_session`] for many tokens in one statement, on PostgreSQL, in
    /// the sessions `sql` names (`db::sessions`): the rotated sessions' users, as changed,
    /// with their sorted roles; a token that is not live changes nothing and is left out.
    /// `rotations` must not repeat a token (one row would match twice). For a connection
    /// whose transactions are REPEATABLE READ (see [`User::rotate_live_session`] for why):
    /// `None` when a row was written since the statement's snapshot, and nothing was
    /// rotated.
    pub(super) fn rotate_live_sessions(
        conn: &mut PgConnection,
        sql: &str,
        rotations: &[&LiveRotation],
    ) -> Result<Option<Vec<RotatedRow>>, DbError> {
        match rotate_rows(conn, sql, rotations) {
            Err(e) if is_serialization_failure(&e) => Ok(None),
            rows => Ok(Some(rows?)),
        }
    }

    pub fn set_password_and_session(
        conn: &mut WriteConn,
        id: Uuid,
        password_hash: &str,
        change: &SessionChange,
    ) -> Result<(), DbError> {
        diesel::update(users::table.find(DbUuid(id)))
            .set((users::password_hash.eq(password_hash), change))
            .execute(conn.conn())?;
        Ok(())
    }

    /// Replaces an imported hash by its argon2id re-hash and starts the session, only if
    /// the stored hash is still `verified`: a password changed since it was verified is
    /// neither overwritten nor logged into. Not a password change: no token is revoked.
    pub fn rehash_and_set_session(
        conn: &mut WriteConn,
        id: Uuid,
        verified: &str,
        rehashed: &str,
        change: &SessionChange,
    ) -> Result<bool, DbError> {
        let updated = diesel::update(users::table.find(DbUuid(id)).filter(users::password_hash.eq(verified)))
            .set((users::password_hash.eq(rehashed), change))
            .execute(conn.conn())?;
        Ok(updated == 1)
    }

    /// `(user id, session id, not before)` of the revocations after `since`, oldest first:
    /// the users' `tokens_valid_after` (every session) and the tombstones ([`Tombstone`]:
    /// of deleted users, and of sessions ended one by one).
    pub fn revoked_since(
        conn: &mut DbConnection,
        since: UnixMillis,
    ) -> Result<Vec<(Uuid, Option<Uuid>, UnixMillis)>, DbError> {
        let users: Vec<(DbUuid, Option<UnixMillis>)> = users::table
            .filter(users::tokens_valid_after.gt(since))
            .select((users::id, users::tokens_valid_after))
            .load(conn)?;
        let tombstones: Vec<(DbUuid, Option<DbUuid>, UnixMillis)> = revocations::table
            .filter(revocations::not_before.gt(since))
            .select((revocations::user_id, revocations::session_id, revocations::not_before))
            .load(conn)?;
        let users = users.into_iter().filter_map(|(id, at)| Some((id.0, None, at?)));
        let tombstones = tombstones.into_iter().map(|(id, session, at)| (id.0, session.map(|s| s.0), at));
        let mut all: Vec<(Uuid, Option<Uuid>, UnixMillis)> = users.chain(tombstones).collect();
        all.sort_unstable_by_key(|&(_, _, at)| at);
        Ok(all)
    }

    /// Touches the table, for readiness: proves the connection and the schema.
    pub fn ping(conn: &mut DbConnection) -> Result<(), DbError> {
        users::table.select(users::id).limit(1).load::<DbUuid>(conn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_are_rounded_up_only_from_a_fraction() {
        let cases =
            [(1_765_000_000_000, 1_765_000_000), (1_765_000_000_001, 1_765_000_001), (-1, 0), (-1000, -1)];
        for (millis, seconds) in cases {
            assert_eq!(UnixMillis(millis).ceil_seconds(), seconds, "{millis}");
        }
    }

    #[test]
    fn every_millisecond_survives_the_seconds_the_database_keeps() {
        for millis in [0, 1, 999, 1_765_000_000_123, 4_102_444_800_999] {
            let seconds = UnixMillis(millis).seconds();
            assert_eq!(((seconds * 1000.0).round()) as i64, millis);
        }
    }
}

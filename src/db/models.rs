//! The `users` row and every query on it.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use std::io::Write;
use std::marker::PhantomData;
use uuid::Uuid;

use super::DbError;
use super::manager::{DbConnection, MultiBackend, WriteConn};
use super::schema::{user_roles, users};

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
    /// Access tokens issued (`iat`) before this unix time are revoked.
    pub tokens_valid_after: Option<i64>,
    /// A disabled account cannot log in or refresh, and its tokens are refused.
    pub disabled: bool,
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
}

/// The `tokens_valid_after` of a revocation at `now`, given the user's current one: a
/// second past both `now` and the current value, so that every token issued so far is
/// before it (a token's `iat` is `now` rounded down, or the current value if that is
/// later). Tokens issued afterwards carry `iat` ≥ the new value (`AccessTokens::issue`).
pub fn tokens_valid_after(now: NaiveDateTime, current: Option<i64>) -> i64 {
    now.and_utc().timestamp().max(current.unwrap_or(0)) + 1
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
    tokens_valid_after: Option<Option<i64>>,
    updated_at: NaiveDateTime,
}

impl<'a> SessionChange<'a> {
    /// A fresh session (login, password change): no predecessor.
    pub fn start(hash: &'a str, expires_at: NaiveDateTime, now: NaiveDateTime) -> Self {
        Self {
            refresh_token_hash: Some(Some(hash)),
            refresh_token_expires_at: Some(Some(expires_at)),
            previous_refresh_token_hash: Some(None),
            refresh_token_rotated_at: Some(None),
            tokens_valid_after: None,
            updated_at: now,
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
            ..Self::start(hash, expires_at, now)
        }
    }

    /// No session at all (logout, reuse detected); access tokens issued so far die too.
    pub fn revoked(now: NaiveDateTime, current_valid_after: Option<i64>) -> Self {
        Self {
            refresh_token_hash: Some(None),
            refresh_token_expires_at: Some(None),
            previous_refresh_token_hash: Some(None),
            refresh_token_rotated_at: Some(None),
            tokens_valid_after: None,
            updated_at: now,
        }
        .revoking_access_tokens(tokens_valid_after(now, current_valid_after))
    }

    /// Also revokes the access tokens issued before `valid_after` (see [`tokens_valid_after`]).
    pub fn revoking_access_tokens(self, valid_after: i64) -> Self {
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

/// A row of [`User::rotate_live_sessions`]: the user as changed, and its roles joined.
#[derive(QueryableByName)]
struct RotatedRow {
    #[diesel(embed)]
    user: User,
    #[diesel(sql_type = Nullable<Text>)]
    roles: Option<String>,
}

/// A statement that diesel would prepare anew for every execution (it never keeps an
/// UPDATE, since a changeset's columns may differ from one execution to the next), marked
/// as one whose SQL is the same every time, so that each connection prepares it once and
/// keeps it, keyed by `Id`. For statements built the same way on every call only.
struct PreparedOnce<Q, Id> {
    query: Q,
    id: PhantomData<Id>,
}

impl<Q, Id> PreparedOnce<Q, Id> {
    fn new(query: Q) -> Self {
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

impl User {
    // The lookups by a unique key load their one row rather than ask for `first()`: the
    // bundled SQLite plans `LIMIT ?` with the bound value and so prepares the statement
    // again at every execution (20% of `/auth/me` at 30,000 users, BENCHMARKS.md).
    pub fn find(conn: &mut DbConnection, id: Uuid) -> Result<Option<User>, DbError> {
        let rows = users::table.find(DbUuid(id)).select(User::as_select()).load(conn)?;
        Ok(rows.into_iter().next())
    }

    /// [`User::find`] with the user's sorted roles, in one query.
    pub fn find_with_roles(
        conn: &mut DbConnection,
        id: Uuid,
    ) -> Result<Option<(User, Vec<String>)>, DbError> {
        let rows: Vec<(User, Option<String>)> =
            users::table.find(DbUuid(id)).select((User::as_select(), joined_roles())).load(conn)?;
        Ok(rows.into_iter().next().map(|(user, roles)| (user, split_roles(roles))))
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
    pub fn rotate_live_session(
        conn: &mut WriteConn,
        rotation: &LiveRotation,
    ) -> Result<Option<(User, Vec<String>)>, DbError> {
        let live = users::table
            .filter(users::refresh_token_hash.eq(&rotation.current_hash))
            .filter(users::refresh_token_expires_at.gt(rotation.now))
            .filter(users::disabled.eq(false));
        let update = diesel::update(live)
            .set(rotation.change())
            // The columns `as_select` names: a `SelectBy` cannot serve a `MultiConnection`'s
            // RETURNING.
            .returning((<User as Selectable<MultiBackend>>::construct_selection(), joined_roles()));
        // A rotation's change always sets the same columns, so its SQL never varies.
        let update = PreparedOnce::<_, RotateLiveSession>::new(update);
        // On the backend's own connection: through the `MultiConnection`, the SQL of even a
        // prepared statement is built again for every execution.
        let row: Option<(User, Option<String>)> = match conn.conn() {
            DbConnection::Sqlite(conn) => update.get_result(conn),
            DbConnection::Postgres(conn) => update.get_result(conn),
        }
        .optional()?;
        Ok(row.map(|(user, roles)| (user, split_roles(roles))))
    }

    /// [`User::rotate_live_session`] for many tokens in one statement, on PostgreSQL:
    /// the users whose tokens were rotated, as changed, with their sorted roles; a token
    /// that is not live changes nothing and is left out. `rotations` must not repeat a
    /// token (one row would match twice).
    pub fn rotate_live_sessions(
        conn: &mut PgConnection,
        rotations: &[&LiveRotation],
    ) -> Result<Vec<(User, Vec<String>)>, DbError> {
        // The same change as `SessionChange::rotated`, row by row from the arrays. Sorted
        // by token (the plan walks the array in order, probing the token's index), the
        // batches of concurrent instances lock the rows they share in one order.
        const ROTATE: &str = "UPDATE users SET refresh_token_hash = b.successor_hash, \
             refresh_token_expires_at = b.expires_at, previous_refresh_token_hash = b.current_hash, \
             refresh_token_rotated_at = b.now, updated_at = b.now \
             FROM unnest($1::text[], $2::text[], $3::timestamp[], $4::timestamp[]) \
                 AS b (current_hash, successor_hash, expires_at, now) \
             WHERE users.refresh_token_hash = b.current_hash AND users.refresh_token_expires_at > b.now \
                 AND NOT users.disabled \
             RETURNING users.*, (SELECT string_agg(user_roles.role, ',') FROM user_roles \
                 WHERE user_roles.user_id = users.id) AS roles";
        let mut sorted = rotations.to_vec();
        sorted.sort_unstable_by(|a, b| a.current_hash.cmp(&b.current_hash));
        let current: Vec<&str> = sorted.iter().map(|r| r.current_hash.as_str()).collect();
        let successor: Vec<&str> = sorted.iter().map(|r| r.successor_hash.as_str()).collect();
        let expires_at: Vec<NaiveDateTime> = sorted.iter().map(|r| r.expires_at).collect();
        let now: Vec<NaiveDateTime> = sorted.iter().map(|r| r.now).collect();
        let rows: Vec<RotatedRow> = diesel::sql_query(ROTATE)
            .bind::<Array<Text>, _>(current)
            .bind::<Array<Text>, _>(successor)
            .bind::<Array<Timestamp>, _>(expires_at)
            .bind::<Array<Timestamp>, _>(now)
            .load(conn)?;
        Ok(rows.into_iter().map(|row| (row.user, split_roles(row.roles))).collect())
    }

    /// Revokes the session only if its previous token is still `previous_hash`, so that a
    /// replay detected late cannot wipe a session started afterwards by a fresh login.
    pub fn revoke_if_previous(
        conn: &mut WriteConn,
        user: &User,
        previous_hash: &str,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let updated = diesel::update(
            users::table.find(user.id).filter(users::previous_refresh_token_hash.eq(previous_hash)),
        )
        .set(&SessionChange::revoked(now, user.tokens_valid_after))
        .execute(conn.conn())?;
        Ok(updated == 1)
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

    /// `(user id, tokens_valid_after)` of the users revoked after `since`, oldest first.
    pub fn revoked_since(conn: &mut DbConnection, since: i64) -> Result<Vec<(DbUuid, i64)>, DbError> {
        let rows: Vec<(DbUuid, Option<i64>)> = users::table
            .filter(users::tokens_valid_after.gt(since))
            .order(users::tokens_valid_after)
            .select((users::id, users::tokens_valid_after))
            .load(conn)?;
        Ok(rows.into_iter().filter_map(|(id, at)| Some((id, at?))).collect())
    }

    /// Touches the table, for readiness: proves the connection and the schema.
    pub fn ping(conn: &mut DbConnection) -> Result<(), DbError> {
        users::table.select(users::id).limit(1).load::<DbUuid>(conn)?;
        Ok(())
    }
}

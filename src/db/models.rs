//! The `users` row and every query on it.

use chrono::NaiveDateTime;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use std::io::Write;
use uuid::Uuid;

use super::connection::{DbConnection, MultiBackend};
use super::schema::users;
use crate::error::ApiError;

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
        out.write_all(
            self.0
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        )?;
        Ok(IsNull::No)
    }
}

impl ToSql<Text, MultiBackend> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Text, self));
        Ok(IsNull::No)
    }
}

impl FromSql<Text, MultiBackend> for DbUuid {
    fn from_sql(
        bytes: <MultiBackend as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        let text = bytes.from_sql::<String, Text>()?;
        Ok(DbUuid(Uuid::parse_str(&text)?))
    }
}

/// A user row. Deliberately not `Debug`: it holds the password hash.
#[derive(Queryable, Selectable, Clone)]
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
}

/// What a new user row is made of; the refresh session starts with the account.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: DbUuid,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub refresh_token_hash: String,
    pub refresh_token_expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The columns that describe the refresh session, written together.
#[derive(AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub struct SessionChange<'a> {
    pub refresh_token_hash: Option<&'a str>,
    pub refresh_token_expires_at: Option<NaiveDateTime>,
    pub previous_refresh_token_hash: Option<&'a str>,
    pub refresh_token_rotated_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl<'a> SessionChange<'a> {
    /// A fresh session (login, password change): no predecessor.
    pub fn start(hash: &'a str, expires_at: NaiveDateTime, now: NaiveDateTime) -> Self {
        Self {
            refresh_token_hash: Some(hash),
            refresh_token_expires_at: Some(expires_at),
            previous_refresh_token_hash: None,
            refresh_token_rotated_at: None,
            updated_at: now,
        }
    }

    /// No session at all (logout, reuse detected).
    pub fn revoked(now: NaiveDateTime) -> Self {
        Self {
            refresh_token_hash: None,
            refresh_token_expires_at: None,
            previous_refresh_token_hash: None,
            refresh_token_rotated_at: None,
            updated_at: now,
        }
    }
}

impl NewUser {
    /// Inserts the row; a taken username is reported by the unique index itself, so two
    /// racing signups cannot both succeed.
    pub fn insert(self, conn: &mut DbConnection) -> Result<User, ApiError> {
        match diesel::insert_into(users::table)
            .values(&self)
            .execute(conn)
        {
            Ok(_) => Ok(User {
                id: self.id,
                username: self.username,
                email: self.email,
                password_hash: self.password_hash,
                refresh_token_hash: Some(self.refresh_token_hash),
                refresh_token_expires_at: Some(self.refresh_token_expires_at),
                previous_refresh_token_hash: None,
                refresh_token_rotated_at: None,
                created_at: self.created_at,
                updated_at: self.updated_at,
            }),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(ApiError::UsernameTaken)
            }
            Err(other) => Err(other.into()),
        }
    }
}

impl User {
    pub fn find(conn: &mut DbConnection, id: Uuid) -> Result<Option<User>, ApiError> {
        Ok(users::table
            .find(DbUuid(id))
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn find_by_username(
        conn: &mut DbConnection,
        username: &str,
    ) -> Result<Option<User>, ApiError> {
        Ok(users::table
            .filter(users::username.eq(username))
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// The user whose current or previous refresh token has this hash.
    pub fn find_by_refresh_hash(
        conn: &mut DbConnection,
        hash: &str,
    ) -> Result<Option<User>, ApiError> {
        Ok(users::table
            .filter(
                users::refresh_token_hash
                    .eq(hash)
                    .or(users::previous_refresh_token_hash.eq(hash)),
            )
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// The user whose previous refresh token has one of these hashes.
    pub fn find_by_previous_hashes(
        conn: &mut DbConnection,
        hashes: &[String],
    ) -> Result<Option<User>, ApiError> {
        Ok(users::table
            .filter(users::previous_refresh_token_hash.eq_any(hashes))
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// Writes a session change unconditionally.
    pub fn set_session(
        conn: &mut DbConnection,
        id: Uuid,
        change: &SessionChange,
    ) -> Result<(), ApiError> {
        diesel::update(users::table.find(DbUuid(id)))
            .set(change)
            .execute(conn)?;
        Ok(())
    }

    /// Writes a session change only if the current refresh token is still `expected_hash`:
    /// the compare-and-set that makes concurrent rotations of one token yield one winner.
    pub fn set_session_if_current(
        conn: &mut DbConnection,
        id: Uuid,
        expected_hash: &str,
        change: &SessionChange,
    ) -> Result<bool, ApiError> {
        let updated = diesel::update(
            users::table
                .find(DbUuid(id))
                .filter(users::refresh_token_hash.eq(expected_hash)),
        )
        .set(change)
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Revokes the session only if its previous token is still `previous_hash`, so that a
    /// replay detected late cannot wipe a session started afterwards by a fresh login.
    pub fn revoke_if_previous(
        conn: &mut DbConnection,
        id: Uuid,
        previous_hash: &str,
        now: NaiveDateTime,
    ) -> Result<bool, ApiError> {
        let updated = diesel::update(
            users::table
                .find(DbUuid(id))
                .filter(users::previous_refresh_token_hash.eq(previous_hash)),
        )
        .set(&SessionChange::revoked(now))
        .execute(conn)?;
        Ok(updated == 1)
    }

    pub fn set_password_and_session(
        conn: &mut DbConnection,
        id: Uuid,
        password_hash: &str,
        change: &SessionChange,
    ) -> Result<(), ApiError> {
        diesel::update(users::table.find(DbUuid(id)))
            .set((users::password_hash.eq(password_hash), change))
            .execute(conn)?;
        Ok(())
    }

    /// Touches the table, for readiness: proves the connection and the schema.
    pub fn ping(conn: &mut DbConnection) -> Result<(), ApiError> {
        users::table
            .select(users::id)
            .limit(1)
            .load::<DbUuid>(conn)?;
        Ok(())
    }
}

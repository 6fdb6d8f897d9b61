//! Accounts: a user row with its roles, and every administrative change to them.
//!
//! Signup, the admin API, the CLI and imports all come through here, so that each rule
//! holds whichever way a change arrives: every change is one transaction, and a change that
//! takes a right away (a removed role, disabling, a new password, a forced logout) revokes
//! the user's access tokens in the same transaction (`tokens_valid_after`, which the
//! revocation feed publishes). Input is validated by the callers, with the shared rules
//! (`auth::rules` for usernames, emails and roles, `auth::password` for passwords).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::DbError;
use super::connection::DbConnection;
use super::models::{DbUuid, NewUser, SessionChange, User, tokens_valid_after};
use super::schema::{user_roles, users};

/// A user with its roles (sorted): what tokens and user objects are made from.
pub struct Account {
    pub user: User,
    pub roles: Vec<String>,
}

/// What decides whether a cached [`Account`] is still right, read for many users in one
/// light query ([`Account::freshness_of`]) instead of their rows: every write the service
/// makes to a user bumps `updated_at`; revocations (`tokens_valid_after`, `disabled`) and
/// roles are compared in their own right, so that a change made by hand shows too.
pub struct Freshness {
    pub id: Uuid,
    pub updated_at: NaiveDateTime,
    pub tokens_valid_after: Option<i64>,
    pub disabled: bool,
    /// The roles joined by commas, in no particular order; `None` for none.
    pub roles: Option<String>,
}

impl Freshness {
    /// Whether `account` is what this says the user's account is now.
    pub fn matches(&self, account: &Account) -> bool {
        let user = &account.user;
        if user.id.0 != self.id
            || user.updated_at != self.updated_at
            || user.tokens_valid_after != self.tokens_valid_after
            || user.disabled != self.disabled
        {
            return false;
        }
        let mut roles: Vec<&str> = self.roles.as_deref().map(|r| r.split(',').collect()).unwrap_or_default();
        // `account.roles` is sorted bytewise; the aggregate's order is the database's.
        roles.sort_unstable();
        roles.len() == account.roles.len() && roles.iter().zip(&account.roles).all(|(a, b)| a == b)
    }
}

/// What [`Account::freshness_of`] reads: a [`Freshness`] in column order.
type FreshnessRow = (DbUuid, NaiveDateTime, Option<i64>, bool, Option<String>);

/// A user to create, with the roles it starts with.
pub struct NewAccount {
    pub user: NewUser,
    pub roles: Vec<String>,
}

impl NewAccount {
    /// An enabled account with no session yet, as an administrator or the CLI makes one.
    pub fn new(
        username: String,
        email: Option<String>,
        password_hash: String,
        roles: Vec<String>,
        now: NaiveDateTime,
    ) -> Self {
        let user = NewUser {
            id: DbUuid(Uuid::new_v4()),
            username,
            email,
            password_hash,
            refresh_token_hash: None,
            refresh_token_expires_at: None,
            created_at: now,
            updated_at: now,
            disabled: false,
        };
        Self { user, roles }
    }
}

/// What an administrator may change; `None` leaves a part as it is.
#[derive(Default)]
pub struct AccountChange {
    /// `Some(None)` removes the address.
    pub email: Option<Option<String>>,
    /// The complete new set.
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

/// One page of accounts in username order, and the username to continue after.
pub struct Page {
    pub accounts: Vec<Account>,
    pub next: Option<String>,
}

/// The sorted roles of one user; what login and refresh put into the token.
pub fn roles_of(conn: &mut DbConnection, id: Uuid) -> Result<Vec<String>, DbError> {
    let mut roles: Vec<String> =
        user_roles::table.filter(user_roles::user_id.eq(DbUuid(id))).select(user_roles::role).load(conn)?;
    // In Rust, not SQL: PostgreSQL would order by its collation, not bytewise.
    roles.sort_unstable();
    Ok(roles)
}

/// Whether any account still has a hash imported from Django (usable or not): what
/// `auth::password::is_imported_hash` tells apart, in SQL.
pub fn imported_hashes_exist(conn: &mut DbConnection) -> Result<bool, DbError> {
    let imported = users::table
        .filter(users::password_hash.ne(""))
        .filter(users::password_hash.not_like("$%"))
        .filter(users::password_hash.not_like("!%"));
    Ok(diesel::select(diesel::dsl::exists(imported)).get_result(conn)?)
}

/// Operations on an account that does not exist answer `None` (or `false`); a taken
/// username is [`DbError::UniqueViolation`], reported by the unique index itself, so two
/// racing creations cannot both succeed.
impl Account {
    pub fn insert(conn: &mut DbConnection, new: NewAccount) -> Result<Account, DbError> {
        let id = new.user.id.0;
        Self::insert_batch(conn, std::slice::from_ref(&new))?;
        Self::find(conn, id)?.ok_or_else(|| DbError::Other("a created user vanished".into()))
    }

    /// Creates many accounts in one transaction: all of them, or none if any username is
    /// taken or anything else fails. For imports, batch by batch.
    pub fn insert_batch<'a>(
        conn: &mut DbConnection,
        batch: impl IntoIterator<Item = &'a NewAccount>,
    ) -> Result<(), DbError> {
        conn.transaction(|conn| {
            for new in batch {
                diesel::insert_into(users::table).values(&new.user).execute(conn)?;
                insert_roles(conn, new.user.id, &new.roles)?;
            }
            Ok(())
        })
    }

    pub fn find(conn: &mut DbConnection, id: Uuid) -> Result<Option<Account>, DbError> {
        Ok(User::find_with_roles(conn, id)?.map(|(user, roles)| Account { user, roles }))
    }

    pub fn find_by_username(conn: &mut DbConnection, username: &str) -> Result<Option<Account>, DbError> {
        let user = User::find_by_username(conn, username)?;
        Self::with_roles(conn, user)
    }

    fn with_roles(conn: &mut DbConnection, user: Option<User>) -> Result<Option<Account>, DbError> {
        let Some(user) = user else { return Ok(None) };
        let roles = roles_of(conn, user.id.0)?;
        Ok(Some(Account { user, roles }))
    }

    /// The [`Freshness`] of those of `ids` that exist, in no particular order: one query,
    /// no strings but the roles.
    pub fn freshness_of(conn: &mut DbConnection, ids: &[Uuid]) -> Result<Vec<Freshness>, DbError> {
        // `string_agg` is PostgreSQL's and SQLite's (3.44 on).
        const ROLES: &str = "(SELECT string_agg(user_roles.role, ',') FROM user_roles \
                             WHERE user_roles.user_id = users.id)";
        let ids: Vec<DbUuid> = ids.iter().copied().map(DbUuid).collect();
        let rows: Vec<FreshnessRow> = users::table
            .filter(users::id.eq_any(ids))
            .select((
                users::id,
                users::updated_at,
                users::tokens_valid_after,
                users::disabled,
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(ROLES),
            ))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(id, updated_at, tokens_valid_after, disabled, roles)| Freshness {
                id: id.0,
                updated_at,
                tokens_valid_after,
                disabled,
                roles,
            })
            .collect())
    }

    /// [`Account::with_roles`] for many users at once, in their order.
    fn with_roles_of_all(conn: &mut DbConnection, users: Vec<User>) -> Result<Vec<Account>, DbError> {
        let ids: Vec<DbUuid> = users.iter().map(|u| u.id).collect();
        let pairs: Vec<(DbUuid, String)> = user_roles::table
            .filter(user_roles::user_id.eq_any(ids))
            .select((user_roles::user_id, user_roles::role))
            .load(conn)?;
        let mut roles: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (id, role) in pairs {
            roles.entry(id.0).or_default().push(role);
        }
        Ok(users
            .into_iter()
            .map(|user| {
                let mut roles = roles.remove(&user.id.0).unwrap_or_default();
                roles.sort_unstable();
                Account { user, roles }
            })
            .collect())
    }

    /// Up to `limit` accounts whose usernames sort after `after`. Keyset paging on the
    /// username's unique index: no rows are skipped or repeated when users are created or
    /// deleted between pages, and a page costs the same however deep it is.
    pub fn page(conn: &mut DbConnection, after: Option<&str>, limit: i64) -> Result<Page, DbError> {
        let mut query =
            users::table.order(users::username).limit(limit + 1).select(User::as_select()).into_boxed();
        if let Some(after) = after {
            query = query.filter(users::username.gt(after.to_owned()));
        }
        let mut users: Vec<User> = query.load(conn)?;
        let more = users.len() as i64 > limit;
        users.truncate(limit as usize);
        let next = more.then(|| users.last().map(|u| u.username.clone())).flatten();
        Ok(Page { accounts: Self::with_roles_of_all(conn, users)?, next })
    }

    /// Applies an administrator's change. Removing a role revokes the access tokens issued
    /// so far (the next refresh yields tokens without it); disabling or a new password ends
    /// the session as well.
    pub fn update(
        conn: &mut DbConnection,
        id: Uuid,
        change: AccountChange,
        now: NaiveDateTime,
    ) -> Result<Option<Account>, DbError> {
        write_transaction(conn, id, now, |conn, current| {
            let mut revoke = false;
            let mut end_session = change.password_hash.is_some();
            if let Some(roles) = &change.roles {
                revoke |= replace_roles(conn, current, roles)?;
            }
            if let Some(disabled) = change.disabled {
                end_session |= disabled && !current.user.disabled;
                diesel::update(users::table.find(current.user.id))
                    .set(users::disabled.eq(disabled))
                    .execute(conn)?;
            }
            if let Some(email) = &change.email {
                diesel::update(users::table.find(current.user.id))
                    .set(users::email.eq(email))
                    .execute(conn)?;
            }
            if let Some(hash) = &change.password_hash {
                diesel::update(users::table.find(current.user.id))
                    .set(users::password_hash.eq(hash))
                    .execute(conn)?;
            }
            revoke_tokens(conn, &current.user, now, revoke, end_session)
        })
    }

    /// Adds and removes roles (a role both added and removed ends up removed).
    pub fn change_roles(
        conn: &mut DbConnection,
        id: Uuid,
        add: &[String],
        remove: &[String],
        now: NaiveDateTime,
    ) -> Result<Option<Account>, DbError> {
        write_transaction(conn, id, now, |conn, current| {
            let mut roles: Vec<String> =
                current.roles.iter().chain(add).filter(|r| !remove.contains(r)).cloned().collect();
            roles.sort_unstable();
            roles.dedup();
            let revoke = replace_roles(conn, current, &roles)?;
            revoke_tokens(conn, &current.user, now, revoke, false)
        })
    }

    /// Ends the session and revokes every access token issued so far.
    pub fn log_out(conn: &mut DbConnection, id: Uuid, now: NaiveDateTime) -> Result<bool, DbError> {
        write_transaction(conn, id, now, |conn, current| revoke_tokens(conn, &current.user, now, false, true))
            .map(|account| account.is_some())
    }

    /// Deletes the user; its roles go with it (`ON DELETE CASCADE`).
    pub fn delete(conn: &mut DbConnection, id: Uuid) -> Result<bool, DbError> {
        Ok(diesel::delete(users::table.find(DbUuid(id))).execute(conn)? == 1)
    }
}

/// Runs `change` on the account in a transaction and returns the account as it is after.
/// The transaction writes first (`updated_at`): on SQLite that takes the write lock at the
/// start, so that another process (a server beside the CLI) cannot write between this
/// transaction's reads and its writes and make the lock upgrade fail.
fn write_transaction(
    conn: &mut DbConnection,
    id: Uuid,
    now: NaiveDateTime,
    change: impl FnOnce(&mut DbConnection, &Account) -> Result<(), DbError>,
) -> Result<Option<Account>, DbError> {
    conn.transaction(|conn| {
        let touched =
            diesel::update(users::table.find(DbUuid(id))).set(users::updated_at.eq(now)).execute(conn)?;
        let Some(current) = Account::find(conn, id)?.filter(|_| touched == 1) else {
            return Ok(None);
        };
        change(conn, &current)?;
        Account::find(conn, id)
    })
}

/// One statement a row: diesel's `MultiConnection` has no multi-row `INSERT`.
fn insert_roles(conn: &mut DbConnection, id: DbUuid, roles: &[String]) -> QueryResult<()> {
    for role in roles {
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(id), user_roles::role.eq(role)))
            .execute(conn)?;
    }
    Ok(())
}

/// Makes `roles` the account's set; returns whether any role was taken away.
fn replace_roles(conn: &mut DbConnection, current: &Account, roles: &[String]) -> QueryResult<bool> {
    let id = current.user.id;
    diesel::delete(user_roles::table.filter(user_roles::user_id.eq(id))).execute(conn)?;
    insert_roles(conn, id, roles)?;
    Ok(current.roles.iter().any(|role| !roles.contains(role)))
}

/// Revokes the access tokens issued so far (`revoke`), and with `end_session` the refresh
/// token too.
fn revoke_tokens(
    conn: &mut DbConnection,
    user: &User,
    now: NaiveDateTime,
    revoke: bool,
    end_session: bool,
) -> Result<(), DbError> {
    let target = users::table.find(user.id);
    if end_session {
        diesel::update(target).set(&SessionChange::revoked(now, user)).execute(conn)?;
    } else if revoke {
        let valid_after = tokens_valid_after(now, user.tokens_valid_after);
        diesel::update(target).set(users::tokens_valid_after.eq(valid_after)).execute(conn)?;
    }
    Ok(())
}

//! Accounts: a user row with its roles, and every administrative change to them.
//!
//! Signup, the admin API, the CLI and imports all come through here, so that each rule
//! holds whichever way a change arrives: every change is one transaction, and a change that
//! takes a right away (a removed role, disabling, a new password, a forced logout) revokes
//! the user's access tokens in the same transaction (`tokens_valid_after`, which the
//! revocation feed publishes). Input is validated by the callers, with the shared rules
//! (`auth::rules` for usernames, emails and roles, `auth::password` for passwords).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::dsl::case_when;
use diesel::prelude::*;
use uuid::Uuid;

use super::DbError;
use super::mail::{MailTokens, Purpose};
use super::manager::{DbConnection, MultiBackend, WriteConn};
use super::mfa::TotpFactor;
use super::models::{
    DbUuid, NewSession, NewUser, PreparedOnce, SessionChange, Tombstone, UnixMillis, User, joined_roles,
    repeatable_read, split_roles, tokens_valid_after,
};
use super::schema::{revocations, user_roles, users};
use super::sessions::{Session, end_every_session_if, end_every_session_locked};
use crate::auth::rules::ADMIN_ROLE;

/// The PostgreSQL advisory lock that changes taking the last admins' rights take turns
/// at (any constant works, as long as every tollgate uses the same one).
const ADMINS_LOCK_ID: i64 = 0x746f_6c6c_6164_6d6e; // "tolladmn"

/// A user as the service sees it, with its roles (sorted): what tokens, user objects and
/// the user cache are made from. No hash of any kind: those stay in [`User`], which only
/// the login, the password change and the rotation read.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Access tokens issued before this time are revoked.
    pub tokens_valid_after: Option<UnixMillis>,
    pub disabled: bool,
    pub email_verified: bool,
    /// A second factor is confirmed.
    pub mfa_enabled: bool,
    pub roles: Vec<String>,
    /// The sessions ended one by one (`SESSIONS_PER_USER` > 1) whose access tokens may
    /// still be alive, sorted: their tokens are refused.
    pub ended_sessions: Vec<Uuid>,
}

/// The columns of `users` an [`Account`] is made of.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct AccountColumns {
    id: DbUuid,
    username: String,
    email: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    tokens_valid_after: Option<UnixMillis>,
    disabled: bool,
    email_verified: bool,
    mfa_enabled: bool,
}

impl Account {
    /// The account of a full row read for another purpose (a login, a rotation).
    pub fn of(user: &User, roles: Vec<String>) -> Self {
        Self {
            id: user.id.0,
            username: user.username.clone(),
            email: user.email.clone(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            tokens_valid_after: user.tokens_valid_after,
            disabled: user.disabled,
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
            roles,
            ended_sessions: Vec::new(),
        }
    }

    fn from_columns(columns: AccountColumns, roles: Vec<String>) -> Self {
        let AccountColumns {
            id,
            username,
            email,
            created_at,
            updated_at,
            tokens_valid_after,
            disabled,
            email_verified,
            mfa_enabled,
        } = columns;
        Self {
            id: id.0,
            username,
            email,
            created_at,
            updated_at,
            tokens_valid_after,
            disabled,
            email_verified,
            mfa_enabled,
            roles,
            ended_sessions: Vec::new(),
        }
    }

    /// Whether the session's tokens are refused, it having ended on its own.
    pub fn ended(&self, session_id: Uuid) -> bool {
        self.ended_sessions.binary_search(&session_id).is_ok()
    }
}

/// What decides whether a cached [`Account`] is still right, read for many users in one
/// light query ([`Account::freshness_of`]) instead of their rows: every write the service
/// makes to a user bumps `updated_at`; revocations (`tokens_valid_after`, `disabled`) and
/// roles are compared in their own right, so that a change made by hand shows too.
pub struct Freshness {
    pub id: Uuid,
    pub updated_at: NaiveDateTime,
    pub tokens_valid_after: Option<UnixMillis>,
    pub disabled: bool,
    /// The roles joined by commas, in no particular order; `None` for none.
    pub roles: Option<String>,
}

impl Freshness {
    /// Whether `account` is what this says the user's account is now.
    pub fn matches(&self, account: &Account) -> bool {
        if account.id != self.id
            || account.updated_at != self.updated_at
            || account.tokens_valid_after != self.tokens_valid_after
            || account.disabled != self.disabled
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
type FreshnessRow = (DbUuid, NaiveDateTime, Option<UnixMillis>, bool, Option<String>);

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
            email_verified: false,
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
    /// A new address is unverified unless this says otherwise.
    pub email_verified: Option<bool>,
    pub password_hash: Option<String>,
}

/// One page of accounts in username order, and the username to continue after.
pub struct Page {
    pub accounts: Vec<Account>,
    pub next: Option<String>,
}

/// The session ids `string_agg` joined, sorted; one that does not parse is none of ours.
fn ended_sessions(joined: Option<String>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> =
        joined.iter().flat_map(|j| j.split(',')).filter_map(|id| id.parse().ok()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

diesel::define_sql_function! {
    /// `string_agg(session_id, ',')` over revocations; see `models::string_agg`.
    #[aggregate]
    #[sql_name = "string_agg"]
    fn string_agg_sessions_of(value: diesel::sql_types::Nullable<diesel::sql_types::Text>, separator: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// The sessions of the `users` row at hand ended one by one, joined by commas: a
/// subquery, so that an account comes with them in one round trip.
#[diesel::dsl::auto_type]
fn joined_ended_sessions() -> _ {
    let separator: &'static str = ",";
    revocations::table
        .filter(revocations::user_id.eq(users::id))
        .filter(revocations::session_id.is_not_null())
        .select(string_agg_sessions_of(revocations::session_id, separator))
        .single_value()
}

/// An [`Account`] as read: its columns, roles and ended sessions joined.
type AccountRow = (AccountColumns, Option<String>, Option<String>);

/// The key of [`Account::start_session_on_row`]'s statement.
struct StartSessionOnRow;

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
    pub fn insert(conn: &mut WriteConn, new: NewAccount) -> Result<Account, DbError> {
        let id = new.user.id.0;
        Self::insert_batch(conn, std::slice::from_ref(&new))?;
        Self::find(conn, id)?.ok_or_else(|| DbError::Other("a created user vanished".into()))
    }

    /// Creates many accounts in one transaction: all of them, or none if any username is
    /// taken or anything else fails. For imports, batch by batch.
    pub fn insert_batch<'a>(
        conn: &mut WriteConn,
        batch: impl IntoIterator<Item = &'a NewAccount>,
    ) -> Result<(), DbError> {
        conn.transaction(|conn| {
            for new in batch {
                diesel::insert_into(users::table).values(&new.user).execute(conn.conn())?;
                insert_roles(conn, new.user.id, &new.roles)?;
            }
            Ok(())
        })
    }

    /// Inserts those of `batch` whose usernames are not taken yet, in one transaction, and
    /// answers the usernames left out (imports).
    pub fn insert_new(conn: &mut WriteConn, batch: &[NewAccount]) -> Result<HashSet<String>, DbError> {
        conn.transaction(|conn| {
            let names: Vec<&str> = batch.iter().map(|a| a.user.username.as_str()).collect();
            let present: HashSet<String> = users::table
                .filter(users::username.eq_any(&names))
                .select(users::username)
                .load::<String>(conn.conn())?
                .into_iter()
                .collect();
            let new: Vec<&NewAccount> =
                batch.iter().filter(|a| !present.contains(&a.user.username)).collect();
            Self::insert_batch(conn, new.iter().copied())?;
            Ok(present)
        })
    }

    /// The account with its ended sessions, as the user cache keeps it.
    pub fn find(conn: &mut DbConnection, id: Uuid) -> Result<Option<Account>, DbError> {
        let rows: Vec<AccountRow> = users::table
            .find(DbUuid(id))
            .select((AccountColumns::as_select(), joined_roles(), joined_ended_sessions()))
            .load(conn)?;
        Ok(rows.into_iter().next().map(Account::from_row))
    }

    fn from_row((columns, roles, ended): AccountRow) -> Self {
        let mut account = Account::from_columns(columns, split_roles(roles));
        account.ended_sessions = ended_sessions(ended);
        account
    }

    /// Starts the session `new` on the users row (`SESSIONS_PER_USER=1`) in one statement,
    /// if the row's password hash is still `verified` (the one a login checked), replacing
    /// it by `rehashed` (the same, or its argon2id re-hash), and answers the account as
    /// changed; `None` when the user is gone or its password changed since. The stamp is
    /// the row's own, never back ([`User::stamp`], here in SQL).
    ///
    /// The roles are subqueries of the statement, read in its snapshot. On PostgreSQL it
    /// runs in a REPEATABLE READ transaction, as a live rotation does
    /// ([`User::rotate_live_session`]): a revocation committed since the snapshot (a role
    /// taken away while this waited for the row) fails it, and the retry reads the roles
    /// that go with the row it writes.
    pub fn start_session_on_row(
        conn: &mut WriteConn,
        id: Uuid,
        new: &NewSession,
        verified: &str,
        rehashed: &str,
    ) -> Result<Option<Account>, DbError> {
        let update = || {
            let stamp = case_when(users::updated_at.gt(new.now), users::updated_at).otherwise(new.now);
            let row = users::table.find(DbUuid(id)).filter(users::password_hash.eq(verified));
            let update = diesel::update(row)
                .set((
                    SessionChange::start(new, new.now).unstamped(),
                    users::updated_at.eq(stamp),
                    users::password_hash.eq(rehashed),
                ))
                .returning((
                    <AccountColumns as Selectable<MultiBackend>>::construct_selection(),
                    joined_roles(),
                    joined_ended_sessions(),
                ));
            // Its columns are the same at every login, and so is its SQL.
            PreparedOnce::<_, StartSessionOnRow>::new(update)
        };
        let row: Option<AccountRow> = match conn.conn() {
            DbConnection::Sqlite(conn) => update().get_result(conn).optional()?,
            DbConnection::Postgres(conn) => {
                repeatable_read(conn, |conn| update().get_result(conn).optional())?
            }
        };
        Ok(row.map(Account::from_row))
    }

    pub fn find_by_username(conn: &mut DbConnection, username: &str) -> Result<Option<Account>, DbError> {
        let rows: Vec<(AccountColumns, Option<String>)> = users::table
            .filter(users::username.eq(username))
            .select((AccountColumns::as_select(), joined_roles()))
            .load(conn)?;
        Ok(rows.into_iter().next().map(|(columns, roles)| Account::from_columns(columns, split_roles(roles))))
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

    /// The accounts of these rows, with their roles, in their order.
    fn with_roles_of_all(
        conn: &mut DbConnection,
        users: Vec<AccountColumns>,
    ) -> Result<Vec<Account>, DbError> {
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
                Account::from_columns(user, roles)
            })
            .collect())
    }

    /// Up to `limit` accounts whose usernames sort after `after`. Keyset paging on the
    /// username's unique index: no rows are skipped or repeated when users are created or
    /// deleted between pages, and a page costs the same however deep it is.
    pub fn page(conn: &mut DbConnection, after: Option<&str>, limit: i64) -> Result<Page, DbError> {
        let mut query = users::table
            .order(users::username)
            .limit(limit + 1)
            .select(AccountColumns::as_select())
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(users::username.gt(after.to_owned()));
        }
        let mut users: Vec<AccountColumns> = query.load(conn)?;
        let more = users.len() as i64 > limit;
        users.truncate(limit as usize);
        let next = more.then(|| users.last().map(|u| u.username.clone())).flatten();
        Ok(Page { accounts: Self::with_roles_of_all(conn, users)?, next })
    }

    /// Applies an administrator's change. Removing a role revokes the access tokens issued
    /// so far (the next refresh yields tokens without it); disabling or a new password ends
    /// the session as well.
    pub fn update(
        conn: &mut WriteConn,
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
                    .execute(conn.conn())?;
            }
            if let Some(email) = change.email.as_ref().filter(|email| **email != current.user.email) {
                diesel::update(users::table.find(current.user.id))
                    .set((users::email.eq(email), users::email_verified.eq(false)))
                    .execute(conn.conn())?;
                // A link mailed to the old address, or to an address asked for, no longer
                // says what the account's address is.
                MailTokens::revoke(conn, id, Purpose::EmailVerify)?;
            }
            if let Some(verified) = change.email_verified {
                diesel::update(users::table.find(current.user.id))
                    .set(users::email_verified.eq(verified))
                    .execute(conn.conn())?;
            }
            if let Some(hash) = &change.password_hash {
                diesel::update(users::table.find(current.user.id))
                    .set(users::password_hash.eq(hash))
                    .execute(conn.conn())?;
            }
            revoke_tokens(conn, &current.user, now, revoke, end_session)
        })
    }

    /// Adds and removes roles (a role both added and removed ends up removed).
    pub fn change_roles(
        conn: &mut WriteConn,
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

    /// Removes the user's second factor and ends its sessions: whether the user exists.
    pub fn remove_mfa(conn: &mut WriteConn, id: Uuid, now: NaiveDateTime) -> Result<bool, DbError> {
        conn.transaction(|conn| {
            let Some(user) = User::lock(conn, id)? else { return Ok(false) };
            TotpFactor::remove(conn, &user, now)?;
            end_every_session_locked(conn, &user, now)?;
            Ok(true)
        })
    }

    /// Ends the session and revokes every access token issued so far.
    pub fn log_out(conn: &mut WriteConn, id: Uuid, now: NaiveDateTime) -> Result<bool, DbError> {
        Ok(end_every_session_if(conn, id, now, |_| true)?.is_some())
    }

    /// Deletes the user; its roles go with it (`ON DELETE CASCADE`); [`DbError::LastAdmin`]
    /// if it is the last enabled admin. Its tokens stay revoked in the revocation feed for
    /// `max_token_age_secs`, by a [`Tombstone`] written in the same transaction: services
    /// that check tokens themselves cannot ask whether the user still exists.
    pub fn delete(
        conn: &mut WriteConn,
        id: Uuid,
        now: NaiveDateTime,
        max_token_age_secs: i64,
    ) -> Result<bool, DbError> {
        conn.transaction(|conn| {
            let Some(user) = User::lock(conn, id)? else { return Ok(false) };
            let was_admin = enabled_admin(user.disabled, &roles_of(conn, id)?);
            let forget_before = UnixMillis(UnixMillis::of(now).0.saturating_sub(max_token_age_secs * 1000));
            let used = Session::end_all(conn, id)?;
            Tombstone::user(id, tokens_valid_after(now, &user, used)).keep(conn, forget_before)?;
            let deleted = diesel::delete(users::table.find(DbUuid(id))).execute(conn.conn())? == 1;
            keep_an_admin(conn, was_admin, false)?;
            Ok(deleted)
        })
    }
}

/// A row locked for a change, with the roles read after the lock.
struct Locked {
    user: User,
    roles: Vec<String>,
}

/// Runs `change` on the account in a transaction and returns the account as it is after.
/// The row is locked first ([`User::lock`]; on SQLite that takes the write lock at the
/// start, so that another process, a server beside the CLI, cannot write between this
/// transaction's reads and its writes and make the lock upgrade fail), and `change` gets
/// the account as locked, before any write: a revocation is computed from it
/// ([`tokens_valid_after`]).
fn write_transaction(
    conn: &mut WriteConn,
    id: Uuid,
    now: NaiveDateTime,
    change: impl FnOnce(&mut WriteConn, &Locked) -> Result<(), DbError>,
) -> Result<Option<Account>, DbError> {
    conn.transaction(|conn| {
        let Some(user) = User::lock(conn, id)? else { return Ok(None) };
        // Read after the lock: the roles that go with the row.
        let current = Locked { roles: roles_of(conn, id)?, user };
        change(conn, &current)?;
        let stamp = current.user.stamp(now);
        diesel::update(users::table.find(DbUuid(id)))
            .set(users::updated_at.eq(stamp))
            .execute(conn.conn())?;
        let after = Account::find(conn, id)?;
        let is_admin = after.as_ref().is_some_and(|after| enabled_admin(after.disabled, &after.roles));
        keep_an_admin(conn, enabled_admin(current.user.disabled, &current.roles), is_admin)?;
        Ok(after)
    })
}

/// Whether an account of these may use the admin API.
fn enabled_admin(disabled: bool, roles: &[String]) -> bool {
    !disabled && roles.iter().any(|role| role == ADMIN_ROLE)
}

/// Refuses (with [`DbError::LastAdmin`], which rolls the transaction back) a change that
/// took a user's admin rights away (it `was_admin`, enabled, and `is_admin` no longer, or
/// is deleted) when no other enabled admin remains: nobody could use the admin API any
/// more, nor give the rights back but through the CLI. Runs in the change's transaction,
/// after the change.
///
/// Two such changes at once (two admins demoting each other) must not both count the
/// other as the admin that remains. SQLite runs one write transaction at a time, and this
/// one holds the lock since its first write. On PostgreSQL each statement reads what was
/// committed when it started, so the count waits for a lock that such changes share, held
/// to the commit: the second one counts after the first one committed. Only changes that
/// took an admin's rights away take it, after the row locks of their own user; holding
/// it, they touch only that user's rows, which no transaction waiting for it holds (one
/// changing the same user waits for the row instead), so it cannot deadlock.
fn keep_an_admin(conn: &mut WriteConn, was_admin: bool, is_admin: bool) -> Result<(), DbError> {
    if !was_admin || is_admin {
        return Ok(());
    }
    if let DbConnection::Postgres(conn) = conn.conn() {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({ADMINS_LOCK_ID})"))?;
    }
    let remaining = users::table
        .inner_join(user_roles::table)
        .filter(user_roles::role.eq(ADMIN_ROLE))
        .filter(users::disabled.eq(false))
        .select(users::id)
        .first::<DbUuid>(conn.conn())
        .optional()?;
    match remaining {
        Some(_) => Ok(()),
        None => Err(DbError::LastAdmin),
    }
}

/// One statement a row: diesel's `MultiConnection` has no multi-row `INSERT`.
fn insert_roles(conn: &mut WriteConn, id: DbUuid, roles: &[String]) -> QueryResult<()> {
    for role in roles {
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(id), user_roles::role.eq(role)))
            .execute(conn.conn())?;
    }
    Ok(())
}

/// Makes `roles` the account's set; returns whether any role was taken away.
fn replace_roles(conn: &mut WriteConn, current: &Locked, roles: &[String]) -> QueryResult<bool> {
    let id = current.user.id;
    diesel::delete(user_roles::table.filter(user_roles::user_id.eq(id))).execute(conn.conn())?;
    insert_roles(conn, id, roles)?;
    Ok(current.roles.iter().any(|role| !roles.contains(role)))
}

/// Revokes the access tokens issued so far (`revoke`), and with `end_session` the refresh
/// token too; `user` is the row as locked.
fn revoke_tokens(
    conn: &mut WriteConn,
    user: &User,
    now: NaiveDateTime,
    revoke: bool,
    end_session: bool,
) -> Result<(), DbError> {
    if end_session {
        end_every_session_locked(conn, user, now)?;
    } else if revoke {
        let valid_after = tokens_valid_after(now, user, Session::touch_all(conn, user.id.0)?);
        diesel::update(users::table.find(user.id))
            .set(users::tokens_valid_after.eq(valid_after))
            .execute(conn.conn())?;
    }
    Ok(())
}

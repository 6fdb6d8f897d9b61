//! [`Accounts`]: what administrators do to accounts, through the admin API or the CLI
//! alike: create, change, delete, force a logout, import. Input is validated here, with
//! the shared rules, whichever way a change arrives.
//!
//! Every method that changes a stored account evicts the user's cached account itself,
//! right after its write, so that a revocation it made (a role taken away, disabled,
//! deleted, logged out) takes effect on the next request, and no caller can forget it.

use std::collections::HashSet;
use std::sync::Arc;

use secrecy::SecretString;
use uuid::Uuid;

use super::error::{Error, Result};
use super::password::{NO_PASSWORD, Passwords, normalize};
use super::rules::{parse_roles, validate_email, validate_username};
use super::user_cache::UserCache;
use crate::clock::Clock;
use crate::db::accounts::{Account, AccountChange, NewAccount, Page};
use crate::db::sessions::{SessionInfo, SessionStore};
use crate::db::{DbError, Pool};

/// Who changes an account: the audit line of each change names them.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    /// An administrator, through the admin API.
    Admin(Uuid),
    /// An operator at the command line.
    Operator,
}

impl Actor {
    /// The audit line of an action: who did what to whom, never a secret.
    fn log(self, action: &str, target: Uuid) {
        match self {
            Actor::Admin(admin) => log::info!("admin {action} admin_id={admin} target_id={target}"),
            // The command prints what it did; its stderr stays for errors.
            Actor::Operator => log::debug!("operator {action} target_id={target}"),
        }
    }
}

/// An account to create. Without a password it cannot log in until one is set; without
/// roles it gets `DEFAULT_ROLES`.
pub struct Creation {
    pub username: String,
    pub password: Option<SecretString>,
    pub email: Option<String>,
    pub roles: Option<Vec<String>>,
}

/// A change to an account; `None` leaves a part as it is.
#[derive(Default)]
pub struct Update {
    /// `Some(None)` removes the address.
    pub email: Option<Option<String>>,
    /// The complete new set.
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
    pub email_verified: Option<bool>,
    pub password: Option<SecretString>,
}

/// Built once at start-up (`startup`); the fields are the crate's, for that.
pub struct Accounts {
    pub(crate) pool: Pool,
    pub(crate) clock: Clock,
    pub(crate) passwords: Arc<Passwords>,
    pub(crate) users: Arc<UserCache>,
    /// The roles of an account created without any (`DEFAULT_ROLES`).
    pub(crate) default_roles: Vec<String>,
    /// How long a deleted user stays in the revocation feed: as long as a token it was
    /// issued may live (`tokens::max_token_age_secs`).
    pub(crate) max_token_age_secs: i64,
    /// Where the sessions live (`SESSIONS_PER_USER`).
    pub(crate) sessions: SessionStore,
}

impl Accounts {
    /// Up to `limit` accounts whose usernames sort after `after`, and where the next page
    /// starts.
    pub async fn page(&self, after: Option<String>, limit: i64) -> Result<Page> {
        Ok(self.pool.read(move |conn| Account::page(conn, after.as_deref(), limit)).await?)
    }

    pub async fn find(&self, id: Uuid) -> Result<Account> {
        self.pool.read(move |conn| Account::find(conn, id)).await?.ok_or(Error::NotFound)
    }

    /// Usernames are stored lower-case; this, like login, accepts any case.
    pub async fn find_by_username(&self, username: &str) -> Result<Account> {
        let username = username.to_ascii_lowercase();
        self.pool.read(move |conn| Account::find_by_username(conn, &username)).await?.ok_or(Error::NotFound)
    }

    /// Creates an account with exactly the roles given, else `DEFAULT_ROLES`.
    pub async fn create(&self, actor: Actor, new: Creation) -> Result<Account> {
        let username = validate_username(&new.username)?;
        let email = validate_email(new.email.as_deref())?;
        let roles = match &new.roles {
            Some(given) => roles(given)?,
            None => self.default_roles.clone(),
        };
        let password_hash = match new.password {
            Some(password) => self.hash(&password).await?,
            None => NO_PASSWORD.to_owned(),
        };
        let now = self.clock.now().naive_utc();
        let new = NewAccount::new(username, email, password_hash, roles, now);
        let account = self.pool.write(move |conn| Account::insert(conn, new)).await?;
        actor.log("create", account.id);
        Ok(account)
    }

    /// Changes an account; removing a role or disabling revokes its tokens, and disabling
    /// or a new password ends its session.
    pub async fn update(&self, actor: Actor, id: Uuid, update: Update) -> Result<Account> {
        let change = AccountChange {
            email: update.email.map(|email| validate_email(email.as_deref())).transpose()?,
            roles: update.roles.as_deref().map(roles).transpose()?,
            disabled: update.disabled,
            email_verified: update.email_verified,
            password_hash: match &update.password {
                Some(password) => Some(self.hash(password).await?),
                None => None,
            },
        };
        let now = self.clock.now().naive_utc();
        let account = self.pool.write(move |conn| Account::update(conn, id, change, now)).await?;
        let account = account.ok_or(Error::NotFound)?;
        self.changed(actor, "update", id);
        Ok(account)
    }

    /// Adds and removes roles (a role both added and removed ends up removed); removing
    /// one revokes the account's tokens.
    pub async fn change_roles(
        &self,
        actor: Actor,
        id: Uuid,
        add: &[String],
        remove: &[String],
    ) -> Result<Account> {
        let (add, remove) = (roles(add)?, roles(remove)?);
        let now = self.clock.now().naive_utc();
        let account =
            self.pool.write(move |conn| Account::change_roles(conn, id, &add, &remove, now)).await?;
        let account = account.ok_or(Error::NotFound)?;
        self.changed(actor, "roles", id);
        Ok(account)
    }

    /// Deletes an account; its roles go with it, and the revocation feed keeps it until its
    /// tokens have expired.
    pub async fn delete(&self, actor: Actor, id: Uuid) -> Result<()> {
        let (now, keep_secs) = (self.clock.now().naive_utc(), self.max_token_age_secs);
        if !self.pool.write(move |conn| Account::delete(conn, id, now, keep_secs)).await? {
            return Err(Error::NotFound);
        }
        self.changed(actor, "delete", id);
        Ok(())
    }

    /// Ends the account's session and revokes every access token issued so far.
    pub async fn log_out(&self, actor: Actor, id: Uuid) -> Result<()> {
        let now = self.clock.now().naive_utc();
        if !self.pool.write(move |conn| Account::log_out(conn, id, now)).await? {
            return Err(Error::NotFound);
        }
        self.changed(actor, "logout", id);
        Ok(())
    }

    /// Removes the account's second factor (lost with its phone) and ends its sessions;
    /// [`Error::NotFound`] without such a user. An account without one is left as it is.
    pub async fn remove_mfa(&self, actor: Actor, id: Uuid) -> Result<()> {
        let now = self.clock.now().naive_utc();
        if !self.pool.write(move |conn| Account::remove_mfa(conn, id, now)).await? {
            return Err(Error::NotFound);
        }
        self.changed(actor, "mfa removed", id);
        Ok(())
    }

    /// Writes a batch of imported accounts in one transaction, leaving out the usernames
    /// already present, which it answers. A username taken
    /// between the check and the insert (a signup meanwhile) fails the transaction, and
    /// the next attempt's check sees it.
    pub async fn import_batch(&self, batch: Arc<Vec<NewAccount>>) -> Result<HashSet<String>> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        loop {
            let accounts = batch.clone();
            match self.pool.write(move |conn| Account::insert_new(conn, &accounts)).await {
                Ok(written) => return Ok(written),
                Err(DbError::UniqueViolation | DbError::Unavailable(_)) if attempt < ATTEMPTS => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The hash of a new password, after the password rules.
    async fn hash(&self, password: &SecretString) -> Result<String> {
        Ok(self.passwords.hash(normalize(password)?).await?)
    }

    /// After a write to a stored account: its cached entry goes at once, then the audit
    /// line.
    /// The user's live sessions, most recently used first.
    pub async fn sessions(&self, id: Uuid) -> Result<Vec<SessionInfo>> {
        let now = self.clock.now().naive_utc();
        let store = self.sessions;
        self.pool.read(move |conn| store.list(conn, id, now)).await?.ok_or(Error::NotFound)
    }

    /// Ends one session of the user; its access tokens are refused from now on.
    pub async fn end_session(&self, actor: Actor, id: Uuid, session_id: Uuid) -> Result<()> {
        let now = self.clock.now().naive_utc();
        let store = self.sessions;
        if !self.pool.write(move |conn| store.end(conn, id, session_id, now)).await? {
            return Err(Error::NotFound);
        }
        self.changed(actor, "session ended", id);
        Ok(())
    }

    fn changed(&self, actor: Actor, action: &str, target: Uuid) {
        self.users.evict(target);
        actor.log(action, target);
    }
}

fn roles(raw: &[String]) -> Result<Vec<String>> {
    parse_roles(raw).map_err(|e| Error::Validation(format!("roles: {e}")))
}

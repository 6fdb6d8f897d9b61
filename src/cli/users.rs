//! `tollgate user …`: account management on the configured database, through the same
//! `db::accounts` as the admin API. Each command is one transaction, so it is safe beside
//! running servers; they see the change within their user cache's TTL (a second).

use std::io::{BufRead, IsTerminal, Read};

use chrono::{NaiveDateTime, Utc};
use clap::Subcommand;
use secrecy::SecretString;
use uuid::Uuid;

use super::CliError;
use crate::auth::password::{Memory, PasswordHasherConfig, normalize};
use crate::auth::rules::{parse_roles, validate_email, validate_username};
use crate::config::Settings;
use crate::db::accounts::{Account, AccountChange, NewAccount};
use crate::db::{DbConnection, DbError, Pool};
use crate::http::routes::admin::AdminUserView;
use crate::import::{ImportOptions, import, read_groups};
use crate::startup::{StartupError, migrate};

/// Accounts read at once while listing.
const LIST_BATCH: i64 = 100;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user
    ///
    /// The password is read from standard input (one line) when it is not a terminal, else
    /// prompted for twice; never from the command line.
    Create {
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// A role to give (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// List every user, one a line
    List {
        /// One JSON object a line: id, username, email, roles, disabled, created_at
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: no login or refresh, and its tokens are revoked at once
    Disable { username: String },
    /// Enable a disabled user again
    Enable { username: String },
    /// Delete a user and its roles
    Delete { username: String },
    /// Set a user's password (read like `create`'s) and end its sessions
    SetPassword { username: String },
    /// Import users from Django's `manage.py dumpdata <app>.<UserModel>` JSON
    ///
    /// Passwords keep their Django hash until the first login replaces it with argon2id.
    /// Users already present are skipped, so running it again changes nothing. Prints
    /// `imported N, skipped M, rejected K`, then one line per rejected record, then one
    /// per group not granted (only is_staff and is_superuser give `staff` and `admin`).
    Import {
        /// The dump, or `-` for standard input
        file: String,
        /// The field holding the login name (e.g. `email` for a custom user model)
        #[arg(long, value_name = "NAME", default_value = "username")]
        username_field: String,
        /// `dumpdata auth.group` output, for dumps whose groups are numeric ids
        #[arg(long, value_name = "FILE")]
        groups: Option<String>,
    },
    /// Print a user's roles, one a line, after adding and removing any given
    Roles {
        username: String,
        /// A role to add (repeatable)
        #[arg(long, value_name = "ROLE")]
        add: Vec<String>,
        /// A role to remove (repeatable); tokens carrying it are revoked
        #[arg(long, value_name = "ROLE")]
        remove: Vec<String>,
    },
}

pub fn run(command: UserCommand, settings: &Settings) -> Result<(), CliError> {
    let (pool, _) = migrate(settings)?;
    let now = Utc::now().naive_utc();
    match command {
        UserCommand::Create { username, email, roles } => {
            let username = validate_username(&username).map_err(refused)?;
            let email = validate_email(email.as_deref()).map_err(refused)?;
            let roles = parse_roles(&roles).map_err(refused)?;
            let password_hash = hash(settings, read_password()?)?;
            let new = NewAccount::new(username, email, password_hash, roles, now);
            let account = with_conn(&pool, |conn| Ok(Account::insert(conn, new)?))?;
            println!("created {} ({})", account.user.username, account.user.id.0);
        }
        UserCommand::List { json } => list(&pool, json)?,
        UserCommand::Disable { username } => {
            change(&pool, &username, AccountChange { disabled: Some(true), ..Default::default() }, now)?;
            println!("disabled {username}");
        }
        UserCommand::Enable { username } => {
            change(&pool, &username, AccountChange { disabled: Some(false), ..Default::default() }, now)?;
            println!("enabled {username}");
        }
        UserCommand::Delete { username } => {
            with_conn(&pool, |conn| {
                let id = id_of(conn, &username)?;
                Account::delete(conn, id)?.then_some(()).ok_or(UNKNOWN_USER)
            })?;
            println!("deleted {username}");
        }
        UserCommand::SetPassword { username } => {
            let password_hash = Some(hash(settings, read_password()?)?);
            change(&pool, &username, AccountChange { password_hash, ..Default::default() }, now)?;
            println!("password set for {username}");
        }
        UserCommand::Import { file, username_field, groups } => {
            let groups = groups.map(|path| read_groups(open(&path)?).map_err(refused)).transpose()?;
            let options = ImportOptions { username_field, groups, now };
            let input = open(&file)?;
            let (report, result) = with_conn(&pool, |conn| Ok(import(conn, input, &options)))?;
            println!("{report}");
            result.map_err(refused)?;
        }
        UserCommand::Roles { username, add, remove } => {
            let add = parse_roles(&add).map_err(refused)?;
            let remove = parse_roles(&remove).map_err(refused)?;
            let account = with_conn(&pool, |conn| {
                let id = id_of(conn, &username)?;
                Account::change_roles(conn, id, &add, &remove, now)?.ok_or(UNKNOWN_USER)
            })?;
            account.roles.iter().for_each(|role| println!("{role}"));
        }
    }
    Ok(())
}

/// A file to read, `-` for standard input.
fn open(path: &str) -> Result<Box<dyn Read>, CliError> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path).map_err(|e| CliError::Refused(format!("{path}: {e}")))?;
    Ok(Box::new(file))
}

fn refused(e: impl std::fmt::Display) -> CliError {
    CliError::Refused(e.to_string())
}

/// Why account work did not happen: the user is not there, or the database said no.
enum Failure {
    UnknownUser,
    Db(DbError),
}

const UNKNOWN_USER: Failure = Failure::UnknownUser;

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Db(e)
    }
}

/// Runs account work on one pooled connection, turning its errors into the CLI's.
fn with_conn<T>(
    pool: &Pool,
    work: impl FnOnce(&mut DbConnection) -> Result<T, Failure>,
) -> Result<T, CliError> {
    let mut conn = pool.get().map_err(|e| StartupError::Database(e.to_string()))?;
    work(&mut conn).map_err(|e| match e {
        Failure::UnknownUser => CliError::Refused("no such user".into()),
        // `users.username` is the only unique column a command can collide on.
        Failure::Db(DbError::UniqueViolation) => CliError::Refused("username is already taken".into()),
        Failure::Db(DbError::LastAdmin) => {
            CliError::Refused("this would leave no enabled admin: make another user an admin first".into())
        }
        Failure::Db(e) => StartupError::Database(e.to_string()).into(),
    })
}

/// Usernames are stored lower-case; the CLI, like login, accepts any case.
fn id_of(conn: &mut DbConnection, username: &str) -> Result<Uuid, Failure> {
    let account = Account::find_by_username(conn, &username.to_ascii_lowercase())?;
    Ok(account.ok_or(UNKNOWN_USER)?.user.id.0)
}

fn change(pool: &Pool, username: &str, change: AccountChange, now: NaiveDateTime) -> Result<(), CliError> {
    with_conn(pool, |conn| {
        let id = id_of(conn, username)?;
        Account::update(conn, id, change, now)?.ok_or(UNKNOWN_USER)
    })
    .map(drop)
}

fn list(pool: &Pool, json: bool) -> Result<(), CliError> {
    let mut after = None;
    loop {
        let page = with_conn(pool, |conn| Ok(Account::page(conn, after.as_deref(), LIST_BATCH)?))?;
        for account in &page.accounts {
            if json {
                let line = serde_json::to_string(&AdminUserView::from(account)).map_err(refused)?;
                println!("{line}");
            } else {
                let user = &account.user;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    user.username,
                    user.id.0,
                    user.email.as_deref().unwrap_or("-"),
                    if account.roles.is_empty() { "-".into() } else { account.roles.join(",") },
                    if user.disabled { "disabled" } else { "enabled" },
                    user.created_at.and_utc().format("%Y-%m-%dT%H:%M:%SZ"),
                );
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// The new password: one line of standard input when it is not a terminal (scripts),
/// else typed twice without echo.
fn read_password() -> Result<SecretString, CliError> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(refused)?;
        let second = rpassword::prompt_password("Repeat password: ").map_err(refused)?;
        if first != second {
            return Err(CliError::Refused("the passwords do not match".into()));
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(refused)?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        password.strip_suffix('\r').unwrap_or(password).to_owned()
    };
    normalize(&SecretString::from(password)).map_err(refused)
}

fn hash(settings: &Settings, password: SecretString) -> Result<String, CliError> {
    let hasher = PasswordHasherConfig::new(&settings.argon2).map_err(refused)?;
    hasher.hash(&password, &mut Memory::new()).map_err(|e| refused(format!("argon2: {e}")))
}

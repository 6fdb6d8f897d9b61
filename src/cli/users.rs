//! `tollgate user …`: account management on the configured database, through the same
//! core service as the admin API (`Accounts`). Each command is one transaction, so it is
//! safe beside running servers; they see the change within their user cache's TTL (a
//! second).

use std::io::{BufRead, IsTerminal, Read};
use std::sync::Arc;

use chrono::Utc;
use clap::Subcommand;
use secrecy::SecretString;

use super::CliError;
use crate::auth::Error;
use crate::auth::accounts::{Accounts, Actor, Creation, Update};
use crate::auth::views::{AdminUserView, rfc3339};
use crate::config::Settings;
use crate::db::DbError;
use crate::import::{ImportOptions, import, read_groups};
use crate::startup::{StartupError, accounts, migrate};

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
    /// Remove a user's second factor (a lost phone) and end its sessions
    MfaReset { username: String },
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
        /// Mark the imported addresses verified (Django or allauth verified them already)
        #[arg(long)]
        emails_verified: bool,
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
    let accounts = accounts(settings, pool)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| refused(format!("cannot start: {e}")))?;
    let actor = Actor::Operator;
    match command {
        UserCommand::Create { username, email, roles } => {
            let creation = Creation { username, password: Some(read_password()?), email, roles: Some(roles) };
            let account = runtime.block_on(accounts.create(actor, creation)).map_err(cli_error)?;
            println!("created {} ({})", account.username, account.id);
        }
        UserCommand::List { json } => runtime.block_on(list(&accounts, json))?,
        UserCommand::Disable { username } => {
            let update = Update { disabled: Some(true), ..Default::default() };
            runtime.block_on(change(&accounts, &username, update))?;
            println!("disabled {username}");
        }
        UserCommand::Enable { username } => {
            let update = Update { disabled: Some(false), ..Default::default() };
            runtime.block_on(change(&accounts, &username, update))?;
            println!("enabled {username}");
        }
        UserCommand::Delete { username } => {
            runtime
                .block_on(async {
                    let id = accounts.find_by_username(&username).await?.id;
                    accounts.delete(actor, id).await
                })
                .map_err(cli_error)?;
            println!("deleted {username}");
        }
        UserCommand::MfaReset { username } => {
            runtime
                .block_on(async {
                    let id = accounts.find_by_username(&username).await?.id;
                    accounts.remove_mfa(actor, id).await
                })
                .map_err(cli_error)?;
            println!("second factor removed for {username}, its sessions ended");
        }
        UserCommand::SetPassword { username } => {
            let update = Update { password: Some(read_password()?), ..Default::default() };
            runtime.block_on(change(&accounts, &username, update))?;
            println!("password set for {username}");
        }
        UserCommand::Import { file, username_field, groups, emails_verified } => {
            let groups = groups.map(|path| read_groups(open(&path)?).map_err(refused)).transpose()?;
            let options =
                ImportOptions { username_field, groups, emails_verified, now: Utc::now().naive_utc() };
            let mut write =
                |batch| runtime.block_on(accounts.import_batch(Arc::new(batch))).map_err(db_error);
            let (report, result) = import(open(&file)?, &options, &mut write);
            println!("{report}");
            result.map_err(refused)?;
        }
        UserCommand::Roles { username, add, remove } => {
            let account = runtime
                .block_on(async {
                    let id = accounts.find_by_username(&username).await?.id;
                    accounts.change_roles(actor, id, &add, &remove).await
                })
                .map_err(cli_error)?;
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

/// The core's refusals in the CLI's words; a database that fails is a start-up error.
fn cli_error(e: Error) -> CliError {
    match e {
        Error::NotFound => CliError::Refused("no such user".into()),
        Error::Unavailable(cause) | Error::Internal(cause) => StartupError::Database(cause).into(),
        other => refused(other),
    }
}

/// The core's error back in the import's terms (a batch that could not be written).
fn db_error(e: Error) -> DbError {
    match e {
        Error::Unavailable(cause) => DbError::Unavailable(cause),
        other => DbError::Other(other.to_string()),
    }
}

/// Changes the account of `username` (any case, like login).
async fn change(accounts: &Accounts, username: &str, update: Update) -> Result<(), CliError> {
    let id = accounts.find_by_username(username).await.map_err(cli_error)?.id;
    accounts.update(Actor::Operator, id, update).await.map_err(cli_error).map(drop)
}

async fn list(accounts: &Accounts, json: bool) -> Result<(), CliError> {
    let mut after = None;
    loop {
        let page = accounts.page(after.take(), LIST_BATCH).await.map_err(cli_error)?;
        for account in &page.accounts {
            if json {
                let line = serde_json::to_string(&AdminUserView::from(account)).map_err(refused)?;
                println!("{line}");
            } else {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    account.username,
                    account.id,
                    account.email.as_deref().unwrap_or("-"),
                    if account.roles.is_empty() { "-".into() } else { account.roles.join(",") },
                    if account.disabled { "disabled" } else { "enabled" },
                    rfc3339(account.created_at),
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
/// else typed twice without echo. The core applies the password rules.
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
    Ok(SecretString::from(password))
}

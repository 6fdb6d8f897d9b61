//! The command line: `serve` (the default), `migrate`, `keys …`, `user …` and `mail test`.
//!
//! Exit codes: 0 done; 1 refused or failed, with one line on standard error; 2 for a
//! usage error (clap's own).

mod keys;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::logging;
use crate::startup::{Application, StartupError, migrate};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A stateless JWT authentication service",
    after_help = "Configuration comes from environment variables (and .env); see README.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default)
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Show or rotate the signing keys in JWT_KEYS_DIR
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage accounts in the configured database (safe while servers run)
    #[command(subcommand)]
    User(users::UserCommand),
    /// Mail (SMTP_URL, MAIL_FROM)
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send one test mail to ADDRESS now; exits non-zero with the SMTP error if it cannot
    Test { address: String },
}

/// Why a command did not succeed: the one line printed on standard error.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// Input or a target the command refuses (unknown user, invalid role…).
    #[error("{0}")]
    Refused(String),
}

/// Parses the arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Migrate => settings().and_then(|settings| {
            let (_, applied) = migrate(&settings)?;
            println!("applied {applied} migration(s)");
            Ok(())
        }),
        Command::Keys(command) => settings().and_then(|settings| keys::run(command, &settings)),
        Command::User(command) => settings().and_then(|settings| users::run(command, &settings)),
        Command::Mail(MailCommand::Test { address }) => {
            settings().and_then(|settings| mail_test(&settings, &address))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The settings, and the logger they configure: every command logs only after both.
fn settings() -> Result<Settings, CliError> {
    let settings = Settings::from_env().map_err(StartupError::from)?;
    logging::init(settings.log.format);
    Ok(settings)
}

fn mail_test(settings: &Settings, address: &str) -> Result<(), CliError> {
    let address = crate::auth::rules::validate_email(Some(address))
        .map_err(|e| CliError::Refused(e.0))?
        .unwrap_or_default();
    // A test mail carries no token: any secret will do.
    let secret = secrecy::SecretSlice::from(vec![0u8; 32]);
    let mailer = crate::mail::Mailer::new(&settings.mail, &secret)
        .map_err(StartupError::Mail)?
        .ok_or_else(|| CliError::Refused("mail is off: set SMTP_URL and MAIL_FROM".into()))?;
    let letter = crate::mail::Letter {
        template: crate::mail::Template::Test,
        to: address.clone(),
        username: String::new(),
        nonce: None,
        new_email: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Refused(format!("runtime: {e}")))?;
    runtime.block_on(mailer.send(&letter)).map_err(|e| CliError::Refused(format!("mail not sent: {e}")))?;
    println!("sent a test mail to {address}");
    Ok(())
}

fn serve() -> Result<(), CliError> {
    let settings = settings()?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        Ok(app.run_until_stopped().await.map_err(StartupError::from)?)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passwords_never_come_from_argv() {
        let command = Cli::command();
        let user = command.find_subcommand("user").unwrap();
        for name in ["create", "set-password"] {
            let args: Vec<_> =
                user.find_subcommand(name).unwrap().get_arguments().map(|a| a.get_id()).collect();
            assert!(!args.iter().any(|id| id.as_str().contains("password")), "{name}: {args:?}");
        }
    }
}

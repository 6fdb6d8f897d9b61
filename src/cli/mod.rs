//! The command line: `serve` (the default), `migrate`, `keys …` and `user …`.
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

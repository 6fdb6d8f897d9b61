use std::process::ExitCode;

use tollgate::config::Settings;
use tollgate::startup::{Application, StartupError, migrate};

const USAGE: &str = "usage: tollgate [serve|migrate]\n\
    serve    run the HTTP server (the default)\n\
    migrate  apply pending database migrations and exit\n\
    Configuration comes from environment variables; see README.md.";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        None | Some("serve") => serve(),
        Some("migrate") => Settings::from_env()
            .map_err(StartupError::from)
            .and_then(|settings| {
                let (_, applied) = migrate(&settings)?;
                println!("applied {applied} migration(s)");
                Ok(())
            }),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("tollgate: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
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

fn serve() -> Result<(), StartupError> {
    let settings = Settings::from_env()?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        app.run_until_stopped()
            .await
            .map_err(|e| StartupError::Database(format!("server: {e}")))
    })
}

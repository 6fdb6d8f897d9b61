use std::process::ExitCode;

use chrono::DateTime;
use tollgate::auth::keys::{KeyInfo, KeyStore, algorithm_name};
use tollgate::clock::Clock;
use tollgate::config::Settings;
use tollgate::startup::{Application, StartupError, migrate};

const USAGE: &str = "usage: tollgate [serve | migrate | keys list | keys rotate]\n\
    serve        run the HTTP server (the default)\n\
    migrate      apply pending database migrations and exit\n\
    keys list    show the signing keys in JWT_KEYS_DIR and their states\n\
    keys rotate  add a key that is published now and signs after JWT_KEY_PUBLISH_AHEAD_SECS\n\
    Configuration comes from environment variables; see README.md.";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] | ["serve"] => serve(),
        ["migrate"] => settings().and_then(|settings| {
            let (_, applied) = migrate(&settings)?;
            println!("applied {applied} migration(s)");
            Ok(())
        }),
        ["keys", "list"] => keys().and_then(|(store, _)| {
            let keys = store.list()?;
            println!("{:<44} {:<6} {:<10} {:<22} CREATED", "KID", "ALG", "STATE", "SIGNS FROM");
            keys.iter().for_each(print_key);
            Ok(())
        }),
        ["keys", "rotate"] => keys().and_then(|(store, settings)| {
            let key = store.rotate(settings.jwt.key_publish_ahead_secs)?;
            println!(
                "published {} ({}); it signs from {}",
                key.kid,
                algorithm_name(key.algorithm),
                time(key.activate_at)
            );
            Ok(())
        }),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("tollgate: unknown command {:?}\n{USAGE}", args.join(" "));
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

fn settings() -> Result<Settings, StartupError> {
    Ok(Settings::from_env()?)
}

fn keys() -> Result<(KeyStore, Settings), StartupError> {
    let settings = settings()?;
    Ok((KeyStore::open(&settings.jwt, Clock::system())?, settings))
}

fn time(unix: i64) -> String {
    match unix {
        0 => "first key".into(),
        t => DateTime::from_timestamp(t, 0)
            .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    }
}

fn print_key(key: &KeyInfo) {
    println!(
        "{:<44} {:<6} {:<10} {:<22} {}",
        key.kid,
        algorithm_name(key.algorithm),
        key.state.as_str(),
        time(key.activate_at),
        time(key.created_at),
    );
}

fn serve() -> Result<(), StartupError> {
    let settings = settings()?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        Ok(app.run_until_stopped().await?)
    })
}

//! `tollgate keys list|rotate`: the key store in `JWT_KEYS_DIR`.

use chrono::DateTime;
use clap::Subcommand;

use super::CliError;
use crate::auth::keys::{KeyInfo, KeyStore, algorithm_name};
use crate::clock::Clock;
use crate::config::Settings;
use crate::startup::StartupError;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Show the signing keys and their states
    List,
    /// Add a key that is published now and signs after JWT_KEY_PUBLISH_AHEAD_SECS
    Rotate,
}

pub fn run(command: KeysCommand, settings: &Settings) -> Result<(), CliError> {
    let store = KeyStore::open(&settings.jwt, Clock::system()).map_err(StartupError::from)?;
    match command {
        KeysCommand::List => {
            let keys = store.list().map_err(StartupError::from)?;
            println!("{:<44} {:<6} {:<10} {:<22} CREATED", "KID", "ALG", "STATE", "SIGNS FROM");
            keys.iter().for_each(print_key);
        }
        KeysCommand::Rotate => {
            let key = store.rotate(settings.jwt.key_publish_ahead_secs).map_err(StartupError::from)?;
            println!(
                "published {} ({}); it signs from {}",
                key.kid,
                algorithm_name(key.algorithm),
                time(key.activate_at)
            );
        }
    }
    Ok(())
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

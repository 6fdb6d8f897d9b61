//! Prints how long one argon2id verification takes at the configured cost (by default the
//! contract's: m=19456 KiB, t=2, p=1), the figure scripts/load.sh derives the login
//! throughput bound from. `cargo run --release --example argon2_cost`

use std::time::Instant;

use secrecy::SecretString;
use tollgate::auth::password::{Memory, PasswordHasherConfig};
use tollgate::config::Settings;

fn main() {
    let settings = Settings::from_env().expect("valid configuration");
    let hasher = PasswordHasherConfig::new(&settings.argon2).expect("valid argon2 cost");
    let password = SecretString::from("correct horse battery staple");
    let memory = &mut Memory::new();
    let hash = hasher.hash(&password, memory).expect("hashing works");
    hasher.verify(&password, Some(&hash), memory);
    const RUNS: u32 = 20;
    let start = Instant::now();
    for _ in 0..RUNS {
        assert!(hasher.verify(&password, Some(&hash), memory));
    }
    println!("{:.3}", start.elapsed().as_secs_f64() * 1000.0 / f64::from(RUNS));
}

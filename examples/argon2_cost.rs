//! Prints the cost of argon2id verification at the configured cost (by default the
//! contract's: m=19456 KiB, t=2, p=1), from which scripts/load.sh derives the login
//! throughput bound: one verification's time in ms, then how many verifications per second
//! all cores achieve together (on machines whose cores share memory bandwidth, less than
//! cores ÷ time). `cargo run --release --example argon2_cost`

use std::time::Instant;

use secrecy::SecretString;
use tollgate::auth::password::{Memory, PasswordHasherConfig};
use tollgate::config::Settings;

const RUNS: u32 = 20;

fn main() {
    let settings = Settings::from_env().expect("valid configuration");
    let hasher = PasswordHasherConfig::new(&settings.argon2).expect("valid argon2 cost");
    let password = SecretString::from("correct horse battery staple");
    let hash = hasher.hash(&password, &mut Memory::new()).expect("hashing works");
    let verify_all = |runs: u32| {
        let memory = &mut Memory::new();
        hasher.verify(&password, Some(&hash), memory);
        for _ in 0..runs {
            assert!(hasher.verify(&password, Some(&hash), memory).matches());
        }
    };

    let start = Instant::now();
    verify_all(RUNS);
    let single_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(RUNS);

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| verify_all(RUNS));
        }
    });
    let parallel_per_sec = f64::from(RUNS) * cores as f64 / start.elapsed().as_secs_f64();
    println!("{single_ms:.3} {parallel_per_sec:.1}");
}

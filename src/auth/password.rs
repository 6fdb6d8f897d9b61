//! Password rules and argon2id hashing.
//!
//! Hashing costs ~19 MiB and tens of milliseconds, so callers run it on the blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use crate::config::Argon2Settings;
use crate::error::ApiError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Raw input cap before any work: NFKC can expand a character up to 18-fold, so a bound on
/// the input is what keeps normalisation cheap. No valid password comes near it.
const MAX_RAW_PASSWORD_BYTES: usize = 4 * 4 * MAX_PASSWORD_CHARS;

#[derive(Debug, PartialEq, Eq)]
pub enum PasswordRuleError {
    TooShort,
    TooLong,
}

impl std::fmt::Display for PasswordRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(f, "password must be at least {MIN_PASSWORD_CHARS} characters"),
            Self::TooLong => write!(f, "password must be at most {MAX_PASSWORD_CHARS} characters"),
        }
    }
}

/// NFKC-normalises a password and checks its length in characters. Never truncates.
pub fn normalize(password: &SecretString) -> Result<SecretString, PasswordRuleError> {
    let normalized = nfkc_within_limit(password)?;
    if normalized.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordRuleError::TooShort);
    }
    Ok(normalized)
}

/// The upper bound alone: it is what keeps hashing cheap, and logins apply only it.
fn nfkc_within_limit(password: &SecretString) -> Result<SecretString, PasswordRuleError> {
    let raw = password.expose_secret();
    if raw.len() > MAX_RAW_PASSWORD_BYTES {
        return Err(PasswordRuleError::TooLong);
    }
    let normalized: String = raw.nfkc().collect();
    if normalized.chars().count() > MAX_PASSWORD_CHARS {
        return Err(PasswordRuleError::TooLong);
    }
    Ok(SecretString::from(normalized))
}

#[derive(Clone)]
pub struct PasswordHasherConfig {
    params: Params,
    /// Verified against when the username is unknown, so that both failures cost the same.
    dummy_hash: String,
}

impl PasswordHasherConfig {
    pub fn new(settings: &Argon2Settings) -> Result<Self, argon2::Error> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)?;
        let mut config = Self { params, dummy_hash: String::new() };
        config.dummy_hash = config
            .hash(&SecretString::from("tollgate dummy password for unknown users"))
            .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        Ok(config)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password that passed [`normalize`] into a PHC string.
    pub fn hash(&self, password: &SecretString) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(self.argon2().hash_password(password.expose_secret().as_bytes(), &salt)?.to_string())
    }

    /// Verifies a login attempt. `stored` is `None` for an unknown user: the dummy hash is
    /// checked instead and the answer is always `false`.
    pub fn verify(&self, password: &SecretString, stored: Option<&str>) -> bool {
        let Ok(password) = nfkc_within_limit(password) else {
            return false;
        };
        let candidate = stored.unwrap_or(&self.dummy_hash);
        let Ok(parsed) = PasswordHash::new(candidate) else {
            log::error!("stored password hash is not a valid PHC string");
            return false;
        };
        // The cost parameters come from the stored hash, so raising the configured cost
        // never locks out existing users.
        let matches = self.argon2().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
        matches && stored.is_some()
    }
}

/// Bounds argon2 work: at most `max_concurrent` hashes run (each holds ~19 MiB), a few
/// more wait up to the queue timeout, and the rest are refused at once with 503. A login
/// flood thus costs bounded memory and leaves CPU and threads for token-checking requests.
pub struct HashingGate {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    queue_timeout: std::time::Duration,
}

/// Waiting requests per hashing slot; beyond this, waiting would only time out anyway.
const WAITING_PER_SLOT: usize = 32;

impl HashingGate {
    pub fn new(settings: &Argon2Settings) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(settings.max_concurrent),
            waiting: Default::default(),
            max_waiting: settings.max_concurrent * WAITING_PER_SLOT,
            queue_timeout: settings.queue_timeout,
        }
    }

    /// Runs `work` on the blocking pool once a slot is free.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        use std::sync::atomic::Ordering::SeqCst;
        let queued = self.waiting.fetch_add(1, SeqCst);
        let permit = if queued < self.max_waiting {
            tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await.ok().and_then(Result::ok)
        } else {
            None
        };
        self.waiting.fetch_sub(1, SeqCst);
        let Some(_permit) = permit else {
            log::warn!("password hashing overloaded; request refused");
            return Err(ApiError::Overloaded);
        };
        Ok(actix_web::web::block(work).await?)
    }

    /// Requests waiting for a slot now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasherConfig {
        PasswordHasherConfig::new(&Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            queue_timeout: std::time::Duration::ZERO,
        })
        .unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn length_is_counted_in_characters_after_nfkc() {
        assert_eq!(normalize(&secret("1234567")).unwrap_err(), PasswordRuleError::TooShort);
        assert!(normalize(&secret("12345678")).is_ok());
        // Eight characters of four bytes each.
        assert!(normalize(&secret("🔑🔑🔑🔑🔑🔑🔑🔑")).is_ok());
        assert!(normalize(&secret(&"é".repeat(MAX_PASSWORD_CHARS))).is_ok());
        assert_eq!(
            normalize(&secret(&"a".repeat(MAX_PASSWORD_CHARS + 1))).unwrap_err(),
            PasswordRuleError::TooLong
        );
        // The fullwidth form normalises to ASCII, so both spellings are one password.
        assert_eq!(normalize(&secret("ｐａｓｓｗｏｒｄ")).unwrap().expose_secret(), "password");
    }

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let hasher = cheap();
        let hash = hasher.hash(&secret("correct horse")).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hasher.verify(&secret("correct horse"), Some(&hash)));
        assert!(!hasher.verify(&secret("correct horsf"), Some(&hash)));
        assert!(!hasher.verify(&secret("correct horse"), None));
    }

    #[test]
    fn a_password_that_differs_after_the_1024th_character_is_a_different_password() {
        let hasher = cheap();
        let base = "x".repeat(MAX_PASSWORD_CHARS - 1);
        let hash = hasher.hash(&secret(&format!("{base}a"))).unwrap();
        assert!(!hasher.verify(&secret(&format!("{base}b")), Some(&hash)));
    }
}

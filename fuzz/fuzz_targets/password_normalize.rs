//! `password::normalize` on arbitrary strings: never panics, and what it accepts is
//! NFKC-normal and 8..=1024 characters long.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};
use tollgate::auth::password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PasswordRuleError, normalize};

fuzz_target!(|input: &str| {
    match normalize(&SecretString::from(input)) {
        Ok(normalized) => {
            let n = normalized.expose_secret();
            let chars = n.chars().count();
            assert!(
                (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars),
                "accepted a {chars}-character password"
            );
            // NFKC is idempotent: normalising the result again changes nothing.
            let again = normalize(&SecretString::from(n)).expect("normal form re-accepted");
            assert_eq!(again.expose_secret(), n, "normalisation is not idempotent");
        }
        Err(PasswordRuleError::TooShort) | Err(PasswordRuleError::TooLong) => {}
    }
});

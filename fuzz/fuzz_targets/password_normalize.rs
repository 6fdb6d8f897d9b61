//! `password::normalize` on arbitrary strings: never panics, and what it accepts was
//! 8..=1024 characters as typed and is NFKC-normal, within the hashing cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};
use tollgate::auth::password::{
    MAX_NORMALIZED_PASSWORD_BYTES, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PasswordRuleError, normalize,
};

fuzz_target!(|input: &str| {
    let typed = input.chars().count();
    match normalize(&SecretString::from(input)) {
        Ok(normalized) => {
            assert!(
                (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&typed),
                "accepted a password of {typed} typed characters"
            );
            let n = normalized.expose_secret();
            assert!(n.len() <= MAX_NORMALIZED_PASSWORD_BYTES, "normalised to {} bytes", n.len());
            // NFKC is idempotent: the normal form, typed again, normalises to itself
            // (when it is still within the length rule; NFKC may have lengthened it).
            if let Ok(again) = normalize(&SecretString::from(n)) {
                assert_eq!(again.expose_secret(), n, "normalisation is not idempotent");
            }
        }
        Err(PasswordRuleError::TooShort) => assert!(typed < MIN_PASSWORD_CHARS, "{typed} typed is not short"),
        Err(PasswordRuleError::TooLong) => assert!(typed > MAX_PASSWORD_CHARS, "{typed} typed is not long"),
    }
});

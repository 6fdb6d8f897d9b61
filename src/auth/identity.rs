//! The rules for usernames and email addresses, shared by every way an account comes in:
//! signup, login, the admin API, the CLI and imports.

use std::fmt;

/// Django's default `UnicodeUsernameValidator` length, so that every imported account fits.
pub const MAX_USERNAME_CHARS: usize = 150;
const MAX_EMAIL_LEN: usize = 254;

/// A username outside the rule.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidUsername;

impl fmt::Display for InvalidUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "username must be 1 to {MAX_USERNAME_CHARS} characters of letters, digits, '@', '.', '+', '-' or '_'"
        )
    }
}

impl std::error::Error for InvalidUsername {}

/// An email address that is not one.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidEmail;

impl fmt::Display for InvalidEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("email is not a valid address")
    }
}

impl std::error::Error for InvalidEmail {}

/// Django's ASCII username rule: 1–150 of `[A-Za-z0-9@.+_-]`. Returns the stored form,
/// lower-case, which is what makes usernames unique regardless of case. ASCII only, so
/// that no two usernames look alike.
pub fn username(raw: &str) -> Result<String, InvalidUsername> {
    let valid_chars =
        raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'+' | b'-' | b'_'));
    // ASCII, so bytes are characters.
    if !valid_chars || !(1..=MAX_USERNAME_CHARS).contains(&raw.len()) {
        return Err(InvalidUsername);
    }
    Ok(raw.to_ascii_lowercase())
}

/// A deliberately plain syntax check: one `@`, a non-empty local part, a dotted domain of
/// letters, digits and hyphens, no spaces. Whether it receives mail is not our concern.
/// Returns the stored form, lower-case.
pub fn email(raw: &str) -> Result<String, InvalidEmail> {
    if raw.len() > MAX_EMAIL_LEN || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidEmail);
    }
    let (local, domain) = raw.rsplit_once('@').ok_or(InvalidEmail)?;
    let domain_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return Err(InvalidEmail);
    }
    Ok(raw.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_djangos_ascii_rule_and_are_lower_cased() {
        assert_eq!(username("Alice.B-c_9").unwrap(), "alice.b-c_9");
        assert_eq!(username("Bob+Tag@Example.com").unwrap(), "bob+tag@example.com");
        for good in ["a", "1", "@", "+", &"a".repeat(MAX_USERNAME_CHARS)] {
            assert!(username(good).is_ok(), "{good:?}");
        }
        for bad in
            ["", &"a".repeat(MAX_USERNAME_CHARS + 1), "al ice", "alice!", "ålice", "a\u{0}b", "a/b", "a:b"]
        {
            assert_eq!(username(bad), Err(InvalidUsername), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_checked_loosely_and_lower_cased() {
        assert_eq!(email("Bob@Example.COM").unwrap(), "bob@example.com");
        for bad in
            ["", "bob", "bob@", "@example.com", "bob@example", "bob@exa mple.com", "bob@-x.com", "bob@x..com"]
        {
            assert_eq!(email(bad), Err(InvalidEmail), "{bad:?}");
        }
    }
}

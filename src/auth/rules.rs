//! What an account is made of: the rules for usernames, emails and role names, shared by
//! every way accounts come in (signup and login, the admin API, the CLI, `DEFAULT_ROLES`,
//! imports). Passwords have theirs in `password`.

use std::fmt;

/// Django's default username length, so that every account imported from Django fits.
pub const MAX_USERNAME_CHARS: usize = 150;
const MAX_EMAIL_LEN: usize = 254;
pub const MAX_ROLE_CHARS: usize = 64;
/// The role that may use the admin API.
pub const ADMIN_ROLE: &str = "admin";
/// The role of Django's staff (`is_staff`), which django-tollgate maps back to it.
pub const STAFF_ROLE: &str = "staff";
/// Roles that grant rights, so that only a deliberate act gives them (an admin, the CLI,
/// Django's `is_superuser` / `is_staff` on import), never a name that merely happens to
/// match, such as a Django group called "Admin".
pub const RESERVED_ROLES: &[&str] = &[ADMIN_ROLE, STAFF_ROLE];

/// Input that breaks a rule; the message names the field.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// Django's ASCII username rule: 1–150 of `[A-Za-z0-9@.+_-]`. Returns the stored form,
/// lower-case, which makes usernames unique regardless of case; ASCII only, so that no
/// two usernames look alike.
pub fn validate_username(raw: &str) -> Result<String, RuleError> {
    let valid_chars =
        raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'+' | b'-' | b'_'));
    // All ASCII, so bytes are characters.
    if !valid_chars || !(1..=MAX_USERNAME_CHARS).contains(&raw.len()) {
        return Err(RuleError(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters of letters, digits, '@', '.', '+', '-' or '_'"
        )));
    }
    Ok(raw.to_ascii_lowercase())
}

/// A deliberately plain syntax check: one `@`, a non-empty local part, a dotted domain of
/// letters, digits and hyphens, no spaces. Whether it receives mail is not our concern.
pub fn validate_email(raw: Option<&str>) -> Result<Option<String>, RuleError> {
    let Some(raw) = raw else { return Ok(None) };
    let invalid = || RuleError("email is not a valid address".into());
    if raw.len() > MAX_EMAIL_LEN || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return Err(invalid());
    }
    Ok(Some(raw.to_lowercase()))
}

/// A role name that breaks the rule; it names the offending value.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidRole(pub String);

impl fmt::Display for InvalidRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role {:?} must be 1 to {MAX_ROLE_CHARS} characters of a-z, 0-9, '_', '.', ':' or '-'",
            self.0
        )
    }
}

impl std::error::Error for InvalidRole {}

pub fn is_valid_role(role: &str) -> bool {
    (1..=MAX_ROLE_CHARS).contains(&role.len())
        && role.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-'))
}

/// Checks every name and returns the set sorted and without duplicates, the form tokens
/// and user objects carry.
pub fn parse_roles<S: AsRef<str>>(roles: impl IntoIterator<Item = S>) -> Result<Vec<String>, InvalidRole> {
    let mut parsed = roles
        .into_iter()
        .map(|role| {
            let role = role.as_ref();
            if is_valid_role(role) { Ok(role.to_owned()) } else { Err(InvalidRole(role.to_owned())) }
        })
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_djangos_ascii_rule_and_are_lower_cased() {
        assert_eq!(validate_username("Alice.B-c_9").unwrap(), "alice.b-c_9");
        assert_eq!(validate_username("Bob+Tag@Example.com").unwrap(), "bob+tag@example.com");
        for good in ["a", "1", "@", "+", &"a".repeat(MAX_USERNAME_CHARS)] {
            assert!(validate_username(good).is_ok(), "{good:?}");
        }
        let too_long = "a".repeat(MAX_USERNAME_CHARS + 1);
        for bad in ["", &too_long, "al ice", "alice!", "ålice", "a\u{0}b", "a/b", "a:b"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_checked_loosely_and_lower_cased() {
        assert_eq!(validate_email(Some("Bob@Example.COM")).unwrap().unwrap(), "bob@example.com");
        assert_eq!(validate_email(None).unwrap(), None);
        for bad in
            ["", "bob", "bob@", "@example.com", "bob@example", "bob@exa mple.com", "bob@-x.com", "bob@x..com"]
        {
            assert!(validate_email(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn role_names_follow_the_contract() {
        for good in ["admin", "a", "billing:read", "team.ops-2_x", &"r".repeat(MAX_ROLE_CHARS)] {
            assert!(is_valid_role(good), "{good:?}");
        }
        for bad in ["", "Admin", "with space", "é", "a/b", "a,b", &"r".repeat(MAX_ROLE_CHARS + 1)] {
            assert!(!is_valid_role(bad), "{bad:?}");
        }
    }

    #[test]
    fn parsed_roles_are_sorted_and_unique() {
        assert_eq!(parse_roles(["staff", "admin", "staff"]).unwrap(), ["admin", "staff"]);
        assert_eq!(parse_roles(["ok", "NO"]).unwrap_err(), InvalidRole("NO".into()));
        assert!(parse_roles(Vec::<String>::new()).unwrap().is_empty());
    }
}

//! The rule for role names, shared by every way roles come in: `DEFAULT_ROLES`, the admin
//! API, the CLI and imports.

use std::fmt;

pub const MAX_ROLE_CHARS: usize = 64;
/// The role that may use the admin API.
pub const ADMIN_ROLE: &str = "admin";

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

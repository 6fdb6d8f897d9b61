//! Configuration from environment variables, read the same way by tollgate and by the
//! services that verify its tokens, so that a bad value is reported alike by both: one
//! line naming the variable and what is wrong with it.

use std::fmt;
use std::str::FromStr;

/// A configuration variable with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self { variable, problem: problem.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Typed reads from a variable source (the process environment, or a map in tests).
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// The variable's value as given; an empty or blank value counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value without surrounding white space, when set.
    pub fn trimmed(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.trim().to_owned())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.trimmed(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn error(&self, variable: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError::new(variable, problem)
    }

    pub fn number<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.trimmed(name) {
            None => Ok(default),
            Some(raw) => {
                raw.parse().map_err(|_| self.error(name, format!("expected a whole number, got {raw:?}")))
            }
        }
    }

    pub fn positive<T: FromStr + Default + PartialOrd>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        let value = self.number(name, default)?;
        if value <= T::default() {
            return Err(self.error(name, "must be greater than 0"));
        }
        Ok(value)
    }

    pub fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.trimmed(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(self.error(name, format!("expected true or false, got {v:?}"))),
        }
    }
}

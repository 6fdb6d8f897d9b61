//! The HTTP-free core of authentication: keys, tokens, sessions, passwords, limits.

pub mod keys;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod rules;
pub mod tokens;
pub mod user_cache;

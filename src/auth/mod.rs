//! The HTTP-free core. [`Sessions`](sessions::Sessions) (signup, login, refresh, logout,
//! password change, token checks) and [`Accounts`](accounts::Accounts) (what
//! administrators do) are the services the HTTP layer and the CLI call; each method
//! returns a domain result or an [`Error`], and keeps the user cache true itself. Below
//! them: keys, tokens, refresh-token rotation, passwords, rules and limits.

pub mod accounts;
pub mod email;
pub mod error;
pub mod keys;
pub mod mfa;
pub mod passkeys;
pub mod password;
pub mod rate_limit;
pub mod recovery;
pub mod refresh;
pub mod rules;
pub mod sessions;
pub mod tokens;
pub mod totp;
pub mod user_cache;
pub mod views;
pub mod webauthn;

pub use error::Error;

/// The services, built once at start-up (`startup`) and shared by every request.
pub struct Core {
    pub sessions: sessions::Sessions,
    pub accounts: accounts::Accounts,
}

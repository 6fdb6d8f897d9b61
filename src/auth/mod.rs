pub mod cookie;
pub mod extractor;
pub mod keys;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod roles;
pub mod tokens;
pub mod user_cache;

pub use extractor::AuthenticatedUser;

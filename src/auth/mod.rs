pub mod cookie;
pub mod django_hash;
pub mod extractor;
pub mod keys;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod tokens;
pub mod user_cache;

pub use extractor::AuthenticatedUser;

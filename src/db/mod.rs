pub mod connection;
pub mod models;
pub mod schema;
pub mod tls;

pub use connection::{DbConnection, Pool, build_pool, run, run_migrations, run_write};

pub mod accounts;
mod batch;
pub mod connection;
pub mod error;
pub mod models;
pub mod rotations;
pub mod schema;
pub mod tls;
pub mod writer;

pub use connection::{DbConnection, Pool, build_pool, run, run_migrations, run_write};
pub use error::DbError;

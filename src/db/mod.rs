//! The database: diesel only. Reads and writes go through [`Pool`]; queries are methods
//! of the models (`models`, `accounts`), and a query that writes takes a [`WriteConn`].

pub mod accounts;
mod batch;
pub mod error;
pub mod mail;
pub mod manager;
pub mod mfa;
pub mod models;
pub mod passkeys;
mod pool;
pub mod rotations;
pub mod schema;
pub mod sessions;
pub mod tls;
mod writer;

pub use error::DbError;
pub use manager::{ConnectError, DbConnection, WriteConn};
pub use pool::{Pool, build_pool};

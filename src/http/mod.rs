//! The HTTP layer: everything that knows about requests and responses.

pub mod client_ip;
pub mod cookie;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;

pub use error::ApiError;
pub use state::AppState;

//! tollgate: a stateless JWT authentication service.
//!
//! `http` (routes, extractors, middleware, the error contract) sits on an HTTP-free core:
//! `auth` and `db`, each with its own error types. `startup` wires them into a server.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod import;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod startup;

//! Every integration test against the real server, in one binary so that `cargo test`
//! links the test code once instead of once per file.

// First, so that `db_tests!` is in scope in every module below.
#[macro_use]
mod common;

mod admin;
mod attacks;
mod auth;
mod cli;
mod cookie;
mod database;
mod deploy;
mod discovery;
mod email;
mod health;
mod import;
mod introspection;
mod junk;
mod jwks;
mod keys;
mod logging;
mod mail;
mod mfa;
mod openapi;
mod operations;
mod passkeys;
mod races;
mod refresh;
mod revocations;
mod security;
mod sessions;
mod shared_limits;
mod startup;
mod tokens;
mod verify_client;
mod warm_cache;

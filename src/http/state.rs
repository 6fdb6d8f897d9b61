//! What every handler shares, built once at start-up (see `startup`).

use std::sync::Arc;

use super::cookie::CookieMode;
use crate::auth::Core;
use crate::auth::keys::KeyStore;
use crate::config::{HttpSettings, JwtSettings, ServiceSettings};
use crate::metrics::Metrics;

pub struct AppState {
    /// The services every handler calls.
    pub core: Core,
    /// The signing keys, for the JWKS.
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub http: HttpSettings,
    pub jwt: JwtSettings,
    pub services: ServiceSettings,
}

impl AppState {
    /// How refresh tokens travel to browsers (`REFRESH_TOKEN_COOKIE`).
    pub fn cookie_mode(&self) -> CookieMode<'_> {
        CookieMode {
            enabled: self.http.refresh_token_cookie,
            allowed_origins: &self.http.cors_allowed_origins,
        }
    }
}

//! Cookie mode (`REFRESH_TOKEN_COOKIE=true`): for browsers, the refresh token travels only
//! in an `HttpOnly` cookie that page scripts cannot read, and the cookie is honoured only
//! with an allowed `Origin` and a custom header that cross-site pages cannot send.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::http::header::{HeaderMap, ORIGIN};

use super::error::ApiError;

pub const REFRESH_COOKIE: &str = "tollgate_refresh";
pub const CSRF_HEADER: &str = "x-tollgate-csrf";
const COOKIE_PATH: &str = "/auth";

/// The cookie mode settings (`AppState::cookie_mode`).
#[derive(Clone, Copy)]
pub struct CookieMode<'a> {
    pub enabled: bool,
    pub allowed_origins: &'a [String],
}

impl CookieMode<'_> {
    /// A request with an `Origin` header comes from a browser: its refresh token goes in
    /// the cookie, never in JSON. Native apps send no `Origin` and use the body.
    pub fn is_browser(&self, req: &HttpRequest) -> bool {
        self.enabled && req.headers().contains_key(ORIGIN)
    }

    /// The refresh token from the cookie, when cookie mode is on and one was sent.
    pub fn presented_token(&self, req: &HttpRequest) -> Option<String> {
        self.enabled.then(|| req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned())).flatten()
    }

    /// A request presenting the cookie must come from an allowed origin and carry the
    /// CSRF header, which a cross-site form or `fetch` cannot add without a preflight.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        let origin_allowed = origin.is_some_and(|o| self.allowed_origins.iter().any(|allowed| allowed == o));
        let header_set = headers.get(CSRF_HEADER).is_some_and(|v| v.as_bytes() == b"1");
        if origin_allowed && header_set { Ok(()) } else { Err(ApiError::CsrfRejected) }
    }
}

pub fn refresh_cookie(token: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, token)
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path(COOKIE_PATH)
        .max_age(Duration::seconds(max_age_secs))
        .finish()
}

pub fn cleared_cookie() -> Cookie<'static> {
    refresh_cookie(String::new(), 0)
}

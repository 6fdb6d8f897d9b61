use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web;

use crate::startup::AppState;

/// Consumers cache the key set for this long (seconds).
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// Public keys only, serialised once at start-up.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .content_type("application/json")
        .body(state.jwks.clone())
}

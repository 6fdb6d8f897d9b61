use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web;

use crate::http::AppState;

/// Every public key that may still verify a live token, including keys about to sign.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let max_age = state.jwks_max_age_secs;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .content_type("application/json")
        .body(state.keys.ring().jwks.clone())
}

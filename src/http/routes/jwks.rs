use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web;

use crate::http::AppState;
use crate::http::openapi::responses::ServerErrors;
use utoipa::ToSchema;

/// A JWK Set (RFC 7517): public keys only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// One public key; the other members depend on `kty` (`crv`, `x`, `y` or `n`, `e`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    /// The RFC 7638 thumbprint of the key.
    kid: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[schema(rename = "use", example = "sig")]
    use_: String,
}

/// Every public key that may still verify a live token, including keys about to sign;
/// `{"keys": []}` under HS256.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "services",
    responses(
        (status = 200, description = "The JWK Set", body = JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=<JWKS_MAX_AGE_SECS>`"))),
        ServerErrors,
    ))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let max_age = state.jwt.jwks_max_age_secs;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .content_type("application/json")
        .body(state.keys.ring().jwks.clone())
}

//! Discovery documents (OpenID Connect Discovery, RFC 8414): how libraries that are given
//! an issuer find its keys. They name only what tollgate offers: no authorization or
//! token endpoint, since tollgate runs no OAuth flow.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::keys::algorithm_name;
use crate::config::{HttpSettings, JwtSettings};
use crate::http::AppState;
use crate::http::openapi::responses::ServerErrors;

/// The issuer metadata, the same in both documents, from the settings.
#[derive(Serialize, ToSchema)]
pub struct IssuerMetadata {
    /// `JWT_ISSUER`
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: String,
    id_token_signing_alg_values_supported: [&'static str; 1],
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
}

impl IssuerMetadata {
    fn new(http: &HttpSettings, jwt: &JwtSettings) -> Self {
        let url = &http.public_url;
        Self {
            issuer: jwt.issuer.clone(),
            jwks_uri: format!("{url}/.well-known/jwks.json"),
            introspection_endpoint: format!("{url}/auth/introspect"),
            id_token_signing_alg_values_supported: [algorithm_name(jwt.algorithm)],
            response_types_supported: ["token"],
            subject_types_supported: ["public"],
        }
    }
}

/// The issuer metadata for OpenID Connect libraries (OpenID Connect Discovery 1.0).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "services",
    responses((status = 200, description = "The issuer metadata", body = IssuerMetadata), ServerErrors))]
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(IssuerMetadata::new(&state.http, &state.jwt))
}

/// The same metadata for OAuth libraries (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "services",
    responses((status = 200, description = "The issuer metadata", body = IssuerMetadata), ServerErrors))]
pub async fn oauth_authorization_server(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(IssuerMetadata::new(&state.http, &state.jwt))
}

//! Token introspection (RFC 7662): for services that want a revocation to count at once
//! and would rather ask tollgate than poll the revocation feed.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::extractor::{ServiceCaller, authenticate_token};
use crate::auth::tokens::AccessClaims;
use crate::error::ApiError;
use crate::startup::AppState;

/// RFC 7662 §2.1; `token_type_hint` is ignored (only access tokens can be active).
#[derive(Deserialize)]
pub struct IntrospectRequest {
    token: String,
}

/// `{"active": false}` and nothing else for any token that is not live; the claims too
/// for one that is.
#[derive(Serialize)]
pub struct Introspection {
    active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    token: Option<ActiveToken>,
}

#[derive(Serialize)]
struct ActiveToken {
    sub: Uuid,
    username: String,
    roles: Vec<String>,
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: Uuid,
    token_type: &'static str,
}

impl From<AccessClaims> for ActiveToken {
    fn from(claims: AccessClaims) -> Self {
        Self {
            sub: claims.sub,
            username: claims.username,
            // Access tokens carry no roles yet.
            roles: Vec::new(),
            iss: claims.iss,
            aud: claims.aud,
            exp: claims.exp,
            iat: claims.iat,
            jti: claims.jti,
            token_type: "access_token",
        }
    }
}

pub async fn introspect(
    _caller: ServiceCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = presented_token(&req, &body)?;
    let active = match authenticate_token(&state, &token).await {
        Ok(caller) => Some(ActiveToken::from(caller.claims)),
        Err(ApiError::InvalidToken) => None,
        Err(other) => return Err(other),
    };
    Ok(HttpResponse::Ok().json(Introspection { active: active.is_some(), token: active }))
}

/// The `token` parameter: form-encoded as RFC 7662 has it, or JSON.
fn presented_token(req: &HttpRequest, body: &[u8]) -> Result<String, ApiError> {
    let request: IntrospectRequest = if super::has_media_type(req, "application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body).map_err(|e| ApiError::Validation(format!("invalid form: {e}")))?
    } else {
        super::json_body(req, body)?
    };
    Ok(request.token)
}

//! Token introspection (RFC 7662): for services that want a revocation to count at once
//! and would rather ask tollgate than poll the revocation feed.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Error;
use crate::auth::tokens::AccessClaims;
use crate::http::extract::{ServiceCaller, has_media_type, json_body};
use crate::http::openapi::responses::{DatabaseErrors, JsonBodyErrors, ServerErrors, ServiceTokenErrors};
use crate::http::{ApiError, AppState};

/// RFC 7662 §2.1; `token_type_hint` is ignored (only access tokens can be active).
#[derive(Deserialize, ToSchema)]
pub struct IntrospectRequest {
    /// The token to introspect.
    token: String,
    #[schema(example = "access_token")]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// The answer, whose schema is one of the two shapes.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Introspection {
    Active(ActiveToken),
    Inactive(InactiveToken),
}

/// A live, unrevoked access token of an existing, enabled user: its claims.
#[derive(Serialize, ToSchema)]
pub struct ActiveToken {
    /// Always `true`.
    active: bool,
    sub: Uuid,
    username: String,
    roles: Vec<String>,
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: Uuid,
    #[schema(example = "access_token")]
    token_type: &'static str,
}

/// Anything else: exactly `{"active": false}`, so that nothing is learnt about the token.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InactiveToken {
    /// Always `false`.
    active: bool,
}

impl From<AccessClaims> for ActiveToken {
    fn from(claims: AccessClaims) -> Self {
        Self {
            active: true,
            sub: claims.sub,
            username: claims.username,
            roles: claims.roles,
            iss: claims.iss,
            aud: claims.aud,
            exp: claims.exp,
            iat: claims.iat,
            jti: claims.jti,
            token_type: "access_token",
        }
    }
}

/// Whether a token is a live access token of an existing, enabled user, and its claims
/// if so.
#[utoipa::path(post, path = "/auth/introspect", tag = "services",
    request_body(description = "RFC 7662: form-encoded; JSON is accepted too",
        content((IntrospectRequest = "application/x-www-form-urlencoded"), (IntrospectRequest = "application/json"))),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "The token's state", body = Introspection),
        ServiceTokenErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn introspect(
    _caller: ServiceCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = presented_token(&req, &body)?;
    let answer = match state.core.sessions.authenticate(&token).await {
        Ok(caller) => Introspection::Active(ActiveToken::from(caller.claims)),
        Err(Error::InvalidToken) => Introspection::Inactive(InactiveToken { active: false }),
        Err(other) => return Err(other.into()),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// The `token` parameter: form-encoded as RFC 7662 has it, or JSON.
fn presented_token(req: &HttpRequest, body: &[u8]) -> Result<String, ApiError> {
    let request: IntrospectRequest = if has_media_type(req, "application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body).map_err(|e| ApiError::Validation(format!("invalid form: {e}")))?
    } else {
        json_body(req, body)?
    };
    Ok(request.token)
}

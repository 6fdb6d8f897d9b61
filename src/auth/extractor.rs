//! `AuthenticatedUser`: the only way a handler learns who is calling.

use std::future::{Ready, ready};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use super::tokens::{AccessClaims, MAX_TOKEN_LEN};
use crate::error::ApiError;
use crate::startup::AppState;

/// A caller whose bearer access token verified. Taking it as a handler argument is what
/// protects a route; failures answer 401 with a `WWW-Authenticate` challenge.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub id: Uuid,
    pub username: String,
    pub claims: AccessClaims,
}

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthenticatedUser, ApiError> {
    let token = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("AppState is not registered".into()))?;
    let claims = state.tokens.verify(token).map_err(|e| {
        log::debug!("access token rejected: {e}");
        ApiError::InvalidToken
    })?;
    Ok(AuthenticatedUser {
        id: claims.sub,
        username: claims.username.clone(),
        claims,
    })
}

/// The bearer token of the request, if it has an `Authorization` header at all.
/// Ambiguous or malformed headers are errors rather than "no token".
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest("more than one Authorization header"));
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidToken);
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::InvalidToken);
    }
    Ok(Some(token))
}

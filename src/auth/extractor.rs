//! `AuthenticatedUser`: the only way a handler learns who is calling.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tollgate_verify::BearerError;

use super::tokens::AccessClaims;
use crate::db::{self, models::User};
use crate::error::ApiError;
use crate::startup::AppState;

/// A caller whose bearer access token verified and was not revoked, with their user row.
/// Taking it as a handler argument is what protects a route; failures answer 401 with a
/// `WWW-Authenticate` challenge.
pub struct AuthenticatedUser {
    pub claims: AccessClaims,
    pub user: Arc<User>,
}

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// Verifies the request's bearer token, then checks on the user's row that the account
/// still exists, is not disabled, and that the token was not issued before a revocation
/// (logout, password change, a role taken away).
pub async fn authenticate(req: &HttpRequest) -> Result<AuthenticatedUser, ApiError> {
    let token = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("AppState is not registered".into()))?;
    let claims = state.tokens.verify(token).map_err(|e| {
        log::debug!("access token rejected: {e}");
        ApiError::InvalidToken
    })?;
    let user_id = claims.sub;
    let user = match state.users.get(user_id) {
        Some(user) => user,
        None => {
            let generation = state.users.generation();
            let user = db::run(&state.pool, move |conn| User::find(conn, user_id))
                .await?
                .map(Arc::new)
                .ok_or(ApiError::InvalidToken)?;
            state.users.put(user.clone(), generation);
            user
        }
    };
    // Disabling revokes the tokens too; the flag also covers a row disabled by hand.
    if user.disabled || user.tokens_valid_after.is_some_and(|valid_after| claims.iat < valid_after) {
        log::debug!("revoked access token presented user_id={user_id}");
        return Err(ApiError::InvalidToken);
    }
    Ok(AuthenticatedUser { claims, user })
}

/// The bearer token of the request, if it has an `Authorization` header at all.
/// Ambiguous or malformed headers are errors rather than "no token".
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let values = req.headers().get_all(header::AUTHORIZATION).map(|v| v.as_bytes());
    tollgate_verify::bearer_token(values).map_err(|e| match e {
        BearerError::Ambiguous => ApiError::BadRequest("more than one Authorization header"),
        BearerError::Malformed => ApiError::InvalidToken,
    })
}

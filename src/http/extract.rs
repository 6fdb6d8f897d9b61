//! What handlers take from a request: the authenticated caller, the bearer token, the
//! client's IP, and JSON bodies with the contract's errors.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq as _;
use tollgate_verify::BearerError;
use uuid::Uuid;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::rate_limit::LoginAttempt;
use crate::auth::tokens::AccessClaims;
use crate::db::{self, accounts::Account};

/// A caller whose bearer access token verified and was not revoked, with their account
/// (user row and current roles). Taking it as a handler argument is what protects a route;
/// failures answer 401 with a `WWW-Authenticate` challenge.
pub struct CurrentUser {
    pub claims: AccessClaims,
    pub account: Arc<Account>,
}

impl FromRequest for CurrentUser {
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
pub async fn authenticate(req: &HttpRequest) -> Result<CurrentUser, ApiError> {
    let token = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
    authenticate_token(state_of(req)?, token).await
}

/// The checks of [`authenticate`] on a token however it arrived (introspection gets it
/// in the body): `InvalidToken` for any token that is not live.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<CurrentUser, ApiError> {
    let claims = state.tokens.verify(token)?;
    let user_id = claims.sub;
    let mut account = account_of(state, user_id).await?;
    // The batch may have held this very user's entry: then the re-read row decides.
    if reread_aged_accounts(state).await {
        account = account_of(state, user_id).await?;
    }
    let user = &account.user;
    // Disabling revokes the tokens too; the flag also covers a row disabled by hand.
    if user.disabled || user.tokens_valid_after.is_some_and(|valid_after| claims.iat < valid_after) {
        log::debug!("revoked access token presented user_id={user_id}");
        return Err(ApiError::InvalidToken);
    }
    Ok(CurrentUser { claims, account })
}

/// The user's account from the cache, else from the database (and then cached).
async fn account_of(state: &AppState, user_id: Uuid) -> Result<Arc<Account>, ApiError> {
    if let Some(account) = state.users.get(user_id) {
        return Ok(account);
    }
    let generation = state.users.generation(user_id);
    let account = db::run(&state.pool, move |conn| Account::find(conn, user_id))
        .await?
        .map(Arc::new)
        .ok_or(ApiError::InvalidToken)?;
    state.users.put(account.clone(), generation);
    Ok(account)
}

/// Re-validates a batch of aged user-cache entries, if some wait and no other request is at it
/// (see `UserCache::take_aged`); whether it did. A failure leaves them to age out: it is
/// not this request's, which goes on.
async fn reread_aged_accounts(state: &AppState) -> bool {
    let Some(batch) = state.users.take_aged() else { return false };
    let ids = batch.ids();
    match db::run(&state.pool, move |conn| Account::freshness_of(conn, &ids)).await {
        Ok(found) => state.users.revalidate(batch, found),
        Err(e) => log::warn!("re-reading cached accounts failed: {e}"),
    }
    true
}

fn state_of(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("AppState is not registered".into()))
}

/// A service presenting `REVOCATION_FEED_TOKEN` as its bearer token: the caller of the
/// revocation feed and of introspection. Without a configured token those endpoints do
/// not exist (404); a wrong token is a 401.
pub struct ServiceCaller;

impl FromRequest for ServiceCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(service_caller(req))
    }
}

fn service_caller(req: &HttpRequest) -> Result<ServiceCaller, ApiError> {
    let Some(expected) = &state_of(req)?.revocation_feed_token else {
        return Err(ApiError::NotFound);
    };
    let presented = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
    // In constant time, so that the time taken does not tell how much of a guess was right.
    if !bool::from(presented.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return Err(ApiError::InvalidToken);
    }
    Ok(ServiceCaller)
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

/// The client's address for rate limiting (see `client_ip`).
fn client_ip(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    super::client_ip::client_ip(req.peer_addr().map(|addr| addr.ip()), req.headers(), state.proxies.as_ref())
}

/// Counts one signup or password-change attempt against the client's IP limit.
pub async fn rate_limit(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let ip = client_ip(req, state);
    Ok(state.limits.attempt(ip).await?)
}

/// Counts one login attempt against the client's IP limit, refused while the username is
/// locked; report the outcome to [`AppState::limits`] with the attempt returned.
pub async fn login_limit(
    req: &HttpRequest,
    state: &AppState,
    username: &str,
) -> Result<LoginAttempt, ApiError> {
    let ip = client_ip(req, state);
    Ok(state.limits.login_attempt(ip, username).await?)
}

/// The answer to a refresh token refused (refresh, logout): 401, or 429 once the client's
/// IP has had more refused than its limit within the minute. Only refusals count, so a
/// client that refreshes correctly is never limited, however much junk shares its IP.
pub fn refused_refresh_token(req: &HttpRequest, state: &AppState) -> ApiError {
    let limited = client_ip(req, state).map(|ip| state.refresh_failures.check(ip));
    match limited {
        Some(Err(limited)) => limited.into(),
        Some(Ok(())) | None => ApiError::InvalidRefreshToken,
    }
}

/// The `Json` extractor's errors in the contract's terms.
pub fn json_config_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge,
        E::ContentType => ApiError::UnsupportedMediaType,
        E::Deserialize(e) => parse_error(e),
        other => ApiError::InvalidJson(other.to_string()),
    }
    .into()
}

/// Parses a JSON body read as bytes (for handlers whose body is optional), with the same
/// errors as the `Json` extractor.
pub fn json_body<T: serde::de::DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    if !has_media_type(req, "application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(parse_error)
}

/// Whether the request's `Content-Type` is `media_type` (parameters such as `charset`
/// aside).
pub fn has_media_type(req: &HttpRequest, media_type: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case(media_type))
}

/// Bad syntax is a 400; well-formed JSON of the wrong shape is a 422.
fn parse_error(err: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => ApiError::Validation(err.to_string()),
        Category::Syntax | Category::Eof | Category::Io => ApiError::InvalidJson(err.to_string()),
    }
}

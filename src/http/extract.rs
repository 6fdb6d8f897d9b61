//! What handlers take from a request: the authenticated caller, the bearer token, the
//! client, and JSON bodies with the contract's errors.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq as _;
use tollgate_verify::BearerError;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::sessions::{Caller, Client, USER_AGENT_MAX_CHARS};

/// Taking a [`Caller`] as a handler argument is what protects a route: the request's
/// bearer token must be a live access token (`Sessions::authenticate`); failures answer
/// 401 with a `WWW-Authenticate` challenge.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller(&req).await })
    }
}

/// The caller of the request's bearer token.
pub async fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let token = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
    Ok(state_of(req)?.core.sessions.authenticate(token).await?)
}

/// A caller allowed to use the admin API (`Caller::require_admin`); else 401 or 403.
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let token = bearer_token(&req)?.ok_or(ApiError::MissingToken)?;
            Ok(Admin(state_of(&req)?.core.sessions.authenticate_admin(token).await?))
        })
    }
}

fn state_of(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("AppState is not registered"))
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
    let Some(expected) = &state_of(req)?.services.revocation_feed_token else {
        return Err(ApiError::NotFound);
    };
    let presented = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
    // In constant time, so that the time taken does not tell how much of a guess was right.
    if !bool::from(presented.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return Err(ApiError::INVALID_TOKEN);
    }
    Ok(ServiceCaller)
}

/// The bearer token of the request, if it has an `Authorization` header at all.
/// Ambiguous or malformed headers are errors rather than "no token".
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let values = req.headers().get_all(header::AUTHORIZATION).map(|v| v.as_bytes());
    tollgate_verify::bearer_token(values).map_err(|e| match e {
        BearerError::Ambiguous => ApiError::BadRequest("more than one Authorization header"),
        BearerError::Malformed => ApiError::INVALID_TOKEN,
    })
}

/// Who is asking, for the core's limits and sessions: the client's address is the
/// socket's, unless the operator said trusted proxies set a forwarding header
/// (`client_ip`); the user agent as given, capped.
pub fn client(req: &HttpRequest) -> Client {
    let proxies = state_of(req).ok().and_then(|state| state.http.proxies.as_ref());
    let peer = req.peer_addr().map(|addr| addr.ip());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).chars().take(USER_AGENT_MAX_CHARS).collect());
    Client { ip: super::client_ip::client_ip(peer, req.headers(), proxies), user_agent }
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

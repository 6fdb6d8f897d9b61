//! What wraps every request: the CSRF guard, security headers, CORS, the request log, and
//! the last-resort JSON body for error responses that do not have one.

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, Logger, Next};
use actix_web::{ResponseError, web};

use super::cookie::{CSRF_HEADER, REFRESH_COOKIE};
use super::error::ApiError;
use super::state::AppState;

/// Refuses any request that presents the refresh cookie without passing the CSRF check,
/// before a handler sees it.
pub async fn csrf_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>()
        && state.cookie_mode.enabled
        && req.cookie(REFRESH_COOKIE).is_some()
    {
        state.cookie_mode.check(req.headers())?;
    }
    next.call(req).await
}

/// Headers every response carries: no MIME sniffing, and no caching of anything (token
/// responses above all) unless a handler says otherwise.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// One line per request: method, path (never the query string, which may carry secrets),
/// status and duration.
pub fn request_logger() -> Logger {
    Logger::new("%{method}xi %{path}xi %s %Dms")
        .custom_request_replace("method", |req| req.method().to_string())
        .custom_request_replace("path", |req| req.path().to_owned())
}

pub fn cors(origins: &[String], cookie_mode: bool) -> Cors {
    let cors = origins.iter().fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    let cors = cors
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static(CSRF_HEADER)])
        .max_age(3600)
        // Other origins simply get no CORS headers; non-browser clients are unaffected.
        .block_on_origin_mismatch(false);
    // Only the refresh cookie needs credentials, and only for the exact origins above.
    if cookie_mode { cors.supports_credentials() } else { cors }
}

/// The last line of defence for the error contract: any error response that is not JSON
/// yet (from actix itself or a middleware) becomes the [`ApiError`] of its status, keeping
/// the headers it had.
pub fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, old) = res.into_parts();
    let mut new = ApiError::from_status(old.status()).error_response();
    *new.status_mut() = old.status();
    let kept: Vec<_> = old
        .headers()
        .iter()
        .filter(|(name, _)| **name != header::CONTENT_TYPE && **name != header::CONTENT_LENGTH)
        .collect();
    for (name, _) in &kept {
        new.headers_mut().remove(*name);
    }
    for (name, value) in kept {
        new.headers_mut().append(name.clone(), value.clone());
    }
    let res = ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

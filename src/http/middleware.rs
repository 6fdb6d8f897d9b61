//! What wraps every request: its id, log span, log line and metrics; the CSRF guard,
//! security headers, CORS, and the last-resort JSON body for error responses that do not
//! have one.

use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, Next};
use actix_web::{ResponseError, web};
use tracing::Instrument;

use super::cookie::{CSRF_HEADER, REFRESH_COOKIE};
use super::error::ApiError;
use super::state::AppState;
use crate::metrics::UNMATCHED_ROUTE;

/// Refuses any request that presents the refresh cookie without passing the CSRF check,
/// before a handler sees it. The refusal is a response, not an error, so that the layers
/// above (headers, CORS, [`observe`]) treat it like any other.
pub async fn csrf_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>()
        && state.http.refresh_token_cookie
        && req.cookie(REFRESH_COOKIE).is_some()
        && let Err(refused) = state.cookie_mode().check(req.headers())
    {
        return Ok(req.error_response(refused).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Headers every response carries: no MIME sniffing, no caching of anything (token
/// responses above all) and no framing, unless a handler says otherwise. The API's
/// answers are data, not pages: their policy lets nothing load. The HTML pages (the demo,
/// Swagger UI) set their own, by [`page_policy`].
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"))
}

/// The `Content-Security-Policy` of an HTML page that loads only `sources` (directives
/// such as `script-src 'self'`): nothing else loads, nothing frames it (clickjacking on
/// a page with a login form), and neither a `<base>` nor a form may point elsewhere.
pub fn page_policy(sources: &str) -> String {
    format!("default-src 'none'; {sources}; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
}

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The outermost layer. Gives the request its id (the client's `X-Request-Id` when it
/// sent one sane value, else a new uuid), runs everything below in a log span that
/// carries it, and then writes the request's log line (method, path, never the query
/// string, which may carry secrets, status and duration), counts it in the metrics and
/// returns the id in `X-Request-Id`, on every answer, errors included.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(req.headers());
    let span = tracing::error_span!("request", request_id = %id);
    // No layer below answers with an `Err` (the CSRF guard answers with a response, and
    // handlers' errors are responses already), so every answer passes here.
    let mut res = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed();
    let status = res.status();
    let request = res.request();
    span.in_scope(|| {
        // `Debug` of an `ApiError` names its code only, never request input.
        if let Some(error) = res.response().error() {
            tracing::debug!("Error in response: {error:?}");
        }
        tracing::info!(
            "{} {} {} {:.3}ms",
            request.method(),
            request.path(),
            status.as_u16(),
            elapsed.as_secs_f64() * 1000.0
        );
    });
    if let Some(state) = request.app_data::<web::Data<AppState>>() {
        let route = request.match_pattern();
        state.metrics.request(route.as_deref().unwrap_or(UNMATCHED_ROUTE), status.as_str(), elapsed);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(res)
}

/// The client's request id if it sent exactly one of at most [`MAX_REQUEST_ID_LEN`]
/// characters of `[A-Za-z0-9._-]` (safe in any log line and header), else a new one.
fn request_id(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(REQUEST_ID_HEADER);
    match (values.next(), values.next()) {
        (Some(value), None) if is_sane_request_id(value.as_bytes()) => {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        }
        _ => uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string(),
    }
}

fn is_sane_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn cors(origins: &[String], cookie_mode: bool) -> Cors {
    let cors = origins.iter().fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    let cors = cors
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static(CSRF_HEADER)])
        // So that a front end can quote the id of a failed request.
        .expose_headers([REQUEST_ID_HEADER])
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

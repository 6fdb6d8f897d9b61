//! HTTP routes, one file per area, all registered by [`configure`].

pub mod admin;
pub mod auth;
pub mod demo;
pub mod discovery;
pub mod email;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod metrics;
pub mod mfa;
pub mod passkeys;
pub mod recovery;
pub mod revocations;
pub mod sessions;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, Handler, HttpResponse, Responder, ResponseError, Route, web};

use super::error::ApiError;
use super::extract::json_config_error;
use super::openapi;

/// JSON request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every route; shared by the server and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(json_config_error))
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| ApiError::Validation(format!("invalid query string: {err}")).into()),
        );
    // One resource per path, with each of its methods; any other method gets a 405.
    let mut by_path: Vec<(&str, Vec<Endpoint>)> = Vec::new();
    for endpoint in endpoints() {
        match by_path.iter_mut().find(|(path, _)| *path == endpoint.path) {
            Some((_, group)) => group.push(endpoint),
            None => by_path.push((endpoint.path, vec![endpoint])),
        }
    }
    for (path, group) in by_path {
        let allow = group.iter().map(|e| e.method.as_str()).collect::<Vec<_>>().join(", ");
        let resource = group.into_iter().fold(web::resource(path), |resource, e| resource.route(e.route));
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { method_not_allowed(&allow) }
        })));
    }
    cfg.default_service(web::to(not_found));
}

/// The answer to a path no route takes.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A path and one of its methods. [`endpoints`] is the route table: `configure` registers
/// it, and a test checks that the OpenAPI document lists exactly these.
pub struct Endpoint {
    pub path: &'static str,
    pub method: Method,
    route: Route,
}

impl Endpoint {
    fn new<F, Args>(method: Method, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Self { path, route: web::route().method(method.clone()).to(handler), method }
    }
}

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::POST, "/auth/signup", auth::signup),
        Endpoint::new(Method::POST, "/auth/login", auth::login),
        Endpoint::new(Method::POST, "/auth/login/mfa", mfa::second_step),
        Endpoint::new(Method::POST, "/auth/refresh", auth::refresh),
        Endpoint::new(Method::POST, "/auth/logout", auth::logout),
        Endpoint::new(Method::GET, "/auth/me", auth::me),
        Endpoint::new(Method::POST, "/auth/password", auth::change_password),
        Endpoint::new(Method::POST, "/auth/mfa/totp/setup", mfa::setup),
        Endpoint::new(Method::POST, "/auth/mfa/totp/confirm", mfa::confirm),
        Endpoint::new(Method::DELETE, "/auth/mfa/totp", mfa::disable),
        Endpoint::new(Method::POST, "/auth/mfa/recovery-codes", mfa::recovery_codes),
        Endpoint::new(Method::POST, "/auth/passkeys/register/options", passkeys::register_options),
        Endpoint::new(Method::POST, "/auth/passkeys/register", passkeys::register),
        Endpoint::new(Method::GET, "/auth/passkeys", passkeys::list),
        Endpoint::new(Method::POST, "/auth/passkeys/login/options", passkeys::login_options),
        Endpoint::new(Method::POST, "/auth/passkeys/login", passkeys::login),
        // After the fixed paths under /auth/passkeys/, which it would take otherwise.
        Endpoint::new(Method::DELETE, "/auth/passkeys/{id}", passkeys::remove),
        Endpoint::new(Method::POST, "/auth/password/forgot", recovery::forgot),
        Endpoint::new(Method::POST, "/auth/password/reset", recovery::reset),
        Endpoint::new(Method::GET, "/auth/password/reset", recovery::reset_page),
        Endpoint::new(Method::GET, "/auth/pages/mail.js", recovery::pages_script),
        Endpoint::new(Method::POST, "/auth/email", email::change),
        Endpoint::new(Method::POST, "/auth/email/verify", email::verify),
        Endpoint::new(Method::GET, "/auth/email/verify", email::verify_page),
        Endpoint::new(Method::POST, "/auth/email/verify/resend", email::resend),
        Endpoint::new(Method::GET, "/auth/sessions", sessions::list),
        Endpoint::new(Method::DELETE, "/auth/sessions/{sid}", sessions::end),
        Endpoint::new(Method::GET, "/auth/revocations", revocations::revocations),
        Endpoint::new(Method::POST, "/auth/introspect", introspect::introspect),
        Endpoint::new(Method::GET, "/.well-known/jwks.json", jwks::jwks),
        Endpoint::new(Method::GET, "/.well-known/openid-configuration", discovery::openid_configuration),
        Endpoint::new(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            discovery::oauth_authorization_server,
        ),
        Endpoint::new(Method::GET, "/admin/users", admin::list),
        Endpoint::new(Method::POST, "/admin/users", admin::create),
        Endpoint::new(Method::GET, "/admin/users/{id}", admin::read),
        Endpoint::new(Method::PATCH, "/admin/users/{id}", admin::update),
        Endpoint::new(Method::DELETE, "/admin/users/{id}", admin::delete),
        Endpoint::new(Method::POST, "/admin/users/{id}/logout", admin::log_out),
        Endpoint::new(Method::DELETE, "/admin/users/{id}/mfa", admin::remove_mfa),
        Endpoint::new(Method::GET, "/admin/users/{id}/sessions", sessions::admin_list),
        Endpoint::new(Method::DELETE, "/admin/users/{id}/sessions/{sid}", sessions::admin_end),
        Endpoint::new(Method::GET, "/demo", demo::page),
        Endpoint::new(Method::GET, "/demo/tollgate-client.js", demo::client),
        Endpoint::new(Method::GET, "/openapi.json", openapi::openapi_json),
        Endpoint::new(Method::GET, "/docs", openapi::docs_page),
        Endpoint::new(Method::GET, "/docs/{file}", openapi::docs_file),
        Endpoint::new(Method::GET, "/healthz", health::healthz),
        Endpoint::new(Method::GET, "/readyz", health::readyz),
        Endpoint::new(Method::GET, "/metrics", metrics::metrics),
    ]
}

/// A JSON 405 that names the methods the path does take (RFC 9110 §15.5.6).
fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut response = ApiError::MethodNotAllowed.error_response();
    if let Ok(value) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

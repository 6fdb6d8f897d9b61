//! The OpenAPI 3.1 document, generated from the handlers' annotations and the request
//! and response types, so that it cannot drift from them; and Swagger UI over it, from
//! files built into the binary. Only the route table names this module; the routes name
//! its leaf, [`responses`].

use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use self::responses::{ErrorBody, ServerErrors};
use crate::http::ApiError;
use crate::http::middleware::page_policy;
use crate::http::routes::{
    admin, auth, demo, discovery, email, health, introspect, jwks, metrics, mfa, passkeys, recovery,
    revocations, sessions,
};

pub mod responses;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tollgate",
        description = "A stateless JWT authentication service. Every error, whatever its status, \
            has the body `{\"error\", \"code\"}`; any path answers 405 `method_not_allowed` to a \
            method it does not list, and an unknown path 404 `not_found`."
    ),
    paths(
        auth::signup,
        auth::login,
        mfa::second_step,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::change_password,
        mfa::setup,
        mfa::confirm,
        mfa::disable,
        mfa::recovery_codes,
        passkeys::register_options,
        passkeys::register,
        passkeys::list,
        passkeys::remove,
        passkeys::login_options,
        passkeys::login,
        recovery::forgot,
        recovery::reset,
        recovery::reset_page,
        recovery::pages_script,
        email::change,
        email::verify,
        email::verify_page,
        email::resend,
        sessions::list,
        sessions::end,
        admin::list,
        admin::create,
        admin::read,
        admin::update,
        admin::delete,
        admin::log_out,
        admin::remove_mfa,
        sessions::admin_list,
        sessions::admin_end,
        revocations::revocations,
        introspect::introspect,
        jwks::jwks,
        discovery::openid_configuration,
        discovery::oauth_authorization_server,
        health::healthz,
        health::readyz,
        metrics::metrics,
        demo::page,
        demo::client,
        openapi_json,
        docs_page,
        docs_file,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Accounts, sessions and tokens"),
        (name = "admin", description = "Account management, for access tokens with the `admin` role"),
        (name = "services", description = "For other services: keys, discovery, revocations, introspection"),
        (name = "operations", description = "Health checks, metrics, documentation and the demo page"),
    )
)]
pub struct ApiDoc;

/// `bearer`: a user's access token; `service_token`: `REVOCATION_FEED_TOKEN`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description = Some("An access token from signup, login or refresh".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut service = Http::new(HttpAuthScheme::Bearer);
        service.description = Some("The REVOCATION_FEED_TOKEN shared with other services".into());
        components.add_security_scheme("service_token", SecurityScheme::Http(service));
    }
}

/// The document, serialised once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serialises"));

/// Where Swagger UI finds the document.
static SWAGGER_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
    LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")));

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object),
        ServerErrors,
    ))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT.as_str())
}

/// What Swagger UI loads: its scripts from `/docs/` and nothing else (no inline script:
/// its configuration is a file too, `swagger-initializer.js`); its stylesheets, and the
/// `<style>` element its bundle adds at run time (styles cannot run code); the icons its
/// stylesheet has as `data:` URLs; this document and the API it tries out, from here.
static DOCS_POLICY: LazyLock<String> = LazyLock::new(|| {
    page_policy(
        "script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
    )
});

/// Swagger UI over this document.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses(
        (status = 200, description = "Swagger UI", content_type = "text/html", body = String),
        ServerErrors,
    ))]
pub async fn docs_page() -> Result<HttpResponse, ApiError> {
    // Swagger UI's page names its files relative to itself; `/docs` has no trailing slash,
    // so a base element puts them under `/docs/`.
    let page = swagger_file("index.html")?.ok_or_else(|| ApiError::internal("Swagger UI has no index"))?;
    let html = String::from_utf8_lossy(&page.bytes).replacen("<head>", r#"<head><base href="/docs/">"#, 1);
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCS_POLICY.as_str()))
        .body(html))
}

/// A file of Swagger UI (scripts, styles, icons).
#[utoipa::path(get, path = "/docs/{file}", tag = "operations",
    params(("file" = String, Path, example = "swagger-ui.css")),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = swagger_file(&file)?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().content_type(file.content_type).body(file.bytes.into_owned()))
}

fn swagger_file(path: &str) -> Result<Option<utoipa_swagger_ui::SwaggerFile<'static>>, ApiError> {
    utoipa_swagger_ui::serve(path, SWAGGER_CONFIG.clone())
        .map_err(|e| ApiError::internal(format!("Swagger UI: {e}")))
}

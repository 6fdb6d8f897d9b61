//! The OpenAPI 3.1 document, generated from the handlers' annotations and the request
//! and response types, so that it cannot drift from them; and Swagger UI over it, from
//! files built into the binary.

use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use super::{admin, auth, demo, discovery, health, introspect, jwks, metrics, revocations};
use crate::http::ApiError;
use crate::http::middleware::page_policy;

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
        auth::refresh,
        auth::logout,
        auth::me,
        auth::change_password,
        admin::list,
        admin::create,
        admin::read,
        admin::update,
        admin::delete,
        admin::log_out,
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

/// The body of every error response, whatever its status. The type that is sent is
/// `tollgate_verify::ErrorBody` (shared with the verifier crate, which knows nothing of
/// OpenAPI); a unit test below holds the two together.
#[derive(ToSchema)]
#[schema(example = json!({"error": "invalid or expired access token", "code": "invalid_token"}))]
#[allow(dead_code)]
pub struct ErrorBody {
    /// A human-readable message; never an internal detail.
    error: String,
    /// A stable snake_case code to program against.
    code: String,
}

// The error responses that several endpoints share, listed once.

/// Any request can meet these.
#[derive(IntoResponses)]
pub enum ServerErrors {
    /// `internal_error`: an unexpected failure; the body never says more.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// Endpoints that read the database.
#[derive(IntoResponses)]
pub enum DatabaseErrors {
    /// `database_unavailable`, or `overloaded` when every password-hashing slot stayed busy.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// Endpoints that read a JSON body.
#[derive(IntoResponses)]
pub enum JsonBodyErrors {
    /// `invalid_json`: the body is not JSON at all; `bad_request`: e.g. two
    /// `Authorization` headers.
    #[response(status = 400)]
    InvalidJson(ErrorBody),
    /// `payload_too_large`: over 64 KiB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// `unsupported_media_type`: not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// `validation_failed`: well-formed JSON that breaks a rule (missing field, too short…).
    #[response(status = 422)]
    Validation(ErrorBody),
}

/// Endpoints that take a bearer token.
#[derive(IntoResponses)]
pub enum BearerErrors {
    /// `bad_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Ambiguous(ErrorBody),
    /// `missing_token` or `invalid_token`, with an RFC 6750 challenge.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
}

/// The admin API.
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// `bad_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Ambiguous(ErrorBody),
    /// `missing_token` or `invalid_token`, with an RFC 6750 challenge.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
    /// `forbidden`: the token's roles do not contain `admin`.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The admin changes that can take an admin's rights away (roles, disabling, deletion).
#[derive(IntoResponses)]
pub enum LastAdminErrors {
    /// `last_admin`: the change would leave no enabled admin (make another one first).
    #[response(status = 409)]
    LastAdmin(ErrorBody),
}

/// Signup, login, password change, and refused refresh tokens (refresh, logout).
#[derive(IntoResponses)]
pub enum RateLimitErrors {
    /// `rate_limited`: too many attempts from this IP or for this username.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ErrorBody),
}

/// The endpoints that take the service token.
#[derive(IntoResponses)]
pub enum ServiceTokenErrors {
    /// `bad_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Ambiguous(ErrorBody),
    /// `missing_token` or `invalid_token`: not the configured service token.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
    /// `not_found`: no `REVOCATION_FEED_TOKEN` is configured, so the endpoint is off.
    #[response(status = 404)]
    Off(ErrorBody),
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
    let page =
        swagger_file("index.html")?.ok_or_else(|| ApiError::Internal("Swagger UI has no index".into()))?;
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
        .map_err(|e| ApiError::Internal(format!("Swagger UI: {e}")))
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    #[test]
    fn the_error_schema_describes_the_error_body_that_is_sent() {
        let sent = serde_json::to_value(tollgate_verify::ErrorBody::new("message", "code")).unwrap();
        let schema = serde_json::to_value(super::ErrorBody::schema()).unwrap();
        let members: Vec<&String> = sent.as_object().unwrap().keys().collect();
        let documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(members.len(), documented.len());
        for member in members {
            assert!(documented.contains(&member), "{member} is not documented");
            assert_eq!(schema["properties"][member]["type"], "string");
        }
        assert_eq!(schema["required"], serde_json::json!(["error", "code"]));
    }
}

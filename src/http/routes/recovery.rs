//! Password reset by mail: the request, the reset, and the page a mailed link opens; and
//! what every mailed link's page shares.

use actix_web::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{SignInResponse, respond_sign_in};
use crate::http::extract::client;
use crate::http::middleware::page_policy;
use crate::http::openapi::responses::{
    DatabaseErrors, ErrorBody, JsonBodyErrors, RateLimitErrors, ServerErrors,
};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
pub struct ForgotRequest {
    #[schema(format = Email, example = "alice@example.com")]
    email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// From the mailed link.
    #[schema(value_type = String)]
    token: SecretString,
    /// The same rules as at signup.
    #[schema(value_type = String, min_length = 8, max_length = 1024)]
    new_password: SecretString,
}

#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotRequest,
    responses(
        (status = 202, description = "Accepted, whether or not an account has the address: `{}`", body = Object),
        (status = 404, description = "`not_found`: mail is off (no `SMTP_URL`)", body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn forgot(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ForgotRequest>,
) -> Result<HttpResponse, ApiError> {
    state.core.sessions.forgot_password(&body.email, client(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({})))
}

#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 200, description = "The new password is set; a new session, or for an account with a second \
            factor the login's second step (`mfa_required`)", body = SignInResponse),
        (status = 401, description = "`invalid_reset_token`: unknown, used, replaced or expired", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 404, description = "`not_found`: mail is off", body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    let ResetRequest { token, new_password } = body.into_inner();
    let signed_in =
        state.core.sessions.reset_password(token.expose_secret(), new_password, client(&req)).await?;
    Ok(respond_sign_in(&req, &state, signed_in))
}

/// The page of a mailed reset link: a form that posts the new password with the token.
/// Opening it uses nothing (mail scanners open every link).
#[utoipa::path(get, path = "/auth/password/reset", tag = "auth",
    params(("token" = Option<String>, Query, description = "From the mailed link; read by the page's script")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "`not_found`: mail is off", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn reset_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    page(&state, include_str!("../pages/reset.html"))
}

/// The script of the mailed links' pages.
#[utoipa::path(get, path = "/auth/pages/mail.js", tag = "auth",
    responses(
        (status = 200, description = "An ES module", content_type = "text/javascript", body = String),
        ServerErrors,
    ))]
pub async fn pages_script() -> HttpResponse {
    HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(include_str!("../pages/mail.js"))
}

/// A page of a mailed link, while mail is on.
pub(super) fn page(state: &AppState, html: &'static str) -> Result<HttpResponse, ApiError> {
    if !state.core.sessions.mail_enabled() {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CONTENT_SECURITY_POLICY, page_policy("script-src 'self'; connect-src 'self'")))
        // The token is in the page's URL: no request the page makes may carry it along.
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .body(html))
}

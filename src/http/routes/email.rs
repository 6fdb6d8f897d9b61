//! Email verification and change: the link's use, its page, a new link, a new address.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;

use super::recovery::page;
use crate::auth::sessions::Caller;
use crate::auth::views::UserView;
use crate::http::extract::client;
use crate::http::openapi::responses::{
    BearerErrors, DatabaseErrors, ErrorBody, JsonBodyErrors, RateLimitErrors, ServerErrors,
};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// From the mailed link.
    #[schema(value_type = String)]
    token: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct EmailChangeRequest {
    /// The new address; it becomes the account's when the link mailed to it is used.
    #[schema(format = Email, max_length = 254, example = "alice@example.org")]
    email: String,
    #[schema(value_type = String)]
    current_password: SecretString,
}

#[utoipa::path(post, path = "/auth/email/verify", tag = "auth", request_body = VerifyRequest,
    responses(
        (status = 200, description = "The address the link was mailed to is the account's, verified", body = UserView),
        (status = 401, description = "`invalid_verification_token`: unknown, used, replaced or expired", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 404, description = "`not_found`: mail is off", body = ErrorBody),
        JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn verify(
    state: web::Data<AppState>,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let account = state.core.sessions.verify_email(body.token.expose_secret()).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&account)))
}

/// The page of a mailed verification link: a button that posts the token. Opening it
/// verifies nothing (mail scanners open every link).
#[utoipa::path(get, path = "/auth/email/verify", tag = "auth",
    params(("token" = Option<String>, Query, description = "From the mailed link; read by the page's script")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "`not_found`: mail is off", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn verify_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    page(&state, include_str!("../pages/verify.html"))
}

#[utoipa::path(post, path = "/auth/email/verify/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, description = "A new link is mailed to the caller's address, unless it is verified already or had one within `MAIL_COOLDOWN_SECS`: `{}`", body = Object),
        (status = 404, description = "`not_found`: mail is off", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the account has no address", body = ErrorBody),
        BearerErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn resend(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.core.sessions.resend_verification(&caller, client(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({})))
}

#[utoipa::path(post, path = "/auth/email", tag = "auth", request_body = EmailChangeRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A link is mailed to the new address and a notice to the old one: `{}`", body = Object),
        (status = 401, description = "No valid access token, or `invalid_credentials`: wrong current password",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`: mail is off", body = ErrorBody),
        BearerErrors, JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn change(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<EmailChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let EmailChangeRequest { email, current_password } = body.into_inner();
    state.core.sessions.request_email_change(&caller, &email, current_password, client(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({})))
}

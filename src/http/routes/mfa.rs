//! The second factor: TOTP set up, confirmed and removed, recovery codes, and the second
//! step of a login.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{TokenResponse, respond};
use crate::auth::sessions::Caller;
use crate::http::extract::client;
use crate::http::openapi::responses::{
    BearerErrors, DatabaseErrors, ErrorBody, JsonBodyErrors, RateLimitErrors, ServerErrors,
};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
pub struct SecondStepRequest {
    /// From the first step's answer.
    #[schema(value_type = String)]
    mfa_token: SecretString,
    /// A TOTP code (6 digits) or a recovery code.
    #[schema(value_type = String, example = "123456")]
    code: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct SetupRequest {
    #[schema(value_type = String)]
    current_password: SecretString,
    /// A code of the factor already active, if one is: needed to replace it.
    #[schema(value_type = Option<String>)]
    code: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// A TOTP code (6 digits); where the operation says so, a recovery code too.
    #[schema(value_type = String, example = "123456")]
    code: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct SetupResponse {
    /// Base32 (RFC 4648, no padding), for typing into an authenticator app.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    secret: String,
    /// For a QR code: `otpauth://totp/<APP_NAME>:<username>?secret=…&issuer=<APP_NAME>`.
    otpauth_uri: String,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten single-use codes, shown this once.
    #[schema(example = json!(["abcde-fghij"]))]
    recovery_codes: Vec<String>,
}

#[utoipa::path(post, path = "/auth/login/mfa", tag = "auth", request_body = SecondStepRequest,
    responses(
        (status = 200, description = "A new session, signed in with two factors", body = TokenResponse),
        (status = 401, description = "`invalid_mfa_token`: unknown, used, expired or dead after five wrong codes; \
            `invalid_mfa_code`: wrong, malformed or used", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn second_step(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SecondStepRequest>,
) -> Result<HttpResponse, ApiError> {
    let SecondStepRequest { mfa_token, code } = body.into_inner();
    let issued = state
        .core
        .sessions
        .log_in_second_step(mfa_token.expose_secret(), code.expose_secret(), client(&req))
        .await?;
    Ok(respond(&req, &state, HttpResponse::Ok(), issued))
}

#[utoipa::path(post, path = "/auth/mfa/totp/setup", tag = "auth", request_body = SetupRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A secret set up, active once confirmed; it replaces one set up before", body = SetupResponse),
        (status = 401, description = "No valid access token, `invalid_credentials` (wrong password), or \
            `invalid_mfa_code` (a factor is active and `code` is not a valid code of it)",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
        BearerErrors, JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn setup(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<SetupRequest>,
) -> Result<HttpResponse, ApiError> {
    let SetupRequest { current_password, code } = body.into_inner();
    let code = code.as_ref().map(|code| code.expose_secret());
    let set_up = state.core.sessions.totp_setup(&caller, current_password, code, client(&req)).await?;
    Ok(HttpResponse::Ok().json(SetupResponse { secret: set_up.secret, otpauth_uri: set_up.otpauth_uri }))
}

#[utoipa::path(post, path = "/auth/mfa/totp/confirm", tag = "auth", request_body = CodeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The factor is on: its recovery codes", body = RecoveryCodesResponse),
        (status = 401, description = "No valid access token, or `invalid_mfa_code`: not a code of the secret set up",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
        BearerErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn confirm(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let recovery_codes = state.core.sessions.totp_confirm(&caller, body.code.expose_secret()).await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesResponse { recovery_codes }))
}

#[utoipa::path(delete, path = "/auth/mfa/totp", tag = "auth", request_body = CodeRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The factor and its recovery codes are gone"),
        (status = 401, description = "No valid access token, or `invalid_mfa_code`: not a TOTP or recovery code of the factor",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
        BearerErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn disable(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.core.sessions.totp_disable(&caller, body.code.expose_secret()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "auth", request_body = CodeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new set; the old one stops working", body = RecoveryCodesResponse),
        (status = 401, description = "No valid access token, or `invalid_mfa_code`: not a TOTP or recovery code of the factor",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
        BearerErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn recovery_codes(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let recovery_codes = state.core.sessions.new_recovery_codes(&caller, body.code.expose_secret()).await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesResponse { recovery_codes }))
}

//! Passkeys (WebAuthn): registered by a signed-in user, listed and removed, and a sign-in
//! without a password. The options and answers are WebAuthn Level 3's JSON forms, so that
//! `PublicKeyCredential.parseCreationOptionsFromJSON` and the platform SDKs take them as
//! they are.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::auth::{TokenResponse, respond};
use crate::auth::Error;
use crate::auth::passkeys::{FlowStart, PasskeyInfo};
use crate::auth::sessions::Caller;
use crate::auth::views::rfc3339;
use crate::http::extract::client;
use crate::http::openapi::responses::{
    BearerErrors, DatabaseErrors, ErrorBody, JsonBodyErrors, RateLimitErrors, ServerErrors,
};
use crate::http::{ApiError, AppState};

#[derive(Serialize, ToSchema)]
pub struct PasskeyOptionsResponse {
    /// Names this ceremony in its answer; single-use, valid for 300 s.
    flow_id: Uuid,
    /// `PublicKeyCredentialCreationOptionsJSON` (registration) or
    /// `PublicKeyCredentialRequestOptionsJSON` (sign-in).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

impl From<FlowStart> for PasskeyOptionsResponse {
    fn from(started: FlowStart) -> Self {
        Self { flow_id: started.flow_id, public_key: started.public_key }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyRegisterRequest {
    flow_id: Uuid,
    /// `RegistrationResponseJSON`: what `navigator.credentials.create()` gave, `toJSON()`;
    /// one that is not of that form is an `invalid_passkey`.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// 1 to 64 characters; default `Passkey`.
    #[schema(example = "MacBook")]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyLoginRequest {
    flow_id: Uuid,
    /// `AuthenticationResponseJSON`: what `navigator.credentials.get()` gave, `toJSON()`;
    /// one that is not of that form is an `invalid_passkey`.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// A request without fields: `{}`.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyOptionsRequest {}

/// An authenticator's answer in webauthn-rs's form. The body's schema leaves its inside to
/// the WebAuthn specification, so an answer of another shape is refused as one that does
/// not hold, not as a body of the wrong shape.
fn answer<T: serde::de::DeserializeOwned>(credential: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(credential).map_err(|e| {
        log::info!("passkey refused: the credential is not a WebAuthn answer: {e}");
        ApiError::Core(Error::InvalidPasskey)
    })
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyView {
    id: Uuid,
    #[schema(example = "MacBook")]
    name: String,
    #[schema(format = DateTime, example = "2026-12-07T09:30:00Z")]
    created_at: String,
    /// `null` until its first sign-in.
    #[schema(format = DateTime, example = "2026-12-07T10:02:13Z")]
    last_used_at: Option<String>,
}

impl From<PasskeyInfo> for PasskeyView {
    fn from(info: PasskeyInfo) -> Self {
        Self {
            id: info.id,
            name: info.name,
            created_at: rfc3339(info.created_at),
            last_used_at: info.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    passkeys: Vec<PasskeyView>,
}

#[utoipa::path(post, path = "/auth/passkeys/register/options", tag = "auth", request_body = PasskeyOptionsRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A registration begun: a resident key, user verification required", body = PasskeyOptionsResponse),
        (status = 404, description = "`not_found`: passkeys are off (no domain name for the RP id)", body = ErrorBody),
        (status = 409, description = "`passkey_limit`: the account has 10 passkeys", body = ErrorBody),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn register_options(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = state.core.sessions.passkey_registration_options(&caller).await?;
    Ok(HttpResponse::Ok().json(PasskeyOptionsResponse::from(started)))
}

#[utoipa::path(post, path = "/auth/passkeys/register", tag = "auth", request_body = PasskeyRegisterRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The passkey is the caller's", body = PasskeyView),
        (status = 401, description = "No valid access token, or `invalid_passkey`: a wrong origin, RP id, \
            challenge, type or signature, or a flow unknown, used, expired or another user's",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`: passkeys are off", body = ErrorBody),
        (status = 409, description = "`passkey_limit`, or `passkey_exists`: registered already", body = ErrorBody),
        BearerErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn register(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<PasskeyRegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let PasskeyRegisterRequest { flow_id, credential, name } = body.into_inner();
    let credential: RegisterPublicKeyCredential = answer(credential)?;
    let added = state.core.sessions.register_passkey(&caller, flow_id, &credential, name.as_deref()).await?;
    Ok(HttpResponse::Created().json(PasskeyView::from(added)))
}

#[utoipa::path(get, path = "/auth/passkeys", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's passkeys", body = PasskeyList),
        (status = 404, description = "`not_found`: passkeys are off", body = ErrorBody),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let passkeys = state.core.sessions.passkeys(&caller).await?;
    Ok(HttpResponse::Ok()
        .json(PasskeyList { passkeys: passkeys.into_iter().map(PasskeyView::from).collect() }))
}

#[utoipa::path(delete, path = "/auth/passkeys/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The passkey's id")),
    responses(
        (status = 204, description = "The passkey is gone"),
        (status = 404, description = "`not_found`: no such passkey of the caller's, or passkeys are off", body = ErrorBody),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn remove(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.core.sessions.remove_passkey(&caller, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/auth/passkeys/login/options", tag = "auth", request_body = PasskeyOptionsRequest,
    responses(
        (status = 200, description = "A sign-in begun: any of this site's passkeys may answer", body = PasskeyOptionsResponse),
        (status = 404, description = "`not_found`: passkeys are off", body = ErrorBody),
        RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn login_options(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = state.core.sessions.passkey_login_options(&client(&req)).await?;
    Ok(HttpResponse::Ok().json(PasskeyOptionsResponse::from(started)))
}

#[utoipa::path(post, path = "/auth/passkeys/login", tag = "auth", request_body = PasskeyLoginRequest,
    responses(
        (status = 200, description = "A new session; `amr` `[\"hwk\",\"mfa\",\"user\"]`", body = TokenResponse),
        (status = 401, description = "`invalid_passkey`: a wrong origin, RP id, challenge, type or signature, \
            a sign counter that went backwards, an unknown credential, or a flow unknown, used or expired",
            body = ErrorBody),
        (status = 403, description = "`account_disabled`, or `email_not_verified`", body = ErrorBody),
        (status = 404, description = "`not_found`: passkeys are off", body = ErrorBody),
        JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<PasskeyLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let PasskeyLoginRequest { flow_id, credential } = body.into_inner();
    let credential: PublicKeyCredential = answer(credential)?;
    let issued = state.core.sessions.log_in_with_passkey(flow_id, &credential, client(&req)).await?;
    Ok(respond(&req, &state, HttpResponse::Ok(), issued))
}

//! Signup, login, refresh, logout, the current user and password change.

use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::sessions::{Caller, Issued, LogoutBy, LogoutScope, SignIn, SignUp};
use crate::auth::views::UserView;
use crate::http::cookie;
use crate::http::extract::{bearer_token, caller, client, json_body};
use crate::http::openapi::responses::{
    BearerErrors, DatabaseErrors, ErrorBody, JsonBodyErrors, RateLimitErrors, ServerErrors,
};
use crate::http::{ApiError, AppState};

// The length and pattern constraints below repeat the account rules (`auth::rules`) for
// the OpenAPI document; a test (`tests/api/openapi.rs`) holds the two together.

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    /// Stored lower-case; unique regardless of case.
    #[schema(min_length = 1, max_length = 150, pattern = "^[A-Za-z0-9@.+_-]*$", example = "alice")]
    username: String,
    /// Counted in the characters typed (Unicode code points, as `minLength` and
    /// `maxLength` count them); NFKC-normalised for hashing only, never truncated.
    #[schema(value_type = String, min_length = 8, max_length = 1024, example = "correct horse battery staple")]
    password: SecretString,
    /// Stored lower-case.
    #[schema(format = Email, max_length = 254, example = "alice@example.com")]
    email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "alice")]
    username: String,
    #[schema(value_type = String, example = "correct horse battery staple")]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(example = "tgr_Zr6cJ0Cqk3dVb2o5yR8Xw1mN4pL7sT9uQeA2fH6jK0g")]
    refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LogoutRequest {
    /// Without a bearer token (and for a browser in cookie mode, without the cookie): the
    /// refresh token of the session.
    refresh_token: Option<String>,
    /// Which sessions end: `local` (the presented token's, the default), `others` (every
    /// other session of the user) or `global` (all of them).
    #[serde(default)]
    #[schema(required = false)]
    scope: Scope,
}

/// `LogoutRequest::scope`.
#[derive(Deserialize, Default, Clone, Copy, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Local,
    Others,
    Global,
}

impl From<Scope> for LogoutScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Local => LogoutScope::Local,
            Scope::Others => LogoutScope::Others,
            Scope::Global => LogoutScope::Global,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(value_type = String)]
    current_password: SecretString,
    /// The same rules as at signup.
    #[schema(value_type = String, min_length = 8, max_length = 1024)]
    new_password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWS (`typ: at+jwt`) signed with `JWT_ALGORITHM`.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: i64,
    /// Absent for browsers in cookie mode: there it travels only in the HttpOnly cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    #[schema(example = 2592000)]
    refresh_expires_in: i64,
    user: UserView,
}

impl TokenResponse {
    fn new(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: Some(issued.refresh_token.as_str().to_owned()),
            refresh_expires_in: issued.refresh_expires_in,
            user: UserView::from(&issued.account),
        }
    }
}

/// The first step of a login to an account with a second factor: no tokens yet.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always `true`: tell this answer from a token response by it.
    #[schema(example = true)]
    mfa_required: bool,
    /// For `POST /auth/login/mfa`: single-use, dead after five wrong codes.
    #[schema(example = "tgf_…")]
    mfa_token: String,
    /// What the second step takes.
    #[schema(example = json!(["totp", "recovery_code"]))]
    methods: [&'static str; 2],
    /// Seconds the `mfa_token` lives.
    #[schema(example = 300)]
    expires_in: i64,
}

/// What a sign-in with the right password answers: a session, or the second step.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInResponse {
    Session(TokenResponse),
    SecondFactor(MfaRequiredResponse),
}

/// A sign-in's answer: [`respond`] with a session, else the second step's challenge.
pub(super) fn respond_sign_in(req: &HttpRequest, state: &AppState, signed_in: SignIn) -> HttpResponse {
    match signed_in {
        SignIn::Session(issued) => respond(req, state, HttpResponse::Ok(), *issued),
        SignIn::SecondFactor(challenge) => {
            HttpResponse::Ok().json(SignInResponse::SecondFactor(MfaRequiredResponse {
                mfa_required: true,
                mfa_token: challenge.mfa_token.as_str().to_owned(),
                methods: ["totp", "recovery_code"],
                expires_in: challenge.expires_in,
            }))
        }
    }
}

/// The token response, with the refresh token in the JSON or, for a browser in cookie
/// mode, in the `tollgate_refresh` cookie only.
pub(super) fn respond(
    req: &HttpRequest,
    state: &AppState,
    mut response: HttpResponseBuilder,
    issued: Issued,
) -> HttpResponse {
    let mut body = TokenResponse::new(issued);
    if state.cookie_mode().is_browser(req)
        && let Some(token) = body.refresh_token.take()
    {
        response.cookie(cookie::refresh_cookie(token, body.refresh_expires_in));
    }
    response.json(body)
}

#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, description = "The account and its first session", body = TokenResponse),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let SignupRequest { username, password, email } = body.into_inner();
    let issued = state.core.sessions.sign_up(SignUp { username, password, email }, client(&req)).await?;
    Ok(respond(&req, &state, HttpResponse::Created(), issued))
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session; for an account with a second factor, `mfa_required` and \
            the `mfa_token` of the second step (`POST /auth/login/mfa`) instead", body = SignInResponse),
        (status = 401, description = "`invalid_credentials`: unknown user or wrong password alike", body = ErrorBody),
        (status = 403, description = "The password was right, but `account_disabled`: the account is disabled, or \
            `email_not_verified` (`EMAIL_VERIFICATION=required`): its address is not verified, and a new link is mailed",
            body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let signed_in = state.core.sessions.log_in(&username, password, client(&req)).await?;
    Ok(respond_sign_in(&req, &state, signed_in))
}

/// The refresh token a request presents: the cookie (cookie mode, browsers), else the
/// JSON body's `refresh_token`; `None` for a browser without the cookie, whose refresh
/// token lives there only.
fn presented_refresh_token(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let cookie_mode = state.cookie_mode();
    match cookie_mode.presented_token(req) {
        Some(cookie) => Ok(Some(cookie)),
        None if cookie_mode.is_browser(req) => Ok(None),
        None => Ok(Some(json_body::<RefreshRequest>(req, body)?.refresh_token)),
    }
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "The rotated pair", body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`", body = ErrorBody),
        (status = 403, description = "`csrf_rejected` (cookie mode)", body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let presented = presented_refresh_token(&req, &state, &body)?;
    let issued = state.core.sessions.refresh(presented.as_deref(), client(&req)).await?;
    Ok(respond(&req, &state, HttpResponse::Ok(), issued))
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    request_body(content = Option<LogoutRequest>,
        description = "The scope; without a bearer token, also the refresh token"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Logged out; the ended sessions' access tokens are refused"),
        BearerErrors, JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
        (status = 401, description = "No token, or an invalid access or refresh token", body = ErrorBody),
    ))]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let sessions = &state.core.sessions;
    let cookie_mode = state.cookie_mode();
    let cookie = cookie_mode.presented_token(&req);
    // No body, or `null`, is the default scope.
    let request: Option<LogoutRequest> = if body.is_empty() { None } else { json_body(&req, &body)? };
    let request = request.unwrap_or_default();
    let scope: LogoutScope = request.scope.into();
    if bearer_token(&req)?.is_some() {
        sessions.log_out(LogoutBy::Caller(&caller(&req).await?), scope, client(&req)).await?;
    } else if let Some(cookie) = &cookie {
        sessions.log_out(LogoutBy::Cookie(cookie), scope, client(&req)).await?;
    } else if body.is_empty() {
        return Err(ApiError::MissingToken);
    } else {
        // A browser's refresh token lives in the cookie only: one in its body is none.
        let token = match request.refresh_token {
            _ if cookie_mode.is_browser(&req) => String::new(),
            Some(token) => token,
            None => return Err(ApiError::Validation("missing field `refresh_token`".into())),
        };
        sessions.log_out(LogoutBy::RefreshToken(&token), scope, client(&req)).await?;
    }
    let mut response = HttpResponse::NoContent();
    // The presented session goes on when only the others end.
    if cookie.is_some() && scope != LogoutScope::Others {
        response.cookie(cookie::cleared_cookie());
    }
    Ok(response.finish())
}

#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn me(caller: Caller) -> HttpResponse {
    // From the cached account, which every change of roles evicts.
    HttpResponse::Ok().json(UserView::from(&*caller.account))
}

#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordChangeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new session", body = TokenResponse),
        BearerErrors, JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
        (status = 401, description = "No valid access token, or `invalid_credentials`: wrong current password",
            body = ErrorBody, headers(("WWW-Authenticate" = String))),
    ))]
pub async fn change_password(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<PasswordChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChangeRequest { current_password, new_password } = body.into_inner();
    let issued =
        state.core.sessions.change_password(&caller, current_password, new_password, client(&req)).await?;
    Ok(respond(&req, &state, HttpResponse::Ok(), issued))
}

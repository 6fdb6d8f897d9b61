//! Signup, login, refresh, logout, the current user and password change.

use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::NaiveDateTime;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::password::{Verified, normalize};
use crate::auth::refresh::{IssuedRefresh, RefreshToken, Rotation};
use crate::auth::rules::{validate_email, validate_username};
use crate::db::accounts::{Account, NewAccount, roles_of};
use crate::db::{
    self,
    models::{SessionChange, User, tokens_valid_after},
};
use crate::http::cookie;
use crate::http::extract::{
    authenticate, bearer_token, json_body, login_limit, rate_limit, refused_refresh_token,
};
use crate::http::metrics::{LoginResult, RefreshResult};
use crate::http::routes::openapi::{
    BearerErrors, DatabaseErrors, ErrorBody, JsonBodyErrors, RateLimitErrors, ServerErrors,
};
use crate::http::{ApiError, AppState, CurrentUser};

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

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(value_type = String)]
    current_password: SecretString,
    /// The same rules as at signup.
    #[schema(value_type = String, min_length = 8, max_length = 1024)]
    new_password: SecretString,
}

/// The public view of a user: never a hash of any kind.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: Uuid,
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "alice@example.com")]
    email: Option<String>,
    /// Sorted.
    roles: Vec<String>,
    /// RFC 3339, UTC, whole seconds.
    #[schema(format = DateTime, example = "2026-11-24T22:13:15Z")]
    created_at: String,
}

impl UserView {
    pub fn new(user: &User, roles: &[String]) -> Self {
        Self {
            id: user.id.0,
            username: user.username.clone(),
            email: user.email.clone(),
            roles: roles.to_vec(),
            created_at: user.created_at.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }
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

/// The token response, with the refresh token in the JSON or, for a browser in cookie
/// mode, in the `tollgate_refresh` cookie only.
fn respond(
    req: &HttpRequest,
    state: &AppState,
    mut response: HttpResponseBuilder,
    issued: &IssuedRefresh,
    now: NaiveDateTime,
) -> HttpResponse {
    let mut body = token_response(state, issued, now);
    if state.cookie_mode.is_browser(req)
        && let Some(token) = body.refresh_token.take()
    {
        response.cookie(cookie::refresh_cookie(token, body.refresh_expires_in));
    }
    response.json(body)
}

fn token_response(state: &AppState, issued: &IssuedRefresh, now: NaiveDateTime) -> TokenResponse {
    let user = &issued.user;
    TokenResponse {
        access_token: state.tokens.issue(
            user.id.0,
            &user.username,
            &issued.roles,
            now.and_utc().timestamp(),
            user.tokens_valid_after,
        ),
        token_type: "Bearer",
        expires_in: state.tokens.ttl_secs(),
        refresh_token: Some(issued.token.as_str().to_owned()),
        refresh_expires_in: (issued.expires_at - now).num_seconds().max(0),
        user: UserView::new(user, &issued.roles),
    }
}

/// What a new session does to the stored password hash.
enum PasswordUpdate {
    Keep,
    /// The login verified an imported Django hash: store tollgate's argon2id instead, if
    /// the stored hash is still the one verified (a compare-and-set, so that a password
    /// changed meanwhile is not overwritten).
    Rehash {
        verified: String,
        rehashed: String,
    },
    /// A password change: the new hash, and every access token issued so far is revoked.
    Change(String),
}

/// Starts a new refresh session for the user, replacing any previous one. `None` when a
/// rehash found the password changed since it was verified.
async fn start_session(
    state: &web::Data<AppState>,
    mut user: User,
    password: PasswordUpdate,
) -> Result<Option<(IssuedRefresh, NaiveDateTime)>, ApiError> {
    let now = state.clock.now().naive_utc();
    // A password change also revokes the access tokens issued before it.
    if matches!(password, PasswordUpdate::Change(_)) {
        user.tokens_valid_after = Some(tokens_valid_after(now, user.tokens_valid_after));
    }
    let valid_after = user.tokens_valid_after;
    let token = RefreshToken::mint();
    let expires_at = state.sessions.expiry(now);
    let hash = token.hash();
    let user_id = user.id.0;
    let roles = db::run_write(&state.pool, move |conn| {
        let change = SessionChange::start(&hash, expires_at, now);
        let started = match &password {
            PasswordUpdate::Keep => User::set_session(conn, user_id, &change).map(|()| true),
            PasswordUpdate::Rehash { verified, rehashed } => {
                User::rehash_and_set_session(conn, user_id, verified, rehashed, &change)
            }
            PasswordUpdate::Change(new_hash) => {
                let change = change.revoking_access_tokens(valid_after.unwrap_or_default());
                User::set_password_and_session(conn, user_id, new_hash, &change).map(|()| true)
            }
        }?;
        started.then(|| roles_of(conn, user_id)).transpose()
    })
    .await?;
    Ok(roles.map(|roles| (IssuedRefresh { user, roles, token, expires_at }, now)))
}

/// Creates an account and starts its session.
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
    rate_limit(&req, &state).await?;
    let body = body.into_inner();
    let username = validate_username(&body.username)?;
    let email = validate_email(body.email.as_deref())?;
    let password = normalize(&body.password).map_err(|e| ApiError::Validation(e.to_string()))?;
    let password_hash = state.passwords.hash(password).await?;

    let now = state.clock.now().naive_utc();
    let token = RefreshToken::mint();
    let expires_at = state.sessions.expiry(now);
    // Only the configured defaults: a signup never chooses its own roles.
    let mut new = NewAccount::new(username, email, password_hash, state.default_roles.clone(), now);
    // The session starts with the account.
    new.user.refresh_token_hash = Some(token.hash());
    new.user.refresh_token_expires_at = Some(expires_at);
    let Account { user, roles } = db::run_write(&state.pool, move |conn| Account::insert(conn, new)).await?;
    state.metrics.signup();
    log::info!("signup user_id={}", user.id.0);
    let issued = IssuedRefresh { user, roles, token, expires_at };
    Ok(respond(&req, &state, HttpResponse::Created(), &issued, now))
}

/// Starts a new session, replacing the previous one.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`: unknown user or wrong password alike", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the password was right, the account is disabled",
            body = ErrorBody),
        JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let metrics = state.clone();
    let result = log_in(req, state, body).await;
    metrics.metrics.login(LoginResult::of(&result));
    result
}

async fn log_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let attempt = login_limit(&req, &state, &body.username).await?;
    // An impossible username is looked up no further, but still costs one hash below.
    let user = match validate_username(&body.username) {
        Ok(username) => db::run(&state.pool, move |conn| User::find_by_username(conn, &username)).await?,
        Err(_) => None,
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state.passwords.verify(body.password, stored).await?;
    if !verified.matches() {
        state.limits.login_failed(&attempt).await?;
        match &user {
            Some(user) => log::info!("login failed user_id={}", user.id.0),
            None => log::info!("login failed for an unknown username"),
        }
        return Err(ApiError::InvalidCredentials);
    }
    let user = user.ok_or(ApiError::InvalidCredentials)?;
    state.limits.login_succeeded(&attempt).await?;
    // Told only to someone who knows the password, so it reveals nothing to a guesser.
    if user.disabled {
        log::info!("login refused, account disabled user_id={}", user.id.0);
        return Err(ApiError::AccountDisabled);
    }
    let password = match verified {
        Verified::YesRehashed(rehashed) => {
            PasswordUpdate::Rehash { verified: user.password_hash.clone(), rehashed }
        }
        _ => PasswordUpdate::Keep,
    };
    let rehashed = matches!(password, PasswordUpdate::Rehash { .. });
    // The password verified is no longer the account's: it changed during the check.
    let Some((issued, now)) = start_session(&state, user, password).await? else {
        return Err(ApiError::InvalidCredentials);
    };
    // The row just read may be newer than the cached one (say, an account re-enabled
    // from the command line): the new token must not meet the old row.
    state.users.evict(issued.user.id.0);
    if rehashed {
        log::info!("imported password hash replaced by argon2id user_id={}", issued.user.id.0);
    }
    log::info!("login user_id={}", issued.user.id.0);
    Ok(respond(&req, &state, HttpResponse::Ok(), &issued, now))
}

/// The refresh token a request presents: the cookie (cookie mode, browsers), else the
/// JSON body's `refresh_token`.
fn presented_refresh_token(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<RefreshToken, ApiError> {
    let raw = match state.cookie_mode.presented_token(req) {
        Some(cookie) => cookie,
        // A browser's refresh token lives only in the cookie: without it, it has none.
        None if state.cookie_mode.is_browser(req) => return Err(ApiError::InvalidRefreshToken),
        None => json_body::<RefreshRequest>(req, body)?.refresh_token,
    };
    RefreshToken::parse(&raw).ok_or(ApiError::InvalidRefreshToken)
}

/// Trades a refresh token for a new pair; the old refresh token stops working. In cookie
/// mode a browser sends no body: the `tollgate_refresh` cookie carries the token.
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
    let metrics = state.clone();
    let result = rotate(req, state, body).await;
    metrics.metrics.refresh(RefreshResult::of(&result));
    result
}

async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // A value that is not even a refresh token costs no database query.
    let presented = match presented_refresh_token(&req, &state, &body) {
        Err(ApiError::InvalidRefreshToken) => return Err(refused_refresh_token(&req, &state)),
        other => other?,
    };
    let now = state.clock.now().naive_utc();
    let batched = match state.pool.rotations() {
        Some(rotations) => state.sessions.rotate_live_in_batch(rotations, &presented, now).await?,
        None => None,
    };
    let rotation = match batched {
        Some(issued) => Rotation::Rotated(Box::new(issued)),
        None => {
            let task_state = state.clone();
            db::run_write(&state.pool, move |conn| task_state.sessions.rotate(conn, &presented, now)).await?
        }
    };
    match rotation {
        Rotation::Rotated(issued) => Ok(respond(&req, &state, HttpResponse::Ok(), &issued, now)),
        Rotation::Revoked(user_id) => {
            state.metrics.refresh_reuse_detected();
            state.users.evict(user_id);
            Err(refused_refresh_token(&req, &state))
        }
        Rotation::Refused => Err(refused_refresh_token(&req, &state)),
    }
}

/// Ends the session. A bearer access token identifies the user; without one, the refresh
/// token (cookie or body) does. Access tokens issued so far are revoked with it.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Without a bearer token: the refresh token"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Logged out; access tokens issued so far are revoked"),
        BearerErrors, JsonBodyErrors, RateLimitErrors, DatabaseErrors, ServerErrors,
        (status = 401, description = "No token, or an invalid access or refresh token", body = ErrorBody),
    ))]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now().naive_utc();
    let cookie = state.cookie_mode.presented_token(&req);
    let user = if bearer_token(&req)?.is_some() {
        let account = authenticate(&req).await?.account;
        let user_id = account.user.id.0;
        let revoked = SessionChange::revoked(now, &account.user);
        db::run_write(&state.pool, move |conn| User::set_session(conn, user_id, &revoked)).await?;
        user_id
    } else {
        if body.is_empty() && cookie.is_none() {
            return Err(ApiError::MissingToken);
        }
        let presented = presented_refresh_token(&req, &state, &body);
        let task_state = state.clone();
        let revoked = match presented {
            Ok(token) => {
                db::run_write(&state.pool, move |conn| task_state.sessions.revoke(conn, &token, now))
                    .await?
                    .ok_or(ApiError::InvalidRefreshToken)
            }
            Err(e) => Err(e),
        };
        match revoked {
            Ok(user) => user.id.0,
            // A browser logging out with a dead cookie is logged out already: clear it.
            Err(ApiError::InvalidRefreshToken) if cookie.is_some() => {
                return Ok(HttpResponse::NoContent().cookie(cookie::cleared_cookie()).finish());
            }
            Err(ApiError::InvalidRefreshToken) => return Err(refused_refresh_token(&req, &state)),
            Err(e) => return Err(e),
        }
    };
    state.users.evict(user);
    log::info!("logout user_id={user}");
    let mut response = HttpResponse::NoContent();
    if cookie.is_some() {
        response.cookie(cookie::cleared_cookie());
    }
    Ok(response.finish())
}

/// The caller's user object.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn me(caller: CurrentUser) -> HttpResponse {
    // From the cached account: every change of roles evicts it (`UserCache::evict`).
    let Account { user, roles } = &*caller.account;
    HttpResponse::Ok().json(UserView::new(user, roles))
}

/// Changes the password and starts a new session; the old refresh token stops working.
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
    caller: CurrentUser,
    state: web::Data<AppState>,
    body: web::Json<PasswordChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, &state).await?;
    let body = body.into_inner();
    let new_password = normalize(&body.new_password).map_err(|e| ApiError::Validation(format!("new {e}")))?;
    // The current row, not the cached one: its password hash is what must match.
    let user_id = caller.account.user.id.0;
    let user =
        db::run(&state.pool, move |conn| User::find(conn, user_id)).await?.ok_or(ApiError::InvalidToken)?;
    if !state.passwords.verify(body.current_password, Some(user.password_hash.clone())).await?.matches() {
        log::info!("password change refused user_id={}", user.id.0);
        return Err(ApiError::WrongCurrentPassword);
    }
    let new_hash = state.passwords.hash(new_password).await?;
    let (issued, now) = start_session(&state, user, PasswordUpdate::Change(new_hash))
        .await?
        .ok_or_else(|| ApiError::Internal("a password change is unconditional".into()))?;
    state.users.evict(issued.user.id.0);
    log::info!("password changed user_id={}", issued.user.id.0);
    Ok(respond(&req, &state, HttpResponse::Ok(), &issued, now))
}

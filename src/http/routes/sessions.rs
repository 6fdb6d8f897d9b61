//! The caller's sessions ("your devices"), and the administrator's view of a user's.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::sessions::Caller;
use crate::auth::views::rfc3339;
use crate::db::sessions::SessionInfo;
use crate::http::extract::Admin;
use crate::http::openapi::responses::{AdminErrors, BearerErrors, DatabaseErrors, ErrorBody, ServerErrors};
use crate::http::{ApiError, AppState};

/// A session, as its user sees it listed.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The access tokens' `sid`.
    id: Uuid,
    /// RFC 3339, UTC, whole seconds (as every time of the API).
    #[schema(format = DateTime, example = "2026-12-07T09:30:00Z")]
    created_at: String,
    #[schema(format = DateTime, example = "2026-12-07T10:02:13Z")]
    last_used_at: String,
    /// When its refresh token expires unless it is used.
    #[schema(format = DateTime, example = "2027-01-06T10:02:13Z")]
    expires_at: String,
    /// The `User-Agent` of the login, as given (capped), never interpreted.
    user_agent: Option<String>,
    /// The client address of the login.
    #[schema(example = "203.0.113.7")]
    ip: Option<String>,
    /// Whether the bearer token presented belongs to it; absent in the admin's view.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    current: Option<bool>,
}

impl SessionView {
    fn new(session: SessionInfo, current: Option<Uuid>, with_current: bool) -> Self {
        Self {
            id: session.id,
            created_at: rfc3339(session.created_at),
            last_used_at: rfc3339(session.last_used_at),
            expires_at: rfc3339(session.expires_at),
            user_agent: session.user_agent,
            ip: session.ip,
            current: with_current.then_some(current == Some(session.id)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Most recently used first.
    sessions: Vec<SessionView>,
}

impl SessionList {
    fn new(sessions: Vec<SessionInfo>, current: Option<Uuid>, with_current: bool) -> Self {
        Self { sessions: sessions.into_iter().map(|s| SessionView::new(s, current, with_current)).collect() }
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct SessionId {
    /// A session id (`sid`).
    sid: Uuid,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct UserSessionId {
    /// A user id.
    id: Uuid,
    /// One of the user's session ids.
    sid: Uuid,
}

/// A path id that is not a uuid names no session (nor user).
fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions", body = SessionList),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sessions = state.core.sessions.sessions_of(caller.account.id).await?;
    Ok(HttpResponse::Ok().json(SessionList::new(sessions, caller.claims.sid, true)))
}

#[utoipa::path(delete, path = "/auth/sessions/{sid}", tag = "auth", params(SessionId), security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended: its refresh token and access tokens are refused"),
        (status = 404, description = "`not_found`: not a live session of the caller", body = ErrorBody),
        BearerErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn end(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.core.sessions.end_session(caller.account.id, path_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's live sessions", body = SessionList),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        AdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn admin_list(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.core.accounts.sessions(path_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(SessionList::new(sessions, None, false)))
}

#[utoipa::path(delete, path = "/admin/users/{id}/sessions/{sid}", tag = "admin", params(UserSessionId),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended: its refresh token and access tokens are refused"),
        (status = 404, description = "`not_found`: no such user, or not a live session of the user",
            body = ErrorBody),
        AdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn admin_end(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sid) = path.into_inner();
    state.core.accounts.end_session(admin.actor(), path_id(&id)?, path_id(&sid)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

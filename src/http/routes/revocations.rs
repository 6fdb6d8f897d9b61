//! The revocation feed: which users' access tokens died early, for services that verify
//! tokens themselves (`tollgate-verify` polls it).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::models::UnixMillis;
use crate::http::extract::ServiceCaller;
use crate::http::openapi::responses::{DatabaseErrors, ErrorBody, ServerErrors, ServiceTokenErrors};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `now` of the previous response (unix seconds); 0 or absent at first.
    #[serde(default)]
    since: i64,
}

/// Reject a token of `sub` issued before `not_before_ms`: one whose `jti` is a UUIDv7
/// with an earlier timestamp; for a token whose `jti` is not (issued by a tollgate before
/// the millisecond revocation times), one whose `iat` is before `not_before`.
#[derive(Serialize, ToSchema)]
pub struct Revocation {
    sub: Uuid,
    /// Present when only this session's tokens are revoked (a session ended on its own);
    /// absent, every session's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    sid: Option<Uuid>,
    /// Unix seconds: `not_before_ms` rounded up, so that a consumer that compares `iat`
    /// alone refuses every token issued before; it may also refuse one issued after, in
    /// the same second (its holder's next refresh gets a token it accepts).
    #[schema(example = 1764636301)]
    not_before: i64,
    /// Unix milliseconds, exact: what the `jti`'s timestamp is compared with.
    #[schema(example = 1764636300123_i64)]
    not_before_ms: i64,
}

impl Revocation {
    fn new(sub: Uuid, sid: Option<Uuid>, at: UnixMillis) -> Self {
        Self { sub, sid, not_before: at.ceil_seconds(), not_before_ms: at.0 }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Feed {
    revocations: Vec<Revocation>,
    /// Unix seconds; pass it as the next `since`.
    now: i64,
}

/// The users and sessions whose access tokens were revoked after `since`, deleted users
/// included.
#[utoipa::path(get, path = "/auth/revocations", tag = "services", params(FeedQuery),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "Revocations after `since`", body = Feed),
        (status = 422, description = "`validation_failed`: `since` is not a whole number", body = ErrorBody),
        ServiceTokenErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn revocations(
    _caller: ServiceCaller,
    state: web::Data<AppState>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let (revocations, now) = state.core.sessions.revocations(query.since).await?;
    Ok(HttpResponse::Ok().json(Feed {
        revocations: revocations.into_iter().map(|r| Revocation::new(r.sub, r.sid, r.not_before)).collect(),
        now,
    }))
}

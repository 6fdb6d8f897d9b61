//! The revocation feed: which users' access tokens died early, for services that verify
//! tokens themselves (`tollgate-verify` polls it).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

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

/// Reject a token of `sub` whose `iat` is before `not_before`.
#[derive(Serialize, ToSchema)]
pub struct Revocation {
    sub: Uuid,
    /// Unix seconds.
    not_before: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Feed {
    revocations: Vec<Revocation>,
    /// Unix seconds; pass it as the next `since`.
    now: i64,
}

/// The users whose access tokens were revoked after `since`.
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
        revocations: revocations
            .into_iter()
            .map(|r| Revocation { sub: r.sub, not_before: r.not_before })
            .collect(),
        now,
    }))
}

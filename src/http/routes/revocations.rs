//! The revocation feed: which users' access tokens died early, for services that verify
//! tokens themselves (`tollgate-verify` polls it).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::{self, models::User};
use crate::http::extract::ServiceCaller;
use crate::http::routes::openapi::{DatabaseErrors, ErrorBody, ServerErrors, ServiceTokenErrors};
use crate::http::{ApiError, AppState};

/// The `now` of a response lags the clock by this much, so that a revocation still being
/// committed when the feed was read is listed again by the next poll instead of missed.
const WATERMARK_LAG_SECS: i64 = 5;

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
    let now = state.clock.unix();
    // Older revocations cover only tokens that have expired anyway.
    let since = query.since.max(now - state.tokens.max_token_age_secs());
    let rows = db::run(&state.pool, move |conn| User::revoked_since(conn, since)).await?;
    Ok(HttpResponse::Ok().json(Feed {
        revocations: rows.into_iter().map(|(id, at)| Revocation { sub: id.0, not_before: at }).collect(),
        now: now - WATERMARK_LAG_SECS,
    }))
}

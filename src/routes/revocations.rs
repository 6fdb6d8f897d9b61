//! The revocation feed: which users' access tokens died early, for services that verify
//! tokens themselves (`tollgate-verify` polls it).

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::extractor::ServiceCaller;
use crate::db::{self, models::User};
use crate::error::ApiError;
use crate::startup::AppState;

/// The `now` of a response lags the clock by this much, so that a revocation still being
/// committed when the feed was read is listed again by the next poll instead of missed.
const WATERMARK_LAG_SECS: i64 = 5;

#[derive(Deserialize)]
pub struct FeedQuery {
    #[serde(default)]
    since: i64,
}

#[derive(Serialize)]
struct Revocation {
    sub: Uuid,
    not_before: i64,
}

#[derive(Serialize)]
struct Feed {
    revocations: Vec<Revocation>,
    now: i64,
}

pub async fn revocations(
    _caller: ServiceCaller,
    state: web::Data<AppState>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now().timestamp();
    // Older revocations cover only tokens that have expired anyway.
    let since = query.since.max(now - state.tokens.max_token_age_secs());
    let rows = db::run(&state.pool, move |conn| User::revoked_since(conn, since)).await?;
    Ok(HttpResponse::Ok().json(Feed {
        revocations: rows.into_iter().map(|(id, at)| Revocation { sub: id.0, not_before: at }).collect(),
        now: now - WATERMARK_LAG_SECS,
    }))
}

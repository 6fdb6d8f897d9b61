//! The revocation feed: which users' access tokens died early, for services that verify
//! tokens themselves (`tollgate-verify` polls it).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{self, models::User};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::bearer_token;

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
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(expected) = &state.revocation_feed_token else {
        return Err(ApiError::NotFound);
    };
    let presented = bearer_token(&req)?.ok_or(ApiError::MissingToken)?;
    if !constant_time_eq(presented.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(ApiError::InvalidToken);
    }
    let now = state.clock.unix();
    // Older revocations cover only tokens that have expired anyway.
    let since = query.since.max(now - state.tokens.max_token_age_secs());
    let rows = db::run(&state.pool, move |conn| User::revoked_since(conn, since)).await?;
    Ok(HttpResponse::Ok().json(Feed {
        revocations: rows.into_iter().map(|(id, at)| Revocation { sub: id.0, not_before: at }).collect(),
        now: now - WATERMARK_LAG_SECS,
    }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

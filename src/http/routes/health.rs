use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::{self, models::User};
use crate::http::ApiError;
use crate::http::AppState;

/// The process is alive; says nothing about its dependencies.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database answers a query on the schema.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Any failure means not ready, whatever its kind.
    db::run(&state.pool, User::ping).await.map_err(|e| ApiError::DatabaseUnavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

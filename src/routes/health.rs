use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::{self, models::User};
use crate::error::ApiError;
use crate::startup::AppState;

/// The process is alive; says nothing about its dependencies.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database answers a query on the schema.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::run(&state.pool, User::ping).await.map_err(|e| match e {
        ApiError::DatabaseUnavailable(cause) | ApiError::Internal(cause) => {
            ApiError::DatabaseUnavailable(cause)
        }
        other => other,
    })?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

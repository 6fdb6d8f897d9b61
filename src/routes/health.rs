use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, models::User};
use crate::error::ApiError;
use crate::routes::openapi::{DatabaseErrors, ServerErrors};
use crate::startup::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive) or `ready` (the database answers).
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process is alive; says nothing about its dependencies.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health), ServerErrors))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready when the database answers a query on the schema.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        DatabaseErrors, ServerErrors,
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::run(&state.pool, User::ping).await.map_err(|e| match e {
        ApiError::DatabaseUnavailable(cause) | ApiError::Internal(cause) => {
            ApiError::DatabaseUnavailable(cause)
        }
        other => other,
    })?;
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}

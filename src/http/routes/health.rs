use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Error;
use crate::http::openapi::responses::{DatabaseErrors, ServerErrors};
use crate::http::{ApiError, AppState};

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
    // Any failure means not ready, whatever its kind.
    state.core.sessions.ready().await.map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}

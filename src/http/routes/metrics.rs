//! `/metrics`: the Prometheus text exposition format of this app's [`Metrics`].
//!
//! [`Metrics`]: crate::metrics::Metrics

use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::openapi::responses::{ErrorBody, ServerErrors};
use crate::http::{ApiError, AppState};

/// Marks the app of the separate metrics listener (`METRICS_BIND_ADDR`).
pub struct MetricsListener;

/// Counters, the latency histogram, and the argon2 queue and pool gauges, read now. On
/// the main listener only while no `METRICS_BIND_ADDR` is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "The Prometheus text exposition format",
            content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "`not_found`: served on `METRICS_BIND_ADDR` instead", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.http.metrics_bind_addr.is_some() && req.app_data::<MetricsListener>().is_none() {
        return Err(ApiError::NotFound);
    }
    let sessions = &state.core.sessions;
    let text = state
        .metrics
        .render(sessions.hash_queue_depth(), sessions.connections_in_use())
        .map_err(|e| ApiError::internal(format!("metrics: {e}")))?;
    Ok(HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(text))
}

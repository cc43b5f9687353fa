use actix_web::HttpResponse;
use prometheus::{Encoder, TextEncoder};

use crate::ApiState;
use crate::error::ApiError;

/// `GET /metrics`: every metric in Prometheus' text format, the fleet gauges read from
/// the database first (if it does not answer, the other metrics are still served).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operators",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn get_metrics(state: ApiState) -> Result<HttpResponse, ApiError> {
    scaling::metrics::register_all();
    if let Err(err) = scaling::metrics::refresh_fleet_gauges(&state.db).await {
        tracing::warn!(error = %err, "metrics: fleet gauges not refreshed");
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&prometheus::default_registry().gather(), &mut body)
        .map_err(|err| ApiError::Internal(format!("encoding metrics: {err}")))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body))
}

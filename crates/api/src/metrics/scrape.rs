use actix_web::HttpResponse;
use prometheus::{Encoder, TextEncoder};

use crate::ApiState;
use crate::error::ApiError;

/// `GET /metrics`: every metric in Prometheus' text format. The fleet gauges are read
/// from the database at most every few seconds, on a pool of their own; if it does not
/// answer, the other metrics are still served.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operators",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
#[tracing::instrument(skip_all)]
pub async fn get_metrics(state: ApiState) -> Result<HttpResponse, ApiError> {
    if let Err(err) = state.metrics.gauges.refresh(&state.ops_db).await {
        tracing::debug!(
            error = &err as &dyn std::error::Error,
            "metrics: fleet gauges not refreshed"
        );
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&state.metrics.registry.gather(), &mut body)
        .map_err(|err| ApiError::Internal(Box::new(err)))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body))
}

use std::time::Duration;

use actix_web::HttpResponse;
use serde_json::json;

use crate::ApiState;
use crate::error::ApiError;

/// How long the database may take to answer a readiness probe, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /readyz`: 200 when the database answers; 503 when it does not, or while the
/// server is shutting down. The probe uses a pool of its own, so it never queues behind
/// requests, and answers within its own short budget.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers", body = crate::openapi::Status),
        (status = 503, description = "The database does not answer, or shutdown began", body = crate::openapi::ErrorBody),
    )
)]
pub async fn get_readyz(state: ApiState) -> Result<HttpResponse, ApiError> {
    if state.lifecycle.is_shutting_down() {
        return Err(ApiError::ServiceUnavailable("shutting down"));
    }
    match tokio::time::timeout(PROBE_TIMEOUT, state.ops_db.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Ok(Err(_)) | Err(_) => Err(ApiError::ServiceUnavailable("database unavailable")),
    }
}

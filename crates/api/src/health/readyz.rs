use std::time::Duration;

use actix_web::HttpResponse;
use serde_json::json;

use crate::ApiState;
use crate::error::ApiError;

/// How long the database may take to answer a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: 200 when the database answers; 503 when it does not, or while the
/// server is shutting down.
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
        return Err(ApiError::ServiceUnavailable("shutting down".to_owned()));
    }
    match tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness probe: database is not answering");
            Err(ApiError::ServiceUnavailable(
                "database unavailable".to_owned(),
            ))
        }
        Err(_) => {
            tracing::warn!("readiness probe: database timed out");
            Err(ApiError::ServiceUnavailable(
                "database unavailable".to_owned(),
            ))
        }
    }
}

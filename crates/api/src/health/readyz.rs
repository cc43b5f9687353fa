use actix_web::HttpResponse;

use crate::ApiState;
use crate::answers::Status;
use crate::error::ApiError;

/// `GET /readyz`: 200 only when the request pool, and the lock pool, can hand out a
/// working connection now (one answered within the last second, or a probe: a
/// connection within half a second and `SELECT 1`); 503 with the reason otherwise, or
/// once shutdown began. Answers are shared for a quarter of a second, so a flood of
/// probes costs the database almost nothing. Use it for readiness, never for liveness:
/// a database outage must take the server out of rotation, not restart it.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database serves requests", body = crate::answers::Status),
        (status = 503, description = "Requests would fail for the database (the error says which pool), or shutdown began", body = crate::answers::ErrorBody),
    )
)]
pub async fn get_readyz(state: ApiState) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_shutting_down() {
        return Err(ApiError::ServiceUnavailable("shutting down"));
    }
    match state.readiness.check().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Status {
            status: "ready".to_owned(),
        })),
        Err(why) => Err(ApiError::ServiceUnavailable(why.reason())),
    }
}

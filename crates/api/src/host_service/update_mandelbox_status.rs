use actix_web::{HttpResponse, web};
use host_protocol::StatusReport;
use models::MandelboxStatus;

use super::mandelbox_id;
use crate::ApiState;
use crate::answers::MandelboxStatusRecorded;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::extract::HostAgent;

/// `PUT /host_service/mandelbox/{id}/status`: `CONNECTING` or `RUNNING`, for a mandelbox
/// on the caller's instance (404 otherwise).
#[utoipa::path(
    put,
    path = "/host_service/mandelbox/{id}/status",
    tag = "host service",
    security(("host_token" = [])),
    params(("id" = String, Path, format = "uuid", description = "The mandelbox id (a UUID)")),
    request_body = StatusReport,
    responses(
        (status = 200, description = "Recorded", body = crate::answers::MandelboxStatusRecorded),
        (status = 400, description = "Malformed id or body", body = crate::answers::ErrorBody),
        (status = 401, description = "No or unknown host credential", body = crate::answers::ErrorBody),
        (status = 404, description = "No such mandelbox on the caller's instance", body = crate::answers::ErrorBody),
        (status = 410, description = "The mandelbox was removed: not reported within ALLOCATION_TIMEOUT_SECS of its assignment", body = crate::answers::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(mandelbox = %path))]
pub async fn update_host_mandelbox_status(
    host: HostAgent,
    state: ApiState,
    path: web::Path<String>,
    JsonBody(report): JsonBody<StatusReport>,
) -> Result<HttpResponse, ApiError> {
    let id = mandelbox_id(&path)?;
    let status = MandelboxStatus::from(report.status);
    state
        .hosts
        .set_mandelbox_status(host.host_token_sha256, id.clone(), status)
        .await?;
    Ok(HttpResponse::Ok().json(MandelboxStatusRecorded {
        mandelbox_id: id,
        status,
    }))
}

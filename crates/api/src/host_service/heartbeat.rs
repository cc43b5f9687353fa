use actix_web::HttpResponse;
use host_protocol::HeartbeatRequest;

use crate::ApiState;
use crate::answers::HeartbeatRecorded;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::extract::HostAgent;

/// `POST /host_service/heartbeat`: the host's metrics; `dying: true` drains the instance.
#[utoipa::path(
    post,
    path = "/host_service/heartbeat",
    tag = "host service",
    security(("host_token" = [])),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Recorded", body = crate::answers::HeartbeatRecorded),
        (status = 400, description = "Malformed body", body = crate::answers::ErrorBody),
        (status = 401, description = "No or unknown host credential", body = crate::answers::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn heartbeat_host(
    host: HostAgent,
    state: ApiState,
    JsonBody(request): JsonBody<HeartbeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let instance = state
        .hosts
        .heartbeat(host.host_token_sha256, request)
        .await?;
    Ok(HttpResponse::Ok().json(HeartbeatRecorded {
        instance_name: instance,
    }))
}

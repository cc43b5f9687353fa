use actix_web::HttpResponse;
use host_protocol::HeartbeatRequest;
use serde_json::json;

use crate::ApiState;
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
        (status = 200, description = "Recorded", body = crate::openapi::HeartbeatRecorded),
        (status = 400, description = "Malformed body", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or unknown host credential", body = crate::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::openapi::ErrorBody),
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
    Ok(HttpResponse::Ok().json(json!({ "instance_name": instance })))
}

use actix_web::{HttpResponse, web};
use scaling::hosts::HeartbeatRequest;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::HostAgent;

/// `POST /host_service/heartbeat`: the host's metrics; `dying: true` drains the instance.
pub async fn heartbeat_host(
    host: HostAgent,
    state: ApiState,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let request = HeartbeatRequest::try_from(&*body)?;
    let instance = state
        .hosts
        .heartbeat(host.host_token_sha256, request)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "instance_name": instance })))
}

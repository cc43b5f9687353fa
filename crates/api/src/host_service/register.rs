use actix_web::{HttpRequest, HttpResponse};
use host_protocol::RegisterRequest;
use secrecy::ExposeSecret;

use crate::ApiState;
use crate::answers::Registered;
use crate::body::JsonBody;
use crate::error::ApiError;

/// `POST /host_service/register`: the host of a launched instance trades its bootstrap
/// secret (single use) for a credential. 200 `{"auth_token"}`.
#[utoipa::path(
    post,
    path = "/host_service/register",
    tag = "host service",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered: the instance is ACTIVE", body = crate::answers::Registered),
        (status = 400, description = "Malformed body, or an ip that cannot be a host's (private or loopback, outside local, development and testing)", body = crate::answers::ErrorBody),
        (status = 401, description = "Unknown instance, or wrong or used bootstrap secret", body = crate::answers::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(instance = %request.instance_name))]
pub async fn register_host(
    state: ApiState,
    req: HttpRequest,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let peer = req.peer_addr().map(|addr| addr.ip());
    let token = state.hosts.register(request, peer).await?;
    Ok(HttpResponse::Ok().json(Registered {
        auth_token: token.expose_secret().to_owned(),
    }))
}

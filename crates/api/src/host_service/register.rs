use actix_web::{HttpRequest, HttpResponse, web};
use scaling::hosts::RegisterRequest;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiError;

/// `POST /host_service/register`: the host of a launched instance trades its bootstrap
/// secret (single use) for a credential. 200 `{"auth_token"}`.
pub async fn register_host(
    state: ApiState,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let request = RegisterRequest::try_from(&*body)?;
    let peer = req.peer_addr().map(|addr| addr.ip());
    let token = state.hosts.register(request, peer).await?;
    Ok(HttpResponse::Ok().json(json!({ "auth_token": token.expose_secret() })))
}

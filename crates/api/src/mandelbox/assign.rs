use actix_web::{HttpRequest, HttpResponse, web};
use scaling::AssignRequest;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::User;

/// `POST /mandelbox/assign`: a mandelbox on the fullest instance with room in the
/// user's region (or a neighbouring one). 202 `{"ip", "mandelbox_id"}`.
#[utoipa::path(
    post,
    path = "/mandelbox/assign",
    tag = "users",
    security(("user_token" = [])),
    request_body = crate::openapi::AssignBody,
    responses(
        (status = 202, description = "Assigned", body = crate::openapi::Assigned),
        (status = 400, description = "Malformed body, naming the field", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or invalid token", body = crate::openapi::ErrorBody),
        (status = 402, description = "No active subscription", body = crate::openapi::ErrorBody),
        (status = 403, description = "username is not the token's user", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Not assigned: REGION_NOT_ENABLED, COMMIT_HASH_MISMATCH, NO_INSTANCE_AVAILABLE, USER_ALREADY_ACTIVE or SERVICE_UNAVAILABLE", body = crate::openapi::NotAssigned),
    )
)]
pub async fn assign_mandelbox(
    User(caller): User,
    state: ApiState,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let request =
        AssignRequest::try_from(&*body).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let client = client_address(&req, state.trust_forwarded_for);
    let assignment = state.assigner.assign(&caller, request, &client).await?;
    Ok(HttpResponse::Accepted().json(json!({
        "ip": assignment.ip,
        "mandelbox_id": assignment.mandelbox_id,
    })))
}

/// The client's address, for the rate limit.
fn client_address(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|list| list.split(',').next())
        .map(str::trim)
        .filter(|first| !first.is_empty());
    match forwarded {
        Some(address) => address.to_owned(),
        None => req
            .peer_addr()
            .map(|peer| peer.ip().to_string())
            .unwrap_or_default(),
    }
}

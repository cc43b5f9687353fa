use std::net::{IpAddr, Ipv4Addr};

use actix_web::{HttpRequest, HttpResponse};
use assignment::{AssignRequest, ClientAddress};

use crate::ApiState;
use crate::answers::Assigned;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::extract::User;

/// `POST /mandelbox/assign`: a mandelbox on the fullest instance with room in the
/// user's region (or a neighbouring one). 202 `{"ip", "mandelbox_id"}`.
#[utoipa::path(
    post,
    path = "/mandelbox/assign",
    tag = "users",
    security(("user_token" = [])),
    request_body = assignment::AssignBody,
    responses(
        (status = 202, description = "Assigned", body = crate::answers::Assigned),
        (status = 400, description = "Malformed body, naming the field", body = crate::answers::ErrorBody),
        (status = 401, description = "No or invalid token", body = crate::answers::ErrorBody),
        (status = 402, description = "No active subscription", body = crate::answers::ErrorBody),
        (status = 403, description = "username is not the token's user", body = crate::answers::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::answers::ErrorBody),
        (status = 503, description = "Not assigned: REGION_NOT_ENABLED, COMMIT_HASH_MISMATCH, NO_INSTANCE_AVAILABLE, USER_ALREADY_ACTIVE or SERVICE_UNAVAILABLE", body = crate::answers::NotAssigned),
    )
)]
#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn assign_mandelbox(
    User(caller): User,
    state: ApiState,
    req: HttpRequest,
    JsonBody(request): JsonBody<AssignRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client_address(&req, state.trusted_proxy_hops);
    let gone = crate::peer::gone(&req);
    let assignment = state
        .assigner
        .assign_unless_gone(&caller, request, client, gone)
        .await?;
    Ok(HttpResponse::Accepted().json(Assigned {
        ip: assignment.ip,
        mandelbox_id: assignment.mandelbox_id,
    }))
}

/// The client, for the rate limit: the peer, or behind trusted proxies the address
/// they saw (SPEC §5 step 2).
fn client_address(req: &HttpRequest, trusted_proxy_hops: u32) -> ClientAddress {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip());
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .collect();
    ClientAddress::of(peer, &forwarded, trusted_proxy_hops)
}

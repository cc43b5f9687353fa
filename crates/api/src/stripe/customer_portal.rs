use actix_web::HttpResponse;
use billing::PortalRequest;

use crate::ApiState;
use crate::answers::PortalUrl;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::extract::User;

/// `POST /stripe/customer_portal` `{return_url}`: a Stripe billing-portal session for the
/// token's Stripe customer. 200 `{"url"}`.
#[utoipa::path(
    post,
    path = "/stripe/customer_portal",
    tag = "users",
    security(("user_token" = [])),
    request_body = PortalRequest,
    responses(
        (status = 200, description = "A billing-portal session", body = crate::answers::PortalUrl),
        (status = 400, description = "Malformed body, no Stripe customer in the token, or Stripe refused", body = crate::answers::ErrorBody),
        (status = 401, description = "No or invalid token", body = crate::answers::ErrorBody),
        (status = 503, description = "Stripe unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn create_customer_portal(
    User(caller): User,
    state: ApiState,
    JsonBody(request): JsonBody<PortalRequest>,
) -> Result<HttpResponse, ApiError> {
    let customer = caller
        .stripe_customer_id
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("the token names no Stripe customer".to_owned()))?;
    let url = state
        .portal
        .portal_session(customer, request.return_url.url())
        .await?;
    Ok(HttpResponse::Ok().json(PortalUrl {
        url: url.to_string(),
    }))
}

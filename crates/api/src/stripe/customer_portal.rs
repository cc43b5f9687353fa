use actix_web::{HttpResponse, web};
use scaling::billing::PortalRequest;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::User;

/// `POST /stripe/customer_portal` `{return_url}`: a Stripe billing-portal session for the
/// token's Stripe customer. 200 `{"url"}`.
#[utoipa::path(
    post,
    path = "/stripe/customer_portal",
    tag = "users",
    security(("user_token" = [])),
    request_body = crate::openapi::PortalBody,
    responses(
        (status = 200, description = "A billing-portal session", body = crate::openapi::PortalUrl),
        (status = 400, description = "Malformed body, no Stripe customer in the token, or Stripe refused", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or invalid token", body = crate::openapi::ErrorBody),
        (status = 503, description = "Stripe unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_customer_portal(
    User(caller): User,
    state: ApiState,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let request = PortalRequest::try_from(&*body)?;
    let customer = caller
        .stripe_customer_id
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("the token names no Stripe customer".to_owned()))?;
    let url = state
        .portal
        .portal_session(customer, &request.return_url)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "url": url.as_str() })))
}

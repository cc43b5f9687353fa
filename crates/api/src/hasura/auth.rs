use actix_web::HttpResponse;
use serde_json::json;

use crate::extract::MaybeUser;

/// `GET /hasura/auth`: Hasura's authentication webhook. A valid token is the role
/// `user` with its subject as the user id; no token is the role `anonymous`.
#[utoipa::path(
    get,
    path = "/hasura/auth",
    tag = "users",
    security((), ("user_token" = [])),
    responses(
        (status = 200, description = "The caller's Hasura role", body = crate::openapi::HasuraSession),
        (status = 401, description = "An invalid token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn get_hasura_auth(caller: MaybeUser) -> HttpResponse {
    let body = match caller.0 {
        Some(caller) => json!({
            "X-Hasura-Role": "user",
            "X-Hasura-User-Id": caller.user_id,
        }),
        None => json!({
            "X-Hasura-Role": "anonymous",
            "X-Hasura-User-Id": "",
        }),
    };
    HttpResponse::Ok().json(body)
}

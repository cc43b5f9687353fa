use actix_web::HttpResponse;
use serde_json::json;

use crate::extract::MaybeUser;

/// `GET /hasura/auth`: Hasura's authentication webhook. A valid token is the role
/// `user` with its subject as the user id; no token is the role `anonymous`.
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

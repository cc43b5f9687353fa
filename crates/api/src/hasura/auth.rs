use actix_web::HttpResponse;

use crate::answers::HasuraSession;
use crate::extract::MaybeUser;

/// `GET /hasura/auth`: Hasura's authentication webhook. A valid token is the role
/// `user` with its subject as the user id; no token is the role `anonymous`.
#[utoipa::path(
    get,
    path = "/hasura/auth",
    tag = "users",
    security((), ("user_token" = [])),
    responses(
        (status = 200, description = "The caller's Hasura role", body = crate::answers::HasuraSession),
        (status = 401, description = "An invalid token", body = crate::answers::ErrorBody),
    )
)]
pub async fn get_hasura_auth(caller: MaybeUser) -> HttpResponse {
    let body = match caller.0 {
        Some(caller) => HasuraSession {
            role: "user".to_owned(),
            user_id: caller.user_id.to_string(),
        },
        None => HasuraSession {
            role: "anonymous".to_owned(),
            user_id: String::new(),
        },
    };
    HttpResponse::Ok().json(body)
}

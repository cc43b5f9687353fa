use actix_web::HttpResponse;

use crate::answers::Status;

/// `GET /healthz`: 200 while the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = crate::answers::Status))
)]
pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok".to_owned(),
    })
}

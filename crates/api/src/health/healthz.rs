use actix_web::HttpResponse;
use serde_json::json;

/// `GET /healthz`: 200 while the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = crate::openapi::Status))
)]
pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

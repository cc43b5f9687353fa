use actix_web::HttpResponse;
use serde_json::json;

/// `GET /healthz`: 200 while the process is up.
pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

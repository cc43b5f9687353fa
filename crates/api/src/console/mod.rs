//! `GET /dashboard`: the operators' page, one self-contained document embedded in the
//! binary (no CDN, no build step). It holds no data: it reads `GET /fleet` with the
//! admin token taken from its URL fragment (never sent to the server) or pasted, kept
//! for the tab only.

use actix_web::HttpResponse;
use actix_web::http::header;

const DASHBOARD: &str = include_str!("dashboard.html");

/// Only the page's own inline style and script, and calls back to this server.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                      connect-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// `GET /dashboard`: the fleet, live, for operators.
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "operators",
    responses((status = 200, description = "The dashboard page (HTML); it reads GET /fleet with an admin token", content_type = "text/html")),
)]
pub async fn get_dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(DASHBOARD)
}

use actix_web::web::Json;
use models::UnixMillis;
use scaling::overview::{self, FleetOverview};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Admin;

/// `GET /fleet` (admin scope): every region and its instances, in one document (see
/// `scaling::overview`). Read on the operations pool, so a dashboard left open never
/// queues requests.
#[utoipa::path(
    get,
    path = "/fleet",
    tag = "operators",
    security(("user_token" = ["admin"])),
    responses(
        (status = 200, description = "The fleet", body = crate::openapi::Fleet),
        (status = 401, description = "No or invalid token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::openapi::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::openapi::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %caller.user_id))]
pub async fn get_fleet(
    Admin(caller): Admin,
    state: ApiState,
) -> Result<Json<FleetOverview>, ApiError> {
    let fleet = state
        .ops_db
        .run(|conn| Ok(overview::read(conn, UnixMillis::now())?))
        .await?;
    Ok(Json(fleet))
}

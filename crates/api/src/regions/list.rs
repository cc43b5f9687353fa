use actix_web::web::Json;
use models::Region;

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::User;

/// `GET /regions`: the distinct enabled regions, for any signed-in user. They are kept in
/// memory, read again when `hardware.region_to_ami` changes (a notification, from any
/// process or psql) and at least every 5 s.
#[utoipa::path(
    get,
    path = "/regions",
    tag = "users",
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The enabled regions, sorted", body = Vec<String>),
        (status = 401, description = "No or invalid token", body = crate::answers::ErrorBody),
        (status = 503, description = "Database or identity provider unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn list_regions(_user: User, state: ApiState) -> Result<Json<Vec<Region>>, ApiError> {
    let regions = state.regions.get().await?;
    Ok(Json(regions.as_ref().clone()))
}

use actix_web::web::Json;
use models::{Region, region_to_ami};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::User;

/// `GET /regions`: the distinct enabled regions, for any signed-in user.
#[utoipa::path(
    get,
    path = "/regions",
    tag = "users",
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The enabled regions, sorted", body = Vec<String>),
        (status = 401, description = "No or invalid token", body = crate::openapi::ErrorBody),
        (status = 503, description = "Database or identity provider unavailable", body = crate::openapi::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn list_regions(_user: User, state: ApiState) -> Result<Json<Vec<Region>>, ApiError> {
    let regions = state
        .db
        .run(|conn| Ok(region_to_ami::enabled_regions(conn)?))
        .await?;
    Ok(Json(regions))
}

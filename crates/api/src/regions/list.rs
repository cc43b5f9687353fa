use actix_web::web::Json;
use models::{Region, region_to_ami};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::User;

/// `GET /regions`: the distinct enabled regions, for any signed-in user.
pub async fn list_regions(_user: User, state: ApiState) -> Result<Json<Vec<Region>>, ApiError> {
    let regions = state
        .db
        .run(|conn| Ok(region_to_ami::enabled_regions(conn)?))
        .await?;
    Ok(Json(regions))
}

use actix_web::{HttpResponse, web};

use super::mandelbox_id;
use crate::ApiState;
use crate::answers::MandelboxDeleted;
use crate::error::ApiError;
use crate::extract::HostAgent;

/// `DELETE /host_service/mandelbox/{id}`: the session ended; only for a mandelbox on the
/// caller's instance (404 otherwise).
#[utoipa::path(
    delete,
    path = "/host_service/mandelbox/{id}",
    tag = "host service",
    security(("host_token" = [])),
    params(("id" = String, Path, format = "uuid", description = "The mandelbox id (a UUID)")),
    responses(
        (status = 200, description = "Removed", body = crate::answers::MandelboxDeleted),
        (status = 400, description = "Malformed id", body = crate::answers::ErrorBody),
        (status = 401, description = "No or unknown host credential", body = crate::answers::ErrorBody),
        (status = 404, description = "No such mandelbox on the caller's instance", body = crate::answers::ErrorBody),
        (status = 410, description = "The mandelbox was removed: not reported within ALLOCATION_TIMEOUT_SECS of its assignment", body = crate::answers::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(mandelbox = %path))]
pub async fn delete_host_mandelbox(
    host: HostAgent,
    state: ApiState,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = mandelbox_id(&path)?;
    state
        .hosts
        .delete_mandelbox(host.host_token_sha256, id.clone())
        .await?;
    Ok(HttpResponse::Ok().json(MandelboxDeleted {
        mandelbox_id: id,
        deleted: true,
    }))
}

use actix_web::{HttpResponse, web};
use models::InstanceName;
use scaling::{DrainOutcome, FleetError, OperatorDrainOutcome};

use crate::ApiState;
use crate::answers::Drained;
use crate::error::ApiError;
use crate::extract::Admin;

/// `POST /fleet/instances/{name}/drain` (admin scope): the instance begins draining
/// whatever its load; its sessions go on and nothing new lands there. 200 with what
/// happened to its host; 200 `already_draining` and no change for one draining already.
#[utoipa::path(
    post,
    path = "/fleet/instances/{name}/drain",
    tag = "operators",
    security(("user_token" = ["admin"])),
    params(("name" = String, Path, description = "The instance's name")),
    responses(
        (status = 200, description = "Draining: `outcome` is `host_asked`, `host_unreachable` (it stays draining with its sessions), `terminated` (unreachable and empty) or `already_draining`", body = crate::answers::Drained),
        (status = 400, description = "Not an instance name", body = crate::answers::ErrorBody),
        (status = 401, description = "No or invalid token", body = crate::answers::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::answers::ErrorBody),
        (status = 404, description = "No such instance", body = crate::answers::ErrorBody),
        (status = 409, description = "In a status that cannot be drained (unresponsive, or being ended)", body = crate::answers::ErrorBody),
        (status = 503, description = "Database or cloud unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %caller.user_id))]
pub async fn drain_instance(
    Admin(caller): Admin,
    state: ApiState,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = InstanceName::parse(&name).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let Some(fleet) = state.fleet.as_ref() else {
        return Err(ApiError::ServiceUnavailable(
            "fleet operations are not configured",
        ));
    };
    let outcome = fleet.drain_by_operator(&name).await.map_err(fleet_error)?;
    let said = match outcome {
        OperatorDrainOutcome::NotFound => {
            return Err(ApiError::NotFound(format!("no instance {name}")));
        }
        OperatorDrainOutcome::NotDrainable(status) => {
            return Err(ApiError::Conflict(format!(
                "instance {name} is {status}: it cannot be drained"
            )));
        }
        OperatorDrainOutcome::AlreadyDraining => "already_draining",
        OperatorDrainOutcome::Drained(DrainOutcome::Asked) => "host_asked",
        OperatorDrainOutcome::Drained(DrainOutcome::Unreachable) => "host_unreachable",
        OperatorDrainOutcome::Drained(DrainOutcome::Terminated) => "terminated",
    };
    tracing::info!(admin = %caller.user_id, instance = %name, outcome = said, "operator drain");
    Ok(HttpResponse::Ok().json(Drained {
        instance_name: name,
        outcome: said.to_owned(),
    }))
}

fn fleet_error(err: FleetError) -> ApiError {
    match err {
        FleetError::Database(db) => db.into(),
        FleetError::Cloud(cloud) => {
            tracing::warn!(
                error = &cloud as &dyn std::error::Error,
                "operator drain: the cloud failed"
            );
            ApiError::ServiceUnavailable("the cloud provider is unavailable")
        }
        other => ApiError::Internal(Box::new(other)),
    }
}

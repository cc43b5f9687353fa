mod delete_mandelbox;
mod heartbeat;
mod register;
mod update_mandelbox_status;

pub use delete_mandelbox::{__path_delete_host_mandelbox, delete_host_mandelbox};
pub use heartbeat::{__path_heartbeat_host, heartbeat_host};
pub use register::{__path_register_host, register_host};
pub use update_mandelbox_status::{
    __path_update_host_mandelbox_status, update_host_mandelbox_status,
};

use models::MandelboxId;

use crate::error::ApiError;

fn mandelbox_id(path: &str) -> Result<MandelboxId, ApiError> {
    MandelboxId::parse(path).map_err(|err| ApiError::BadRequest(err.to_string()))
}

//! Every answer's body: the handlers serialise these very types, and the OpenAPI
//! document describes them (`GET /openapi.json`), so the two cannot drift apart. Request
//! bodies are the library crates' own types (`assignment::AssignBody`,
//! `host_protocol::RegisterRequest`, …), which the handlers parse into; the fleet's
//! document is `models::overview::FleetOverview`.

use domain::{InstanceName, MandelboxId, MandelboxStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human; for a 400, which field and why.
    pub error: String,
}

/// A plain acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Assigned {
    /// The instance's address.
    pub ip: String,
    pub mandelbox_id: MandelboxId,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotAssigned {
    pub ip: Option<String>,
    pub mandelbox_id: Option<String>,
    #[schema(example = "NO_INSTANCE_AVAILABLE")]
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HasuraSession {
    #[serde(rename = "X-Hasura-Role")]
    #[schema(example = "user")]
    pub role: String,
    #[serde(rename = "X-Hasura-User-Id")]
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// The host's credential for every later call.
    pub auth_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatRecorded {
    /// The caller's instance.
    pub instance_name: InstanceName,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MandelboxStatusRecorded {
    pub mandelbox_id: MandelboxId,
    pub status: MandelboxStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MandelboxDeleted {
    pub mandelbox_id: MandelboxId,
    pub deleted: bool,
}

/// The answer of `POST /mail`. A body that is not even JSON gets the plain error shape
/// (`error` only), as on every route.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[schema(example = 200)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it was not sent (400 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalUrl {
    pub url: String,
}

/// What an operator's drain did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Drained {
    pub instance_name: InstanceName,
    #[schema(example = "host_asked")]
    pub outcome: String,
}

//! The shapes of answers, for the document only. Request bodies are the library crates'
//! own types (`assignment::AssignBody`, `host_protocol::RegisterRequest`, …), which the handlers
//! parse into: the document describes what the parser checks, from the same types.

#![allow(dead_code, reason = "read by the OpenAPI derive, not by code")]

use domain::{InstanceName, MandelboxId, MandelboxStatus};
use utoipa::ToSchema;

/// Every error answer.
#[derive(ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human; for a 400, which field and why.
    pub error: String,
}

/// A plain acknowledgement.
#[derive(ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(ToSchema)]
pub struct Assigned {
    /// The instance's address.
    pub ip: String,
    pub mandelbox_id: MandelboxId,
}

#[derive(ToSchema)]
pub struct NotAssigned {
    pub ip: Option<String>,
    pub mandelbox_id: Option<String>,
    #[schema(example = "NO_INSTANCE_AVAILABLE")]
    pub error: String,
}

#[derive(ToSchema, serde::Serialize)]
pub struct HasuraSession {
    #[serde(rename = "X-Hasura-Role")]
    #[schema(example = "user")]
    pub role: String,
    #[serde(rename = "X-Hasura-User-Id")]
    pub user_id: String,
}

#[derive(ToSchema)]
pub struct Registered {
    /// The host's credential for every later call.
    pub auth_token: String,
}

#[derive(ToSchema)]
pub struct HeartbeatRecorded {
    /// The caller's instance.
    pub instance_name: InstanceName,
}

#[derive(ToSchema)]
pub struct MandelboxStatusRecorded {
    pub mandelbox_id: MandelboxId,
    pub status: MandelboxStatus,
}

#[derive(ToSchema)]
pub struct MandelboxDeleted {
    pub mandelbox_id: MandelboxId,
    pub deleted: bool,
}

/// The answer of `POST /mail`. A body that is not even JSON gets the plain error shape
/// (`error` only), as on every route.
#[derive(ToSchema)]
pub struct MailResult {
    pub verified: Option<bool>,
    #[schema(example = 200)]
    pub status: Option<u16>,
    /// Why it was not sent (400 only).
    pub error: Option<String>,
}

#[derive(ToSchema)]
pub struct PortalUrl {
    pub url: String,
}

/// What an operator's drain did.
#[derive(ToSchema)]
pub struct Drained {
    pub instance_name: InstanceName,
    #[schema(example = "host_asked")]
    pub outcome: String,
}

//! The shapes of bodies, for the document only: handlers parse bodies themselves (so a
//! 400 names the field), and these say what they accept and answer.

#![allow(dead_code, reason = "read by the OpenAPI derive, not by code")]

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

// Patterns, as the parsers check them: a region is lowercase letters, digits and inner
// hyphens, at most 64; commit hashes and instance names are 1 to 128 printable ASCII
// characters; no text may hold NUL (PostgreSQL text cannot).

/// A region name, e.g. `us-east-1`.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$", example = "us-west-2")]
pub struct RegionName(String);

/// `POST /mandelbox/assign`.
#[derive(ToSchema)]
pub struct AssignBody {
    /// The user's region; or send `regions`.
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$",
        example = "us-east-1"
    )]
    pub region: Option<String>,
    /// Regions nearest first; replaces the bundled neighbours.
    #[schema(min_items = 1, max_items = 16)]
    pub regions: Option<Vec<RegionName>>,
    /// The token's user (admins may act for others).
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000]*$")]
    pub username: String,
    #[schema(minimum = 1, maximum = 2000, example = 96)]
    pub dpi: i64,
    /// The client's commit hash; `local_dev` in development.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub client_commit_hash: String,
}

#[derive(ToSchema)]
pub struct Assigned {
    /// The instance's address.
    pub ip: String,
    /// The new mandelbox (a UUID).
    pub mandelbox_id: String,
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

/// `POST /host_service/register`.
#[derive(ToSchema)]
pub struct RegisterBody {
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub instance_name: String,
    /// Single use: handed to the instance at launch.
    #[schema(pattern = "^[^\\u0000]*$")]
    pub bootstrap_secret: String,
    /// The address clients reach the host at; the request's peer if absent.
    pub ip: Option<String>,
    #[schema(minimum = 0, maximum = 1024)]
    pub mandelbox_capacity: i64,
    #[schema(minimum = 0)]
    pub memory_remaining_kb: i64,
    #[schema(minimum = 0)]
    pub nanocpus_remaining: i64,
    #[schema(minimum = 0)]
    pub gpu_vram_remaining_kb: i64,
}

#[derive(ToSchema)]
pub struct Registered {
    /// The host's credential for every later call.
    pub auth_token: String,
}

/// `POST /host_service/heartbeat`.
#[derive(ToSchema)]
pub struct HeartbeatBody {
    #[schema(minimum = 0)]
    pub memory_remaining_kb: i64,
    #[schema(minimum = 0)]
    pub nanocpus_remaining: i64,
    #[schema(minimum = 0)]
    pub gpu_vram_remaining_kb: i64,
    /// The host is shutting down: drain the instance.
    pub dying: bool,
}

#[derive(ToSchema)]
pub struct HeartbeatRecorded {
    /// The caller's instance.
    pub instance_name: String,
}

/// `PUT /host_service/mandelbox/{id}/status`.
#[derive(ToSchema)]
pub struct MandelboxStatusBody {
    #[schema(example = "RUNNING")]
    pub status: MandelboxState,
}

#[derive(ToSchema)]
pub struct MandelboxStatusRecorded {
    pub mandelbox_id: String,
    pub status: MandelboxState,
}

#[derive(ToSchema)]
pub struct MandelboxDeleted {
    pub mandelbox_id: String,
    pub deleted: bool,
}

#[derive(ToSchema, serde::Serialize)]
pub enum MandelboxState {
    #[serde(rename = "CONNECTING")]
    Connecting,
    #[serde(rename = "RUNNING")]
    Running,
}

/// `POST /mail`.
#[derive(ToSchema)]
pub struct MailBody {
    /// The id of a row of `sales.email_templates`.
    #[schema(pattern = "^[^\\u0000]*$")]
    pub email_id: String,
    #[schema(format = Email)]
    pub to_email: String,
    /// `MAIL_DEFAULT_FROM` if absent.
    #[schema(format = Email)]
    pub from_email: Option<String>,
    /// The template's variables; each is HTML-escaped where printed.
    pub email_args: Option<std::collections::HashMap<String, serde_json::Value>>,
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

/// `POST /stripe/customer_portal`.
#[derive(ToSchema)]
pub struct PortalBody {
    /// Where the portal sends the customer back to (http or https).
    #[schema(
        format = "uri",
        pattern = "^https?://",
        example = "https://fractal.co/account"
    )]
    pub return_url: String,
}

#[derive(ToSchema)]
pub struct PortalUrl {
    pub url: String,
}

//! The bodies host agents send: one serde type each, whose fields are the validating
//! types, so the parser, the 400 naming the field and the OpenAPI document agree.

use std::net::IpAddr;

use domain::{InstanceName, MandelboxCapacity, MandelboxStatus, ResourceAmount};
use models::instance::Metrics;
use secrecy::SecretString;
use serde::Deserialize;

type Metric = ResourceAmount;

fn metrics(memory: Metric, nanocpus: Metric, vram: Metric) -> Metrics {
    Metrics {
        memory_remaining_kb: memory.get(),
        nanocpus_remaining: nanocpus.get(),
        gpu_vram_remaining_kb: vram.get(),
    }
}

/// A bootstrap secret as a host presents it: 1 to 256 characters without NUL. Never
/// printed.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct BootstrapSecret(SecretString);

impl std::fmt::Debug for BootstrapSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootstrapSecret(..)")
    }
}

/// Why a bootstrap secret was refused.
#[derive(Debug, thiserror::Error)]
#[error("expected 1 to 256 characters without NUL")]
pub struct InvalidSecret;

impl TryFrom<String> for BootstrapSecret {
    type Error = InvalidSecret;

    fn try_from(secret: String) -> Result<Self, InvalidSecret> {
        if secret.is_empty() || secret.len() > 256 || secret.contains('\0') {
            return Err(InvalidSecret);
        }
        Ok(Self(SecretString::from(secret)))
    }
}

impl BootstrapSecret {
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// `POST /host_service/register`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    pub instance_name: InstanceName,
    /// Single use: handed to the instance at launch.
    #[schema(value_type = String, min_length = 1, max_length = 256, pattern = "^[^\\u0000]*$")]
    pub bootstrap_secret: BootstrapSecret,
    /// The address clients reach the host at (IPv4 or IPv6); the request's peer if absent.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub ip: Option<IpAddr>,
    pub mandelbox_capacity: MandelboxCapacity,
    pub memory_remaining_kb: Metric,
    pub nanocpus_remaining: Metric,
    pub gpu_vram_remaining_kb: Metric,
}

impl RegisterRequest {
    pub fn metrics(&self) -> Metrics {
        metrics(
            self.memory_remaining_kb,
            self.nanocpus_remaining,
            self.gpu_vram_remaining_kb,
        )
    }
}

/// `POST /host_service/heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatRequest {
    pub memory_remaining_kb: Metric,
    pub nanocpus_remaining: Metric,
    pub gpu_vram_remaining_kb: Metric,
    /// The host is shutting down: drain the instance.
    #[serde(default)]
    pub dying: Option<bool>,
}

impl HeartbeatRequest {
    pub fn metrics(&self) -> Metrics {
        metrics(
            self.memory_remaining_kb,
            self.nanocpus_remaining,
            self.gpu_vram_remaining_kb,
        )
    }

    pub fn is_dying(&self) -> bool {
        self.dying.unwrap_or(false)
    }
}

/// The statuses a host may report for a mandelbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub enum ReportedStatus {
    #[serde(rename = "CONNECTING")]
    Connecting,
    #[serde(rename = "RUNNING")]
    Running,
}

impl From<ReportedStatus> for MandelboxStatus {
    fn from(status: ReportedStatus) -> Self {
        match status {
            ReportedStatus::Connecting => Self::Connecting,
            ReportedStatus::Running => Self::Running,
        }
    }
}

/// `PUT /host_service/mandelbox/{id}/status`: `{"status": "CONNECTING" | "RUNNING"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub status: ReportedStatus,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn registration() -> serde_json::Value {
        json!({
            "instance_name": "us-east-1-main-0123456-uid-abcdefghij",
            "bootstrap_secret": "s3cret",
            "mandelbox_capacity": 8,
            "memory_remaining_kb": 1, "nanocpus_remaining": 2, "gpu_vram_remaining_kb": 3,
        })
    }

    #[test]
    fn a_registration_parses_and_refuses_bad_fields() {
        let ok: RegisterRequest = serde_json::from_value(registration()).unwrap();
        assert_eq!(ok.mandelbox_capacity.get(), 8);
        assert_eq!(ok.ip, None);
        assert_eq!(ok.metrics().gpu_vram_remaining_kb, 3);
        for (field, value) in [
            ("bootstrap_secret", json!("")),
            ("bootstrap_secret", json!("a\u{0}b")),
            ("mandelbox_capacity", json!(1025)),
            ("mandelbox_capacity", json!(-1)),
            ("memory_remaining_kb", json!("1")),
            ("ip", json!("not an ip")),
            ("instance_name", json!("has space")),
        ] {
            let mut body = registration();
            body[field] = value;
            assert!(
                serde_json::from_value::<RegisterRequest>(body).is_err(),
                "{field}"
            );
        }
        let mut v6 = registration();
        v6["ip"] = json!("2001:db8::1");
        let parsed: RegisterRequest = serde_json::from_value(v6).unwrap();
        assert!(parsed.ip.unwrap().is_ipv6());
    }

    #[test]
    fn heartbeats_and_status_reports_parse() {
        let beat: HeartbeatRequest = serde_json::from_value(json!({
            "memory_remaining_kb": 1, "nanocpus_remaining": 2, "gpu_vram_remaining_kb": 3,
        }))
        .unwrap();
        assert!(!beat.is_dying());
        assert!(
            serde_json::from_value::<HeartbeatRequest>(json!({
                "memory_remaining_kb": 1, "nanocpus_remaining": 2, "gpu_vram_remaining_kb": 3,
                "dying": "yes",
            }))
            .is_err()
        );
        let report: StatusReport = serde_json::from_value(json!({"status": "RUNNING"})).unwrap();
        assert_eq!(
            MandelboxStatus::from(report.status),
            MandelboxStatus::Running
        );
        assert!(serde_json::from_value::<StatusReport>(json!({"status": "ALLOCATED"})).is_err());
    }
}

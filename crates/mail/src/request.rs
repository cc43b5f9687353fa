//! The body of `POST /mail`: one serde type whose fields are the validating types.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::message::Address;

/// `{email_id, to_email, from_email?, email_args?}`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct MailRequest {
    /// The id of a row of `sales.email_templates`.
    pub email_id: TemplateId,
    #[schema(value_type = String, format = Email)]
    pub to_email: Address,
    /// `MAIL_DEFAULT_FROM` if absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Email)]
    pub from_email: Option<Address>,
    /// The template's variables; each is HTML-escaped where printed.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub email_args: Option<Map<String, Value>>,
}

impl MailRequest {
    /// The template's arguments (none if absent).
    pub fn args(&self) -> Map<String, Value> {
        self.email_args.clone().unwrap_or_default()
    }
}

/// A template id: 1 to 256 characters without NUL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, min_length = 1, max_length = 256, pattern = "^[^\\u0000]+$")]
pub struct TemplateId(String);

/// Why a template id was refused.
#[derive(Debug, thiserror::Error)]
#[error("expected 1 to 256 characters without NUL")]
pub struct InvalidTemplateId;

impl TryFrom<String> for TemplateId {
    type Error = InvalidTemplateId;

    fn try_from(id: String) -> Result<Self, InvalidTemplateId> {
        if id.is_empty() || id.chars().count() > 256 || id.contains('\0') {
            return Err(InvalidTemplateId);
        }
        Ok(Self(id))
    }
}

impl TemplateId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TemplateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_parses_and_bad_fields_are_refused() {
        let ok: MailRequest = serde_json::from_value(json!({
            "email_id": "WELCOME", "to_email": "ada@example.com", "email_args": {"name": "Ada"}
        }))
        .unwrap();
        assert_eq!(ok.email_id.as_str(), "WELCOME");
        assert_eq!(ok.args()["name"], "Ada");
        for bad in [
            json!({"to_email": "ada@example.com"}),
            json!({"email_id": "", "to_email": "ada@example.com"}),
            json!({"email_id": "W", "to_email": "not-an-address"}),
            json!({"email_id": "W", "to_email": "a@b.co\r\nBcc: x@y.co"}),
            json!({"email_id": "W", "to_email": "a@b.co", "email_args": [1]}),
            json!({"email_id": "W\u{0}", "to_email": "a@b.co"}),
        ] {
            assert!(
                serde_json::from_value::<MailRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}

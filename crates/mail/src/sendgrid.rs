//! SendGrid's v3 mail API.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use crate::message::Message;
use crate::transport::{ApiRefusal, SendError, Transport};

pub struct SendGrid {
    base: Url,
    key: SecretString,
    http: reqwest::Client,
}

impl std::fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGrid")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl SendGrid {
    /// `base`: `https://api.sendgrid.com` (or a stand-in). Fails only if the HTTP client
    /// cannot be built (no TLS backend).
    pub fn new(base: Url, key: SecretString) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Self { base, key, http })
    }
}

#[async_trait]
impl Transport for SendGrid {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let url = self
            .base
            .join("v3/mail/send")
            .map_err(|err| SendError::Unavailable(Box::new(err)))?;
        let body = json!({
            "personalizations": [{"to": [{"email": message.to.as_str()}]}],
            "from": {"email": message.from.as_str()},
            "subject": message.subject,
            "content": [{"type": "text/html", "value": message.html}],
        });
        let response = self
            .http
            .post(url)
            .bearer_auth(self.key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|err| SendError::Unavailable(Box::new(err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|body| body["errors"][0]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let refusal = Box::new(ApiRefusal {
            status: status.as_u16(),
            detail,
        });
        match status.as_u16() {
            400 | 403 | 413 => Err(SendError::Rejected(refusal)),
            _ => Err(SendError::Unavailable(refusal)),
        }
    }
}

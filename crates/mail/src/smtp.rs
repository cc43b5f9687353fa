//! SMTP through lettre.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::message::Message;
use crate::transport::{SendError, Transport};

/// How the connection is secured, from the URL: `smtps://` wraps it in TLS from the
/// start; `smtp://…?tls=required` upgrades with STARTTLS or fails;
/// `smtp://…?tls=opportunistic` upgrades when offered; plain `smtp://` sends in the clear
/// (a local relay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    Opportunistic,
    StartTls,
    Implicit,
}

pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    tls: TlsMode,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not shown.
        f.debug_struct("SmtpTransport")
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// `smtp[s]://[user:password@]host[:port][?tls=required|opportunistic]`.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|err| format!("not a URL: {err}"))?;
        let tls = match (
            parsed.scheme(),
            parsed
                .query_pairs()
                .find(|(key, _)| key == "tls")
                .map(|(_, value)| value.into_owned())
                .as_deref(),
        ) {
            ("smtps", _) => TlsMode::Implicit,
            ("smtp", Some("required")) => TlsMode::StartTls,
            ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
            ("smtp", None | Some("none")) => TlsMode::None,
            ("smtp", Some(other)) => {
                return Err(format!(
                    "unknown tls={other}: expected required, opportunistic or none"
                ));
            }
            (other, _) => {
                return Err(format!(
                    "unsupported scheme {other:?}: expected smtp or smtps"
                ));
            }
        };
        let inner = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|err| format!("invalid SMTP URL: {err}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Self { inner, tls })
    }

    pub fn tls(&self) -> TlsMode {
        self.tls
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let mailbox = |address: &crate::Address| {
            address
                .as_str()
                .parse::<lettre::message::Mailbox>()
                .map_err(|err| SendError::Rejected(format!("{address}: {err}")))
        };
        let email = lettre::Message::builder()
            .from(mailbox(&message.from)?)
            .to(mailbox(&message.to)?)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_HTML)
            .body(message.html.clone())
            .map_err(|err| SendError::Rejected(err.to_string()))?;
        match self.inner.send(email).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_permanent() => Err(SendError::Rejected(err.to_string())),
            Err(err) => Err(SendError::Unavailable(err.to_string())),
        }
    }
}

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

/// Why an `SMTP_URL` was refused (it may hold a password: never quoted whole).
#[derive(Debug, thiserror::Error)]
pub enum InvalidSmtpUrl {
    #[error("not a URL")]
    NotAUrl(#[source] url::ParseError),
    #[error("unknown tls={0}: expected required, opportunistic or none")]
    Tls(String),
    #[error("unsupported scheme {0:?}: expected smtp or smtps")]
    Scheme(String),
    #[error("invalid SMTP URL")]
    Lettre(#[source] lettre::transport::smtp::Error),
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
    pub fn from_url(url: &str) -> Result<Self, InvalidSmtpUrl> {
        let parsed = url::Url::parse(url).map_err(InvalidSmtpUrl::NotAUrl)?;
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
            ("smtp", Some(other)) => return Err(InvalidSmtpUrl::Tls(other.to_owned())),
            (other, _) => return Err(InvalidSmtpUrl::Scheme(other.to_owned())),
        };
        let inner = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(InvalidSmtpUrl::Lettre)?
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
                .map_err(|err| SendError::Rejected(Box::new(err)))
        };
        let email = lettre::Message::builder()
            .from(mailbox(&message.from)?)
            .to(mailbox(&message.to)?)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_HTML)
            .body(message.html.clone())
            .map_err(|err| SendError::Rejected(Box::new(err)))?;
        match self.inner.send(email).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_permanent() => Err(SendError::Rejected(Box::new(err))),
            Err(err) => Err(SendError::Unavailable(Box::new(err))),
        }
    }
}

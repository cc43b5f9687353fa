//! `POST /mail`: the request, the template, the rendering and the sending.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use models::{Db, DbError, email_template};
use serde_json::{Map, Value};

use crate::message::{Address, Message};
use crate::render::{RenderError, render};
use crate::transport::{SendError, Transport};

/// The most template text fetched from a URL.
const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// How long a template fetched from its URL is used before it is fetched again.
pub const TEMPLATE_TTL: Duration = Duration::from_secs(300);

/// `{email_id, to_email, from_email?, email_args?}`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRequest {
    pub email_id: String,
    pub to: Address,
    pub from: Option<Address>,
    pub args: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown email_id {0:?}")]
    UnknownTemplate(String),
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("the template's text could not be fetched: {0}")]
    TemplateUnavailable(String),
    #[error("the mail was not sent: {0}")]
    Send(#[from] SendError),
    #[error(transparent)]
    Database(#[from] DbError),
}

fn text<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, MailError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.contains('\0') => Err(MailError::Invalid(format!(
            "{field}: must not contain NUL characters"
        ))),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(MailError::Invalid(format!("{field}: expected a string"))),
    }
}

impl TryFrom<&Value> for MailRequest {
    type Error = MailError;

    fn try_from(body: &Value) -> Result<Self, MailError> {
        let Value::Object(body) = body else {
            return Err(MailError::Invalid(
                "body: expected a JSON object".to_owned(),
            ));
        };
        let email_id = text(body, "email_id")?
            .filter(|id| !id.is_empty())
            .ok_or_else(|| MailError::Invalid("email_id: required".to_owned()))?
            .to_owned();
        let address = |field: &str, value: &str| {
            Address::parse(value).map_err(|err| MailError::Invalid(format!("{field}: {err}")))
        };
        let to = text(body, "to_email")?
            .ok_or_else(|| MailError::Invalid("to_email: required".to_owned()))
            .and_then(|to| address("to_email", to))?;
        let from = text(body, "from_email")?
            .map(|from| address("from_email", from))
            .transpose()?;
        let args = match body.get("email_args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(args)) => args.clone(),
            Some(_) => {
                return Err(MailError::Invalid(
                    "email_args: expected an object".to_owned(),
                ));
            }
        };
        Ok(Self {
            email_id,
            to,
            from,
            args,
        })
    }
}

/// Template text fetched from a URL, and when.
type Fetched = HashMap<String, (Instant, Arc<str>)>;

/// Where templates come from: `sales.email_templates`. Text behind a URL is kept for
/// [`TEMPLATE_TTL`]; when fetching it again fails, the copy fetched before is used.
#[derive(Clone)]
pub struct TemplateSource {
    db: Db,
    http: reqwest::Client,
    ttl: Duration,
    fetched: Arc<Mutex<Fetched>>,
}

impl TemplateSource {
    pub fn new(db: Db) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            db,
            http,
            ttl: TEMPLATE_TTL,
            fetched: Arc::default(),
        }
    }

    /// Keeps fetched text for `ttl` instead of [`TEMPLATE_TTL`].
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The subject and text of template `id`.
    async fn load(&self, id: &str) -> Result<(String, String), MailError> {
        let key = id.to_owned();
        let template = self
            .db
            .run(move |conn| Ok(email_template::find(conn, &key)?))
            .await?
            .ok_or_else(|| MailError::UnknownTemplate(id.to_owned()))?;
        let text = match template.body {
            Some(body) => body,
            None => self.fetch_or_reuse(&template.url).await?,
        };
        Ok((template.title, text))
    }

    async fn fetch_or_reuse(&self, location: &str) -> Result<String, MailError> {
        let before = self
            .fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(location)
            .cloned();
        if let Some((at, text)) = &before
            && at.elapsed() < self.ttl
        {
            return Ok(text.to_string());
        }
        match self.fetch(location).await {
            Ok(text) => {
                self.fetched
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        location.to_owned(),
                        (Instant::now(), Arc::from(text.as_str())),
                    );
                Ok(text)
            }
            Err(err) => match before {
                Some((_, text)) => {
                    tracing::warn!(%location, error = %err, "template fetch failed; using the copy fetched before");
                    Ok(text.to_string())
                }
                None => Err(err),
            },
        }
    }

    async fn fetch(&self, location: &str) -> Result<String, MailError> {
        let unavailable =
            |why: String| MailError::TemplateUnavailable(format!("{location}: {why}"));
        let url = url::Url::parse(location).map_err(|err| unavailable(err.to_string()))?;
        let too_large = || unavailable(format!("larger than {MAX_TEMPLATE_BYTES} bytes"));
        let bytes = match url.scheme() {
            "https" | "http" => {
                let mut response = self
                    .http
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|err| unavailable(err.to_string()))?;
                if !response.status().is_success() {
                    return Err(unavailable(format!("answered {}", response.status())));
                }
                // Read no more than the limit, whatever the server sends.
                let mut bytes = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|err| unavailable(err.to_string()))?
                {
                    if bytes.len() + chunk.len() > MAX_TEMPLATE_BYTES {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                bytes
            }
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| unavailable("not a file path".to_owned()))?;
                tokio::task::spawn_blocking(move || {
                    use std::io::Read as _;
                    // One byte over the limit is enough to refuse it.
                    let mut bytes = Vec::new();
                    std::fs::File::open(path)?
                        .take(MAX_TEMPLATE_BYTES as u64 + 1)
                        .read_to_end(&mut bytes)?;
                    Ok::<_, std::io::Error>(bytes)
                })
                .await
                .map_err(|err| unavailable(err.to_string()))?
                .map_err(|err| unavailable(err.to_string()))?
            }
            other => return Err(unavailable(format!("unsupported scheme {other:?}"))),
        };
        if bytes.len() > MAX_TEMPLATE_BYTES {
            return Err(too_large());
        }
        String::from_utf8(bytes).map_err(|_| unavailable("not UTF-8".to_owned()))
    }
}

/// Renders templates and sends them through one transport.
pub struct Mailer {
    templates: TemplateSource,
    transport: Arc<dyn Transport>,
    default_from: Address,
}

impl Mailer {
    pub fn new(
        templates: TemplateSource,
        transport: Arc<dyn Transport>,
        default_from: Address,
    ) -> Self {
        Self {
            templates,
            transport,
            default_from,
        }
    }

    /// Sends template `request.email_id` to `request.to`, rendered with its arguments.
    pub async fn send(&self, request: &MailRequest) -> Result<(), MailError> {
        let (subject, text) = self.templates.load(&request.email_id).await?;
        let html = render(&text, &request.args)?;
        let message = Message {
            from: request
                .from
                .clone()
                .unwrap_or_else(|| self.default_from.clone()),
            to: request.to.clone(),
            subject,
            html,
        };
        self.transport.send(&message).await?;
        tracing::info!(template = %request.email_id, to = %message.to, "mail sent");
        Ok(())
    }
}

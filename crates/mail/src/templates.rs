//! Where templates come from: `sales.email_templates`, their text in `body` or behind
//! their `url`. Text behind a URL is kept for [`TEMPLATE_TTL`]; when fetching it again
//! fails, the copy fetched before is used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use models::{Db, email_template};

use crate::fetch::{FetchRules, Fetcher};
use crate::mailer::MailError;
use crate::request::TemplateId;

/// How long a template fetched from its URL is used before it is fetched again.
pub const TEMPLATE_TTL: Duration = Duration::from_secs(300);

/// Template text fetched from a URL, and when.
type Fetched = HashMap<String, (Instant, Arc<str>)>;

#[derive(Clone)]
pub struct TemplateSource {
    db: Db,
    fetcher: Fetcher,
    ttl: Duration,
    fetched: Arc<Mutex<Fetched>>,
}

impl TemplateSource {
    /// Templates of `db`, fetched by `rules`. Fails only if the HTTP client cannot be
    /// built (no TLS backend).
    pub fn new(db: Db, rules: FetchRules) -> Result<Self, reqwest::Error> {
        Ok(Self {
            db,
            fetcher: Fetcher::new(rules)?,
            ttl: TEMPLATE_TTL,
            fetched: Arc::default(),
        })
    }

    /// Keeps fetched text for `ttl` instead of [`TEMPLATE_TTL`].
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The subject and text of template `id`.
    pub(crate) async fn load(&self, id: &TemplateId) -> Result<(String, String), MailError> {
        let key = id.as_str().to_owned();
        let template = self
            .db
            .run(move |conn| Ok(email_template::find(conn, &key)?))
            .await?
            .ok_or_else(|| MailError::UnknownTemplate(id.clone()))?;
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
        match self.fetcher.fetch(location).await {
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
                    tracing::warn!(%location, error = &err as &dyn std::error::Error, "template fetch failed; using the copy fetched before");
                    Ok(text.to_string())
                }
                None => Err(MailError::TemplateUnavailable(err)),
            },
        }
    }
}

//! `POST /mail`: the template, the rendering and the sending.

use std::sync::Arc;

use models::DbError;

use crate::fetch::FetchError;
use crate::message::{Address, Message};
use crate::render::{RenderError, render};
use crate::request::{MailRequest, TemplateId};
use crate::templates::TemplateSource;
use crate::transport::{SendError, Transport};

/// Why a mail was not sent. `Display` is what the client may read; the source, for the
/// log, says why (a template's URL or path never reaches the client).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("unknown email_id {:?}", .0.as_str())]
    UnknownTemplate(TemplateId),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("the template's text could not be fetched")]
    TemplateUnavailable(#[source] FetchError),
    #[error("the mail was not sent: {0}")]
    Send(#[from] SendError),
    #[error(transparent)]
    Database(#[from] DbError),
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

    /// Sends template `request.email_id` to `request.to_email`, rendered with its
    /// arguments.
    pub async fn send(&self, request: &MailRequest) -> Result<(), MailError> {
        let (subject, text) = self.templates.load(&request.email_id).await?;
        let html = render(&text, &request.args())?;
        let message = Message {
            from: request
                .from_email
                .clone()
                .unwrap_or_else(|| self.default_from.clone()),
            to: request.to_email.clone(),
            subject,
            html,
        };
        self.transport.send(&message).await?;
        tracing::info!(template = %request.email_id, to = %message.to, "mail sent");
        Ok(())
    }
}

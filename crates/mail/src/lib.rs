//! Mail (`POST /mail`): templates from `sales.email_templates` rendered with Jinja syntax,
//! sent through a transport.
//!
//! - [`MailRequest`]: the request body, parsed into checked values;
//! - [`render`]: Jinja templates (minijinja), arguments HTML-escaped, a variable the
//!   template uses but the arguments lack refused by name;
//! - [`TemplateSource`]: where template text comes from, fetched by [`FetchRules`];
//! - [`Transport`]: [`SmtpTransport`] (`SMTP_URL`), [`SendGrid`] (its v3 HTTP API,
//!   `SENDGRID_API_KEY`), and [`Outbox`], in memory, for tests;
//! - [`Mailer`]: finds the template, renders and sends.

mod fetch;
mod mailer;
mod message;
pub mod render;
mod request;
mod sendgrid;
mod smtp;
mod templates;
mod transport;

pub use fetch::{FetchError, FetchRules, MAX_TEMPLATE_BYTES, is_public};
pub use mailer::{MailError, Mailer};
pub use message::{Address, InvalidAddress, Message};
pub use render::RenderError;
pub use request::{MailRequest, TemplateId};
pub use sendgrid::SendGrid;
pub use smtp::{InvalidSmtpUrl, SmtpTransport, TlsMode};
pub use templates::{TEMPLATE_TTL, TemplateSource};
pub use transport::{ApiRefusal, Outbox, SendError, Transport};

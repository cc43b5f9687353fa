//! Mail (`POST /mail`): templates from `sales.email_templates` rendered with Jinja syntax,
//! sent through a transport.
//!
//! - [`render`]: Jinja templates (minijinja), arguments HTML-escaped, a variable the
//!   template uses but the arguments lack refused by name.
//! - [`Transport`]: [`SmtpTransport`] (`SMTP_URL`), [`SendGrid`] (its v3 HTTP API,
//!   `SENDGRID_API_KEY`), and [`Outbox`], in memory, for tests.
//! - [`Mailer`]: finds the template, fetches its text when it lives at a URL, renders
//!   and sends.

mod mailer;
mod message;
pub mod render;
mod sendgrid;
mod smtp;
mod transport;

pub use mailer::{MailError, MailRequest, Mailer, TEMPLATE_TTL, TemplateSource};
pub use message::{Address, InvalidAddress, Message};
pub use render::RenderError;
pub use sendgrid::SendGrid;
pub use smtp::{SmtpTransport, TlsMode};
pub use transport::{Outbox, SendError, Transport};

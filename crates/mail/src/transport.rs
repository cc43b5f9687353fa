//! Where rendered mail goes.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::message::Message;

/// Why a mail was not sent, with the transport's error as the source.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The transport refused this mail (a recipient it will not take, a sender it does
    /// not allow).
    #[error("refused")]
    Rejected(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transport could not be reached or failed.
    #[error("the mail transport is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a mail API answered, when it did not accept a mail.
#[derive(Debug, thiserror::Error)]
#[error("the mail API answered {status}: {detail}")]
pub struct ApiRefusal {
    pub status: u16,
    /// The API's own words, if it gave any.
    pub detail: String,
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}

/// Keeps what is sent, in memory: for tests and for `local` runs without a mail server.
#[derive(Debug, Default)]
pub struct Outbox {
    sent: Mutex<Vec<Message>>,
}

impl Outbox {
    pub fn sent(&self) -> Vec<Message> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Transport for Outbox {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        tracing::info!(to = %message.to, subject = %message.subject, "mail kept in the outbox");
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(message.clone());
        Ok(())
    }
}

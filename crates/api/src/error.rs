//! The one error type of the HTTP layer: every failure becomes a status code and a JSON
//! body with an `error` field. A 500's cause is logged here, once, and never sent to the
//! client; a 503 is an answer of the contract (no capacity, a dependency down, whose
//! outage is logged where it starts and ends), so it is only counted and logged as a
//! request.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use assignment::AssignError;
use auth::AuthError;
use billing::PortalError;
use host_protocol::HostError;
use models::DbError;

use crate::answers::{ErrorBody, MailResult, NotAssigned};

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The status logged for a request whose client left before its answer (nginx's 499).
fn client_closed_request() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::REQUEST_TIMEOUT)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What is wrong with the request, in words for the client (naming the field).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The resource existed and was removed for good.
    #[error("{0}")]
    Gone(String),
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests: retry in {0} s")]
    TooManyRequests(u64),
    /// A dependency is down, or the server is shutting down: what, for the client.
    #[error("{0}")]
    ServiceUnavailable(&'static str),
    /// No mandelbox was assigned: 503 `{"ip": null, "mandelbox_id": null, "error": code}`.
    #[error("{0}")]
    NoMandelbox(&'static str),
    /// A mail was not sent: 400 `{"verified": false, "status": 400, "error": why}`.
    #[error("{0}")]
    MailNotSent(String),
    /// The client closed its connection before the answer: 499 in the request log, sent
    /// to nobody.
    #[error("the client closed the connection")]
    ClientGone,
    /// A bug or an unexpected failure: the client sees only "internal error".
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable => {
                Self::ServiceUnavailable("authentication is temporarily unavailable")
            }
            refused => Self::Unauthorized(refused.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        if err.is_outage() {
            Self::ServiceUnavailable("database unavailable")
        } else {
            Self::Internal(Box::new(err))
        }
    }
}

impl From<AssignError> for ApiError {
    fn from(err: AssignError) -> Self {
        match err {
            AssignError::Forbidden => Self::Forbidden(err.to_string()),
            AssignError::RateLimited { retry_after_secs } => {
                Self::TooManyRequests(retry_after_secs)
            }
            AssignError::NoCustomer | AssignError::NotPaying => {
                Self::PaymentRequired(err.to_string())
            }
            AssignError::Refused(_) | AssignError::Unavailable(_) => {
                Self::NoMandelbox(err.outcome())
            }
            AssignError::Internal(cause) => Self::Internal(Box::new(cause)),
            AssignError::ClientGone => Self::ClientGone,
        }
    }
}

impl From<PortalError> for ApiError {
    fn from(err: PortalError) -> Self {
        match err {
            PortalError::Refused(message) => Self::BadRequest(message),
            PortalError::NotConfigured => Self::ServiceUnavailable("payments are not configured"),
            PortalError::Unavailable(_) => {
                Self::ServiceUnavailable("the payment provider is unavailable")
            }
        }
    }
}

impl From<HostError> for ApiError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Unauthorized => Self::Unauthorized(err.to_string()),
            HostError::NotFound => Self::NotFound(err.to_string()),
            HostError::Gone => Self::Gone(err.to_string()),
            HostError::Address(why) => Self::BadRequest(why),
            HostError::Cloud(err) => {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "cannot check a host's address"
                );
                Self::ServiceUnavailable("the cloud cannot say this instance's addresses now")
            }
            HostError::Database(db) => db.into(),
            HostError::Batch(db) if db.is_outage() => {
                Self::ServiceUnavailable("database unavailable")
            }
            HostError::Busy => Self::ServiceUnavailable("too many heartbeats waiting"),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::MailNotSent(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Gone(_) => StatusCode::GONE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable(_) | Self::NoMandelbox(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ClientGone => client_closed_request(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(
                error = cause.as_ref() as &dyn std::error::Error,
                "internal error"
            );
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::TooManyRequests(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            Self::NoMandelbox(code) => {
                return response.json(NotAssigned {
                    ip: None,
                    mandelbox_id: None,
                    error: (*code).to_owned(),
                });
            }
            Self::MailNotSent(why) => {
                return response.json(MailResult {
                    verified: Some(false),
                    status: Some(400),
                    error: Some(why.clone()),
                });
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
        })
    }
}

/// How a JSON body that cannot be read is answered: 415 for another content type,
/// 413 when too large, else 400 with the parser's message.
pub fn json_body_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let (status, message) = match &err {
        JsonPayloadError::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json".to_owned(),
        ),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(cause) => (
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {cause}"),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {other}"),
        ),
    };
    let response = HttpResponse::build(status).json(ErrorBody { error: message });
    actix_web::error::InternalError::from_response(err, response).into()
}

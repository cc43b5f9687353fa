use actix_web::{HttpResponse, web};
use mail::{MailError, MailRequest};
use serde_json::Value;

use crate::ApiState;
use crate::answers::MailResult;
use crate::error::ApiError;
use crate::extract::Admin;

/// `POST /mail` (admin scope) `{email_id, to_email, from_email?, email_args}`: renders
/// the template and sends it. 200 `{"verified": true, "status": 200}`; a mail that
/// cannot be sent, for whatever reason of the request's or the transport's, is 400
/// `{"verified": false, "status": 400, "error"}`.
#[utoipa::path(
    post,
    path = "/mail",
    tag = "operators",
    security(("user_token" = ["admin"])),
    request_body = MailRequest,
    responses(
        (status = 200, description = "Sent", body = crate::answers::MailResult),
        (status = 400, description = "Not sent: bad request, unknown template, missing argument, or the transport refused or failed", body = crate::answers::MailResult),
        (status = 401, description = "No or invalid token", body = crate::answers::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::answers::ErrorBody),
        (status = 503, description = "Mail not configured, or database unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %caller.user_id))]
pub async fn send_mail(
    Admin(caller): Admin,
    state: ApiState,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(mailer) = state.mailer.as_ref() else {
        return Err(ApiError::ServiceUnavailable("mail is not configured"));
    };
    let request: MailRequest =
        crate::body::parse(body.into_inner()).map_err(ApiError::MailNotSent)?;
    match mailer.send(&request).await {
        Ok(()) => Ok(HttpResponse::Ok().json(MailResult {
            verified: Some(true),
            status: Some(200),
            error: None,
        })),
        Err(MailError::Database(err)) => Err(err.into()),
        Err(err) => {
            tracing::warn!(template = %request.email_id, to = %request.to_email, error = &err as &dyn std::error::Error, "mail not sent");
            Err(ApiError::MailNotSent(err.to_string()))
        }
    }
}

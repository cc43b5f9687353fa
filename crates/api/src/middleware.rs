//! Cross-cutting HTTP behaviour: request logs, the body size limit, and a JSON error
//! body on every 4xx and 5xx answer, whoever produced it (actix itself included).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{Error, HttpResponse, web};
use tracing::Instrument;

use crate::answers::ErrorBody;
use crate::redact::redact_query;

/// The largest request body accepted, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The header that names a request, in the answer and in every log line of it.
pub const REQUEST_ID: &str = "x-request-id";

/// The request's id: the caller's `X-Request-Id` when it is a short plain token, else a
/// new one (unique in this process, and across processes with high probability).
fn request_id(req: &ServiceRequest) -> String {
    static PREFIX: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos() ^ std::process::id())
    });
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    match given {
        Some(id) => id.to_owned(),
        None => format!("{:08x}-{:x}", *PREFIX, NEXT.fetch_add(1, Ordering::Relaxed)),
    }
}

/// One log line per request (id, method, path, route, redacted query, status, latency,
/// peer) inside a span that every line of the request carries, the request's count and
/// latency in the metrics, and its id in the `X-Request-Id` answer header.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = crate::metrics::method_label(req.method().as_str());
    let path = req.path().to_owned();
    let query = redact_query(req.query_string());
    let peer = req
        .peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    let metrics = req
        .app_data::<web::Data<crate::ApiState>>()
        .map(|state| state.metrics.clone());
    let span = tracing::info_span!("request", %id, method, %path);
    let mut result = next.call(req).instrument(span.clone()).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let _entered = span.enter();
    match &mut result {
        Ok(response) => {
            let status = response.status().as_u16();
            let route = response.request().match_pattern().unwrap_or_default();
            let label = if route.is_empty() {
                "unmatched"
            } else {
                route.as_str()
            };
            if let Some(metrics) = metrics {
                metrics
                    .http
                    .observe(method, label, status, started.elapsed().as_secs_f64());
            }
            if let Ok(value) = HeaderValue::from_str(&id) {
                response
                    .headers_mut()
                    .insert(header::HeaderName::from_static(REQUEST_ID), value);
            }
            // A 503 is an answer of the contract (no capacity, a dependency down, whose
            // outage is logged where it starts and ends); any other 5xx is a bug.
            if status >= 500 && status != 503 {
                tracing::error!(status, %route, %query, %peer, latency_ms, "request failed");
            } else {
                tracing::info!(status, %route, %query, %peer, latency_ms, "request");
            }
        }
        Err(err) => tracing::error!(error = %err, %query, %peer, latency_ms, "request failed"),
    }
    result
}

/// Refuses, with 413 and before reading it, a body whose declared length is too large.
/// Bodies without a declared length are held to the same limit by the extractors.
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let limit = req
        .app_data::<web::Data<BodyLimit>>()
        .map_or(usize::MAX, |limit| limit.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        let response = HttpResponse::PayloadTooLarge().json(ErrorBody {
            error: format!("request body is larger than {limit} bytes"),
        });
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Gives an error answer that is not JSON yet a JSON body: `{"error": …}`. For 4xx
/// answers the message is the error's own (it describes the client's mistake); for
/// 5xx answers it is only the status's reason.
pub fn json_error_body<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = match response.response().error() {
        Some(err) if status.is_client_error() => err.to_string(),
        _ => reason.to_owned(),
    };
    let body = serde_json::to_string(&ErrorBody { error: message }).unwrap_or_default();
    let (request, mut response) = response.into_parts();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let response = response.set_body(BoxBody::new(body));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, response).map_into_right_body(),
    ))
}

//! Sorting AWS failures into temporary (retry with backoff) and permanent ones.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cloud_interface::CloudError;

/// Error codes that say "not now" rather than "no".
const TEMPORARY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "ResourceContention",
];

/// The error code of a failed call, if the service sent one.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

pub(crate) fn classify<E, R>(what: &str, err: &SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = format!("{what}: {}", DisplayErrorContext(err));
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            CloudError::Temporary(text)
        }
        _ if code(err).is_some_and(|code| TEMPORARY_CODES.contains(&code)) => {
            CloudError::Temporary(text)
        }
        _ => CloudError::Permanent(text),
    }
}

//! Sorting AWS failures into temporary (retry with backoff) and permanent ones.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
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

/// `err` of the call `what`, as a [`CloudError`] whose source it is.
pub(crate) fn classify<E, R>(what: &str, err: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let temporary = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => code(&err).is_some_and(|code| TEMPORARY_CODES.contains(&code)),
    };
    let what = match code(&err) {
        Some(code) => format!("{what}: {code}"),
        None => what.to_owned(),
    };
    if temporary {
        CloudError::temporary(what, Some(Box::new(err)))
    } else {
        CloudError::permanent(what, Some(Box::new(err)))
    }
}

//! What assignment tells the scaling layer: the trait is assignment's, so that
//! assignment depends on no scaling code; the `scaling` crate implements it.

use models::{AmiId, Region};

/// A request to look at one region's capacity soon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleCheck {
    pub region: Region,
    /// The image to look at; `None` for the region's active one.
    pub ami: Option<AmiId>,
}

/// Receives capacity checks after assignments and after refusals for lack of capacity.
/// Implementations return at once and do their work in the background.
pub trait ScalingHook: Send + Sync {
    fn check(&self, check: ScaleCheck);

    /// Resolves once no check asked for so far is still running, so that a test can
    /// look at what the checks did instead of sleeping and hoping they are done.
    fn idle(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Scaling that does nothing yet: the checks are only logged.
pub struct NoScaling;

impl ScalingHook for NoScaling {
    fn check(&self, check: ScaleCheck) {
        tracing::debug!(region = %check.region, ami = ?check.ami, "scale check (no scaling yet)");
    }
}

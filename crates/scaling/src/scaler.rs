//! The capacity checks assignment asks for, run in the background and folded so that a
//! burst of assignments or refusals costs one decision per fleet and interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use models::{AmiId, Region};

use crate::fleet::Fleet;
use assignment::{ScaleCheck, ScalingHook};

/// Fleets with a check running in this process; `true` when another was asked for meanwhile.
type Running = Mutex<HashMap<(Region, Option<AmiId>), bool>>;

fn lock_running(
    running: &Running,
) -> std::sync::MutexGuard<'_, HashMap<(Region, Option<AmiId>), bool>> {
    running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes a fleet out of [`Running`] when its check task ends, however it ends: a check
/// that panicked must not stop that fleet's checks in this process for good.
struct Finished {
    running: Arc<Running>,
    key: (Region, Option<AmiId>),
}

impl Drop for Finished {
    fn drop(&mut self) {
        lock_running(&self.running).remove(&self.key);
    }
}

/// The scaling hook assignment calls: each check runs in the background, and checks of
/// a fleet already being checked in this process (or checked less than
/// `check_interval` ago) fold into one more run after it, so a burst of assignments or
/// refusals costs one decision (and one pooled connection) per interval, not one each.
pub struct FleetScaler {
    fleet: Arc<Fleet>,
    running: Arc<Running>,
    runtime: tokio::runtime::Handle,
}

impl FleetScaler {
    /// Call within the runtime the checks should run on.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self {
            fleet,
            running: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Waits until no check is running (tests and shutdown).
    pub async fn idle(&self) {
        while !self.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Region, Option<AmiId>), bool>> {
        lock_running(&self.running)
    }
}

impl ScalingHook for FleetScaler {
    fn idle(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(FleetScaler::idle(self))
    }

    fn check(&self, check: ScaleCheck) {
        if !self.fleet.settings().autoscale {
            tracing::debug!(region = %check.region, "autoscale is off; no capacity check");
            return;
        }
        let key = (check.region, check.ami);
        {
            let mut running = self.lock();
            if let Some(again) = running.get_mut(&key) {
                *again = true;
                return;
            }
            running.insert(key.clone(), false);
        }
        let fleet = self.fleet.clone();
        let running = self.running.clone();
        self.runtime.spawn(async move {
            let finished = Finished { running, key };
            let (region, image) = &finished.key;
            loop {
                let wait = fleet.settings().lock_wait;
                if let Err(err) = fleet.check(region, image.as_ref(), wait).await {
                    tracing::error!(region = %region, error = &err as &dyn std::error::Error, "capacity check failed");
                }
                // Checks asked for from now on wait for the end of the interval.
                tokio::time::sleep(fleet.settings().check_interval).await;
                let again = match lock_running(&finished.running).get_mut(&finished.key) {
                    Some(again) => std::mem::take(again),
                    None => false,
                };
                if !again {
                    return;
                }
            }
        });
    }
}

//! Assigning a mandelbox to an instance (SPEC §5).
//!
//! Each try places the mandelbox in one statement, its own transaction
//! ([`models::instance::place`]), correct with any number of server processes sharing
//! the database:
//! - a per-user advisory lock serialises one user's requests, so the per-user limit
//!   holds;
//! - the chosen instance's row is locked (`FOR UPDATE`) while its slot is taken, and
//!   its free-slot count is kept by a trigger, so no instance exceeds its capacity and
//!   nothing lands on an instance that stopped being `ACTIVE`;
//! - candidates locked by other requests are skipped; if nothing else has room, the
//!   placement is tried again (the connection given back between tries): a request is
//!   refused for lack of capacity only when no matching instance has a free slot.
//!
//! Which refusal a try ends in is decided by `hardware.place_mandelbox` itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::Caller;
use billing::{PaymentError, Subscriptions};
use diesel::prelude::*;
use models::instance::{self, PlaceRequest, Placed, Placement, PlacementRule, Refusal, Slot};
use models::{
    CommitHash, Db, DbError, MandelboxId, Region, UnixMillis, demand, rate_limit, region_to_ami,
};

use crate::client::ClientAddress;
use crate::hook::{ScaleCheck, ScalingHook};
use crate::neighbours::RegionNeighbours;
use crate::outcome::{AssignError, AssignMetrics, Failure};
use crate::request::{AssignRequest, RegionChoice};
use crate::waiting::{Waiter, Waiting};

/// The commit hash that, in development and local environments, means "whatever the
/// region's active image serves".
pub const LOCAL_DEV_COMMIT_HASH: &str = "local_dev";

/// A mandelbox that was assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub mandelbox_id: MandelboxId,
    pub ip: String,
    pub instance: Slot,
}

/// The rules of assignment that come from configuration.
#[derive(Debug, Clone)]
pub struct AssignPolicy {
    /// Assign calls per client per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    pub mandelbox_limit_per_user: u32,
    /// Whether `local_dev` means the active image's commit hash (development, local).
    pub local_dev_commit_hash: bool,
    pub neighbours: RegionNeighbours,
    /// How long a refusal for lack of capacity counts as unmet demand (SPEC §7).
    pub refusal_counts_for: Duration,
    /// `PLACEMENT`: which instance with room a mandelbox goes to.
    pub placement: PlacementRule,
}

impl Default for AssignPolicy {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 10,
            mandelbox_limit_per_user: 1,
            local_dev_commit_hash: false,
            neighbours: RegionNeighbours::default(),
            refusal_counts_for: demand::REFUSAL_COUNTS_FOR,
            placement: PlacementRule::Packed,
        }
    }
}

pub struct Assigner {
    db: Db,
    payments: Arc<dyn Subscriptions>,
    scaling: Arc<dyn ScalingHook>,
    /// Shared with each request's database work without copying it.
    policy: Arc<AssignPolicy>,
    metrics: AssignMetrics,
    waiting: Waiting,
}

/// How long an assignment keeps looking at room that other transactions hold, before it
/// answers `SERVICE_UNAVAILABLE` (as long as it waited for a row lock before).
const LOCKED_ROOM_WAIT: Duration = Duration::from_secs(5);
/// The pauses between looks: doubling from the first to the last.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LAST_PAUSE: Duration = Duration::from_millis(8);

/// What the transaction decided.
enum Outcome {
    Assigned(Slot, MandelboxId),
    /// Refused; with the region whose capacity should be looked at, if any.
    Refused(Failure, Option<Region>),
}

impl Assigner {
    pub fn new(
        db: Db,
        payments: Arc<dyn Subscriptions>,
        scaling: Arc<dyn ScalingHook>,
        policy: AssignPolicy,
        metrics: AssignMetrics,
        waiting: Waiting,
    ) -> Self {
        Self {
            db,
            payments,
            scaling,
            policy: Arc::new(policy),
            metrics,
            waiting,
        }
    }

    pub fn metrics(&self) -> &AssignMetrics {
        &self.metrics
    }

    /// Assigns a mandelbox for `request`, made by `caller` from `client`.
    pub async fn assign(
        &self,
        caller: &Caller,
        request: AssignRequest,
        client: ClientAddress,
    ) -> Result<Assignment, AssignError> {
        self.assign_unless_gone(caller, request, client, std::future::pending())
            .await
    }

    /// [`Assigner::assign`], giving up with [`AssignError::ClientGone`] if `gone`
    /// completes while the request waits for a slot (never in the middle of a try, so a
    /// slot is never taken for a client that left).
    pub async fn assign_unless_gone(
        &self,
        caller: &Caller,
        request: AssignRequest,
        client: ClientAddress,
        gone: impl Future<Output = ()>,
    ) -> Result<Assignment, AssignError> {
        let result = self.assign_counted(caller, request, client, gone).await;
        let outcome = match &result {
            Ok(_) => "ASSIGNED",
            Err(err) => err.outcome(),
        };
        self.metrics.count(outcome);
        result
    }

    async fn assign_counted(
        &self,
        caller: &Caller,
        request: AssignRequest,
        client: ClientAddress,
        gone: impl Future<Output = ()>,
    ) -> Result<Assignment, AssignError> {
        if request.username != caller.user_id && !caller.is_admin() {
            return Err(AssignError::Forbidden);
        }
        self.check_rate(client).await?;
        if !caller.is_admin() {
            self.check_payment(caller).await?;
        }

        let request = Arc::new(request);
        let deadline = Instant::now() + request.wait;
        let mut waiter: Option<Waiter<'_>> = None;
        let mut outcome = self.try_once(&request).await;
        let mut gone = std::pin::pin!(gone);
        loop {
            let failure = match outcome {
                Err(err) => {
                    end_wait(&mut waiter, err.outcome());
                    return Err(err);
                }
                Ok(Outcome::Assigned(slot, mandelbox_id)) => {
                    end_wait(&mut waiter, "ASSIGNED");
                    return Ok(self.assigned(slot, mandelbox_id));
                }
                Ok(Outcome::Refused(failure, region)) => {
                    // The fleet is told at the first refusal.
                    if let (None, Some(region)) = (&waiter, region) {
                        self.scaling.check(ScaleCheck { region, ami: None });
                    }
                    failure
                }
            };
            let waits = matches!(
                failure,
                Failure::NoInstanceAvailable | Failure::ServiceUnavailable
            ) && !request.wait.is_zero();
            if waits {
                let waiting = waiter.get_or_insert_with(|| self.waiting.begin());
                let turn = tokio::select! {
                    turn = waiting.next_turn(deadline) => turn,
                    () = &mut gone => {
                        end_wait(&mut waiter, AssignError::ClientGone.outcome());
                        return Err(AssignError::ClientGone);
                    }
                };
                if let Some(turn) = turn {
                    // Looking again with the turn held: waiters of this process are
                    // served in the order they were woken.
                    outcome = self.try_once(&request).await;
                    drop(turn);
                    continue;
                }
            }
            end_wait(&mut waiter, failure.code());
            return Err(AssignError::Refused(failure));
        }
    }

    fn assigned(&self, slot: Slot, mandelbox_id: MandelboxId) -> Assignment {
        self.scaling.check(ScaleCheck {
            region: slot.location.clone(),
            ami: Some(slot.aws_ami_id.clone()),
        });
        Assignment {
            mandelbox_id,
            ip: slot.ip.clone(),
            instance: slot,
        }
    }

    /// One try: the placement in one statement, looked at again (with the connection
    /// given back between looks) while the room it could use is held by others. The
    /// room they hold is taken or given back within milliseconds; a row is never waited
    /// for in the database, since a statement that waited keeps the locks of the rows
    /// it then found full, which can end in a deadlock.
    async fn try_once(&self, request: &Arc<AssignRequest>) -> Result<Outcome, AssignError> {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            let (policy, asked) = (self.policy.clone(), request.clone());
            let placed = self
                .db
                .run(move |conn| place_or_refuse(conn, &policy, &asked))
                .await?;
            if let Some(outcome) = placed {
                return Ok(outcome);
            }
            if started.elapsed() >= LOCKED_ROOM_WAIT {
                tracing::debug!(user = %request.username, "assignment: room stayed held by others");
                return Ok(Outcome::Refused(Failure::ServiceUnavailable, None));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_PAUSE);
        }
    }

    async fn check_rate(&self, client: ClientAddress) -> Result<(), AssignError> {
        let limit = self.policy.rate_limit_per_minute;
        if limit == 0 {
            return Ok(());
        }
        let key = client.rate_key();
        let now = UnixMillis::now();
        let hits = self
            .db
            .run(move |conn| Ok(rate_limit::hit(conn, &key, now)?))
            .await?;
        if hits.in_last_minute() > f64::from(limit) {
            let left_in_window = rate_limit::WINDOW_MILLIS - hits.elapsed_millis;
            let retry_after_secs = u64::try_from(left_in_window)
                .unwrap_or(60_000)
                .div_ceil(1000)
                .max(1);
            return Err(AssignError::RateLimited { retry_after_secs });
        }
        Ok(())
    }

    async fn check_payment(&self, caller: &Caller) -> Result<(), AssignError> {
        let Some(customer) = &caller.stripe_customer_id else {
            return Err(AssignError::NoCustomer);
        };
        match self.payments.is_paying(customer).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AssignError::NotPaying),
            Err(err @ (PaymentError::Unavailable(_) | PaymentError::NotConfigured)) => {
                Err(AssignError::Unavailable(Box::new(err)))
            }
        }
    }
}

/// Records how a wait ended, if the request waited.
fn end_wait(waiter: &mut Option<Waiter<'_>>, outcome: &'static str) {
    if let Some(waiter) = waiter.as_mut() {
        waiter.ended(outcome);
    }
}

/// One placement, and what its answer means: `None` when the room it could use is held
/// by other transactions right now. The rules are `hardware.place_mandelbox`'s; this
/// maps its refusals and records unmet demand.
fn place_or_refuse(
    conn: &mut PgConnection,
    policy: &AssignPolicy,
    request: &AssignRequest,
) -> Result<Option<Outcome>, DbError> {
    let mut wanted: Vec<(Region, Option<CommitHash>)> = Vec::new();
    for region in asked_regions(policy, &request.regions) {
        if wanted.iter().all(|(seen, _)| *seen != region) {
            let hash = commit_hash_for(conn, policy, &region, &request.client_commit_hash)?;
            wanted.push((region, hash));
        }
    }
    let mandelbox_id = MandelboxId::new_v4();
    let now = UnixMillis::now();
    let place = PlaceRequest {
        placement: Placement {
            mandelbox_id: &mandelbox_id,
            user_id: &request.username,
            now,
        },
        regions: &wanted,
        // A single region must itself be enabled; its neighbours are only the fallback.
        first_required: matches!(request.regions, RegionChoice::One(_)),
        user_limit: i64::from(policy.mandelbox_limit_per_user),
        rule: policy.placement,
    };
    let (refusal, region) = match instance::place(conn, &place)? {
        Placed::On(slot) => return Ok(Some(Outcome::Assigned(slot, mandelbox_id))),
        Placed::Refused(refusal, region) => (refusal, region),
    };
    let failure = match refusal {
        Refusal::RoomHeld => return Ok(None),
        Refusal::UserAlreadyActive => {
            return Ok(Some(Outcome::Refused(Failure::UserAlreadyActive, None)));
        }
        Refusal::RegionNotEnabled => {
            return Ok(Some(Outcome::Refused(Failure::RegionNotEnabled, None)));
        }
        Refusal::CommitHashMismatch => Failure::CommitHashMismatch,
        Refusal::NoInstanceAvailable => {
            if let Some(region) = &region {
                let (counts_for, wait) = (policy.refusal_counts_for, request.wait);
                demand::record(conn, &request.username, region, now, counts_for, wait)?;
            }
            Failure::NoInstanceAvailable
        }
    };
    Ok(Some(Outcome::Refused(failure, region)))
}

/// The regions to try, in order, before filtering out disabled ones: the client's list,
/// or the region and then its bundled neighbours.
fn asked_regions(policy: &AssignPolicy, choice: &RegionChoice) -> Vec<Region> {
    match choice {
        RegionChoice::Ordered(list) => list.clone(),
        RegionChoice::One(region) => std::iter::once(region.clone())
            .chain(policy.neighbours.of(region).iter().cloned())
            .collect(),
    }
}

/// The commit hash to match in `region`: the client's, or under the development
/// override the one the region's active image serves (none if it has no active image).
fn commit_hash_for(
    conn: &mut PgConnection,
    policy: &AssignPolicy,
    region: &Region,
    asked: &CommitHash,
) -> Result<Option<CommitHash>, DbError> {
    if policy.local_dev_commit_hash && asked.as_str() == LOCAL_DEV_COMMIT_HASH {
        return Ok(region_to_ami::active(conn, region)?.map(|active| active.client_commit_hash));
    }
    Ok(Some(asked.clone()))
}

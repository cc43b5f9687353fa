//! How many instances one (region, image) should gain or lose (SPEC §7), as a pure
//! function of a snapshot of its instances, so the rules are tested without a database
//! or a cloud.

use std::time::Duration;

use models::{InstanceName, InstanceStatus, UnixMillis};

use crate::ScalingPolicy;
use crate::adaptive::{self, AdaptiveBounds, Observed};

/// One instance of the (region, image), as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLoad {
    pub name: InstanceName,
    pub status: InstanceStatus,
    pub capacity: i64,
    pub mandelboxes: i64,
    /// `DRAINING` by a consolidation whose host was not asked yet: it may be taken
    /// back instead of launching.
    pub reclaimable: bool,
    /// The latest expected end of its sessions (0 for none known).
    pub expected_end: UnixMillis,
}

/// The (region, image) being sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetView {
    /// The region is known and enabled.
    pub region_enabled: bool,
    /// The image is the region's active one.
    pub image_active: bool,
    pub instances: Vec<InstanceLoad>,
    /// Every instance of the region, of any image: what `MAX_INSTANCES_PER_REGION` caps.
    pub region_instances: u32,
    /// Users of the region refused for lack of capacity in the last minute, or waiting
    /// for a slot, and not served since (`models::demand`): slots wanted on top of
    /// `desired_free`.
    pub unmet_demand: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingPolicy {
    /// `DESIRED_FREE_MANDELBOXES`.
    pub desired_free: i64,
    /// `DEFAULT_INSTANCE_BUFFER`: the fewest instances a scale-up launches.
    pub buffer: u32,
    /// `MAX_INSTANCES_PER_REGION`: launches never take the fleet past it.
    pub max_instances: Option<u32>,
    /// The slots an instance is expected to bring while none of the region has
    /// registered yet (what the cloud provider says of the instance type launched); once
    /// some have, their mean capacity is used instead.
    pub expected_capacity: i64,
    /// Whether too much room may be given back by draining the least-loaded instance
    /// even if it has sessions (`SCALING_POLICY=adaptive`), not only an empty one.
    pub consolidate: bool,
    /// Whether an empty instance is drained only if the free slots stay a quarter of an
    /// instance over the buffer after it (`SCALING_POLICY=adaptive`), so that the next
    /// few arrivals do not launch it right back: a launch pays a boot's worth of idle
    /// slots. Without, the original's rule: an instance over.
    pub hysteresis: bool,
}

/// What a sizing policy is made from that does not change between decisions: the
/// settings (`SCALING_POLICY` and its numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingRules {
    pub policy: ScalingPolicy,
    /// `DESIRED_FREE_MANDELBOXES`: the fixed policy's buffer, and the adaptive one's
    /// until the region has shown something.
    pub desired_free: i64,
    pub buffer: u32,
    pub max_instances: Option<u32>,
    /// The boot time assumed before a region's first boot is measured.
    pub default_boot_time: Duration,
    /// How long after a slot is taken the fleet may notice (the check's interval).
    pub reaction: Duration,
}

impl SizingPolicy {
    /// The policy of one decision, from the rules and what the region showed: the one
    /// place `SCALING_POLICY` becomes a buffer and drain rules, for `Fleet::check` and
    /// the fleet model alike. `expected_capacity` is the slots a launched instance is
    /// expected to bring (at least 1 is used).
    pub fn new(rules: &SizingRules, observed: Option<&Observed>, expected_capacity: i64) -> Self {
        let adaptive = matches!(rules.policy, ScalingPolicy::Adaptive { .. });
        let (desired_free, consolidate) = match (rules.policy, observed) {
            (ScalingPolicy::Adaptive { min, max, margin }, Some(observed)) => {
                let bounds = AdaptiveBounds {
                    min,
                    max,
                    default_boot_time: rules.default_boot_time,
                    reaction: rules.reaction,
                    margin,
                };
                (
                    adaptive::desired_free(observed, &bounds),
                    adaptive::shrinking(observed),
                )
            }
            _ => (rules.desired_free, false),
        };
        Self {
            desired_free,
            buffer: rules.buffer,
            max_instances: rules.max_instances,
            expected_capacity: expected_capacity.max(1),
            consolidate,
            hysteresis: adaptive,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    Launch(u32),
    /// Drain these instances (all empty).
    Drain(Vec<InstanceName>),
    /// Drain this instance, the least loaded, whose sessions go on where they are; its
    /// host is asked once they have ended, and until then it may be taken back.
    Consolidate(InstanceName),
    /// Make these consolidated instances `ACTIVE` again, and launch `launch` more: what
    /// is booted already brings its free slots now, a launch a boot later.
    TakeBack {
        instances: Vec<InstanceName>,
        launch: u32,
    },
}

/// Instances that count as capacity: `ACTIVE` ones, and `PRE_CONNECTION` ones on their way.
fn counts(instance: &InstanceLoad) -> bool {
    matches!(
        instance.status,
        InstanceStatus::Active | InstanceStatus::PreConnection
    )
}

/// Empty `ACTIVE` instances, the only ones ever drained, emptiest-capacity first.
fn empty_active(view: &FleetView) -> Vec<InstanceName> {
    let mut empty: Vec<&InstanceLoad> = view
        .instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Active && i.mandelboxes == 0)
        .collect();
    empty.sort_by(|a, b| a.capacity.cmp(&b.capacity).then(a.name.cmp(&b.name)));
    empty.into_iter().map(|i| i.name.clone()).collect()
}

/// The instances of `capacity` slots (at least 1) that bring `slots` slots.
fn instances_for(slots: i64, capacity: i64) -> u32 {
    if slots <= 0 {
        return 0;
    }
    let capacity = capacity.max(1);
    u32::try_from((slots + capacity - 1) / capacity).unwrap_or(u32::MAX)
}

pub fn decide(view: &FleetView, policy: &SizingPolicy) -> Decision {
    // A region we do not serve, or an image that is not the active one: everything of it
    // goes, as soon as it is empty.
    if !view.region_enabled || !view.image_active {
        let empty = empty_active(view);
        return if empty.is_empty() {
            Decision::Nothing
        } else {
            Decision::Drain(empty)
        };
    }
    let live: Vec<&InstanceLoad> = view.instances.iter().filter(|i| counts(i)).collect();
    let registered: Vec<&&InstanceLoad> = live
        .iter()
        .filter(|i| i.status == InstanceStatus::Active)
        .collect();
    let average_capacity = if registered.is_empty() {
        policy.expected_capacity
    } else {
        registered.iter().map(|i| i.capacity).sum::<i64>() / registered.len() as i64
    }
    .max(1);
    let free: i64 = live
        .iter()
        .map(|i| match i.status {
            InstanceStatus::PreConnection => average_capacity,
            _ => (i.capacity - i.mandelboxes).max(0),
        })
        .sum();

    let demand = view.unmet_demand.max(0);
    let wanted_free = policy.desired_free.saturating_add(demand);
    let wanted = if live.is_empty() {
        // One instance, or enough for everyone already asking.
        instances_for(demand, average_capacity).max(1)
    } else if free < wanted_free {
        instances_for(wanted_free - free, average_capacity).max(policy.buffer)
    } else {
        0
    };
    if wanted > 0 {
        // Consolidated instances first, then launches for what they do not bring.
        let missing = if live.is_empty() {
            demand.max(1)
        } else {
            wanted_free - free
        };
        let (taken, missing) = take_back(view, missing);
        let wanted = match (taken.is_empty(), missing > 0) {
            (true, _) => wanted,
            (false, true) => instances_for(missing, average_capacity).max(policy.buffer),
            (false, false) => 0,
        };
        let existing = view
            .region_instances
            .max(u32::try_from(view.instances.len()).unwrap_or(u32::MAX));
        let allowed = policy
            .max_instances
            .map_or(wanted, |max| wanted.min(max.saturating_sub(existing)));
        return match (taken.is_empty(), allowed) {
            (true, 0) => Decision::Nothing,
            (true, launch) => Decision::Launch(launch),
            (false, launch) => Decision::TakeBack {
                instances: taken,
                launch,
            },
        };
    }
    let margin = if policy.hysteresis {
        average_capacity / 4
    } else {
        0
    };
    if free < wanted_free.saturating_add(average_capacity + margin) {
        return Decision::Nothing;
    }
    if let Some(first) = empty_active(view).into_iter().next() {
        return Decision::Drain(vec![first]);
    }
    if policy.consolidate {
        // Still more than an instance over the buffer after the drain, so that a rise
        // does not launch right back what was drained.
        let spare = free - wanted_free - average_capacity;
        return least_loaded(view, spare).map_or(Decision::Nothing, Decision::Consolidate);
    }
    Decision::Nothing
}

/// The reclaimable instances that bring `missing` slots, or all there are: the one
/// expected to be paid for longest first (its free slots are paid for anyway; one
/// that empties sooner is better let go), then the roomier, then by name. Returns them
/// and the slots still missing.
fn take_back(view: &FleetView, mut missing: i64) -> (Vec<InstanceName>, i64) {
    let mut reclaimable: Vec<&InstanceLoad> = view
        .instances
        .iter()
        .filter(|i| i.reclaimable && i.capacity > i.mandelboxes)
        .collect();
    reclaimable.sort_by(|a, b| {
        b.expected_end
            .cmp(&a.expected_end)
            .then((b.capacity - b.mandelboxes).cmp(&(a.capacity - a.mandelboxes)))
            .then(a.name.cmp(&b.name))
    });
    let mut taken = Vec::new();
    for instance in reclaimable {
        if missing <= 0 {
            break;
        }
        missing -= instance.capacity - instance.mandelboxes;
        taken.push(instance.name.clone());
    }
    (taken, missing)
}

/// The most sessions an instance of `capacity` slots may hold to be consolidated: one,
/// or an eighth of its slots if that is more. A draining instance is paid until its
/// last session ends, and sessions outlive one another by hours: draining a busier one
/// only pays for its free slots while the room is launched again elsewhere.
pub fn consolidable_sessions(capacity: i64) -> i64 {
    (capacity / 8).max(1)
}

/// The `ACTIVE` instance with the fewest sessions, no more than
/// [`consolidable_sessions`], whose free slots are at most `spare`; ties go to the
/// larger, then by name.
fn least_loaded(view: &FleetView, spare: i64) -> Option<InstanceName> {
    view.instances
        .iter()
        .filter(|i| {
            i.status == InstanceStatus::Active
                && i.mandelboxes <= consolidable_sessions(i.capacity)
                && (i.capacity - i.mandelboxes).max(0) <= spare
        })
        .min_by(|a, b| {
            a.mandelboxes
                .cmp(&b.mandelboxes)
                .then(b.capacity.cmp(&a.capacity))
                .then(a.name.cmp(&b.name))
        })
        .map(|i| i.name.clone())
}

#[cfg(test)]
mod tests;

//! How many instances one (region, image) should gain or lose (SPEC §7), as a pure
//! function of a snapshot of its instances, so the rules are tested without a database
//! or a cloud.

use models::{InstanceName, InstanceStatus};

/// One instance of the (region, image), as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLoad {
    pub name: InstanceName,
    pub status: InstanceStatus,
    pub capacity: i64,
    pub mandelboxes: i64,
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
    /// The slots an instance is expected to bring while none has registered yet.
    pub expected_capacity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    Launch(u32),
    /// Drain these instances (all empty).
    Drain(Vec<InstanceName>),
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
        let existing = view
            .region_instances
            .max(u32::try_from(view.instances.len()).unwrap_or(u32::MAX));
        let allowed = policy
            .max_instances
            .map_or(wanted, |max| wanted.min(max.saturating_sub(existing)));
        return if allowed == 0 {
            Decision::Nothing
        } else {
            Decision::Launch(allowed)
        };
    }
    if free >= wanted_free.saturating_add(average_capacity)
        && let Some(first) = empty_active(view).into_iter().next()
    {
        return Decision::Drain(vec![first]);
    }
    Decision::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: SizingPolicy = SizingPolicy {
        desired_free: 10,
        buffer: 1,
        max_instances: None,
        expected_capacity: 10,
    };

    fn instance(
        name: &str,
        status: InstanceStatus,
        capacity: i64,
        mandelboxes: i64,
    ) -> InstanceLoad {
        InstanceLoad {
            name: InstanceName::parse(name).unwrap(),
            status,
            capacity,
            mandelboxes,
        }
    }

    fn active(name: &str, capacity: i64, mandelboxes: i64) -> InstanceLoad {
        instance(name, InstanceStatus::Active, capacity, mandelboxes)
    }

    fn view(instances: Vec<InstanceLoad>) -> FleetView {
        FleetView {
            region_enabled: true,
            image_active: true,
            region_instances: u32::try_from(instances.len()).unwrap(),
            instances,
            unmet_demand: 0,
        }
    }

    fn wanting(instances: Vec<InstanceLoad>, unmet_demand: i64) -> FleetView {
        FleetView {
            unmet_demand,
            ..view(instances)
        }
    }

    fn names(list: &[&str]) -> Vec<InstanceName> {
        list.iter()
            .map(|n| InstanceName::parse(n).unwrap())
            .collect()
    }

    #[test]
    fn an_empty_fleet_launches_one() {
        assert_eq!(decide(&view(vec![]), &POLICY), Decision::Launch(1));
    }

    #[test]
    fn a_low_buffer_launches_enough_to_cover_the_shortfall() {
        // 10 wanted free, 2 free: a shortfall of 8, one instance of 10 covers it.
        assert_eq!(
            decide(&view(vec![active("a", 10, 8)]), &POLICY),
            Decision::Launch(1)
        );
        // All full: 10 short; instances of capacity 4 → three of them.
        let full = vec![active("a", 4, 4), active("b", 4, 4)];
        assert_eq!(decide(&view(full), &POLICY), Decision::Launch(3));
        // At least the buffer, even when one would do.
        let buffered = SizingPolicy {
            buffer: 2,
            ..POLICY
        };
        assert_eq!(
            decide(&view(vec![active("a", 10, 9)]), &buffered),
            Decision::Launch(2)
        );
    }

    #[test]
    fn instances_on_their_way_count_as_capacity() {
        let booting = vec![
            active("a", 10, 9),
            instance("b", InstanceStatus::PreConnection, 0, 0),
        ];
        assert_eq!(decide(&view(booting), &POLICY), Decision::Nothing);
    }

    #[test]
    fn draining_and_unresponsive_capacity_does_not_count() {
        let fleet = vec![
            active("a", 10, 10),
            instance("b", InstanceStatus::Draining, 10, 0),
            instance("c", InstanceStatus::HostServiceUnresponsive, 10, 0),
        ];
        assert_eq!(decide(&view(fleet), &POLICY), Decision::Launch(1));
    }

    #[test]
    fn a_good_buffer_does_nothing() {
        assert_eq!(
            decide(&view(vec![active("a", 10, 0)]), &POLICY),
            Decision::Nothing
        );
        let split = vec![active("a", 10, 5), active("b", 10, 5)];
        assert_eq!(decide(&view(split), &POLICY), Decision::Nothing);
    }

    #[test]
    fn an_overfull_buffer_drains_one_empty_instance() {
        // 30 free, 10 wanted + 10 average: one empty instance goes.
        let fleet = vec![active("a", 10, 0), active("b", 10, 0), active("c", 10, 0)];
        assert_eq!(
            decide(&view(fleet), &POLICY),
            Decision::Drain(names(&["a"]))
        );
        // Too much room but nothing empty: nothing to drain.
        let busy = vec![active("a", 20, 1), active("b", 20, 1)];
        assert_eq!(decide(&view(busy), &POLICY), Decision::Nothing);
    }

    #[test]
    fn a_disabled_region_or_inactive_image_drains_every_empty_instance() {
        let fleet = vec![active("a", 10, 0), active("b", 10, 3), active("c", 10, 0)];
        for (region_enabled, image_active) in [(false, true), (true, false)] {
            let view = FleetView {
                region_enabled,
                image_active,
                instances: fleet.clone(),
                region_instances: 3,
                unmet_demand: 0,
            };
            assert_eq!(decide(&view, &POLICY), Decision::Drain(names(&["a", "c"])));
        }
        let nothing_empty = FleetView {
            region_enabled: false,
            image_active: true,
            instances: vec![active("b", 10, 3)],
            region_instances: 1,
            unmet_demand: 0,
        };
        assert_eq!(decide(&nothing_empty, &POLICY), Decision::Nothing);
    }

    #[test]
    fn launches_stop_at_the_instance_cap() {
        let capped = SizingPolicy {
            max_instances: Some(3),
            ..POLICY
        };
        let full = vec![active("a", 2, 2), active("b", 2, 2)];
        assert_eq!(decide(&view(full.clone()), &capped), Decision::Launch(1));
        let at_cap = SizingPolicy {
            max_instances: Some(2),
            ..POLICY
        };
        assert_eq!(decide(&view(full.clone()), &at_cap), Decision::Nothing);
        // The cap is per region: instances of other images count against it.
        let crowded = FleetView {
            region_instances: 3,
            ..view(full)
        };
        assert_eq!(decide(&crowded, &capped), Decision::Nothing);
    }

    #[test]
    fn a_buffer_split_across_instances_adds_up() {
        // 3 + 3 + 4 free = 10: enough, nothing to do.
        let split = vec![active("a", 10, 7), active("b", 10, 7), active("c", 10, 6)];
        assert_eq!(decide(&view(split), &POLICY), Decision::Nothing);
        // 3 + 3 + 3 = 9: one short, one more instance.
        let short = vec![active("a", 10, 7), active("b", 10, 7), active("c", 10, 7)];
        assert_eq!(decide(&view(short), &POLICY), Decision::Launch(1));
    }

    #[test]
    fn a_large_shortfall_launches_many() {
        // 50 wanted, none free, instances of 10: five of them.
        let big = SizingPolicy {
            desired_free: 50,
            ..POLICY
        };
        let full = vec![active("a", 10, 10)];
        assert_eq!(decide(&view(full), &big), Decision::Launch(5));
    }

    #[test]
    fn unmet_demand_launches_enough_for_everyone_in_one_round() {
        // 40 users asking an empty region, instances of 8 expected: five at once.
        let eight = SizingPolicy {
            expected_capacity: 8,
            ..POLICY
        };
        assert_eq!(decide(&wanting(vec![], 40), &eight), Decision::Launch(5));
        // Without demand an empty region still gets its one instance.
        assert_eq!(decide(&wanting(vec![], 0), &eight), Decision::Launch(1));
        // One full instance of 8, 40 waiting: 10 wanted free + 40 = 50 short, 7 of 8.
        let full = vec![active("a", 8, 8)];
        assert_eq!(decide(&wanting(full, 40), &eight), Decision::Launch(7));
        // Instances on their way count: 7 booting cover those 50.
        let mut booting = vec![active("a", 8, 8)];
        for i in 0..7 {
            booting.push(instance(
                &format!("b{i}"),
                InstanceStatus::PreConnection,
                0,
                0,
            ));
        }
        assert_eq!(decide(&wanting(booting, 40), &eight), Decision::Nothing);
    }

    #[test]
    fn unmet_demand_keeps_room_from_being_drained() {
        // 30 free would drain one of 10 without demand; 15 users waiting keep it.
        let fleet = vec![active("a", 10, 0), active("b", 10, 0), active("c", 10, 0)];
        assert_eq!(
            decide(&wanting(fleet.clone(), 0), &POLICY),
            Decision::Drain(names(&["a"]))
        );
        assert_eq!(decide(&wanting(fleet, 15), &POLICY), Decision::Nothing);
    }
}

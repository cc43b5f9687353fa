//! The sizing rules, case by case.

use super::*;

const POLICY: SizingPolicy = SizingPolicy {
    desired_free: 10,
    buffer: 1,
    max_instances: None,
    expected_capacity: 10,
    consolidate: false,
    hysteresis: false,
};

fn instance(name: &str, status: InstanceStatus, capacity: i64, mandelboxes: i64) -> InstanceLoad {
    InstanceLoad {
        name: InstanceName::parse(name).unwrap(),
        status,
        capacity,
        mandelboxes,
        reclaimable: false,
        expected_end: UnixMillis::from_millis(0),
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
fn with_hysteresis_an_empty_instance_goes_only_a_quarter_instance_over_an_instance() {
    let adaptive = SizingPolicy {
        hysteresis: true,
        ..POLICY
    };
    // 21 free, 10 wanted + 10 average: the original's rule drains; with hysteresis the
    // next few arrivals would launch it back, so it stays until 22 (10 + 10 + 10 / 4).
    let fleet = vec![active("a", 10, 0), active("b", 10, 9), active("c", 10, 0)];
    assert_eq!(
        decide(&view(fleet.clone()), &POLICY),
        Decision::Drain(names(&["a"]))
    );
    assert_eq!(decide(&view(fleet), &adaptive), Decision::Nothing);
    let roomier = vec![active("a", 10, 0), active("b", 10, 8), active("c", 10, 0)];
    assert_eq!(
        decide(&view(roomier), &adaptive),
        Decision::Drain(names(&["a"]))
    );
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

#[test]
fn consolidation_drains_the_least_loaded_instance_when_room_exceeds_an_instance() {
    let adaptive = SizingPolicy {
        consolidate: true,
        ..POLICY
    };
    // 10 wanted, 9 + 8 + 7 + 8 + 6 = 38 free: the instance with a single session goes,
    // and its 9 free slots leave 29, still more than an instance over.
    let fleet = vec![
        active("a", 10, 1),
        active("b", 10, 2),
        active("c", 10, 3),
        active("d", 10, 2),
        active("e", 10, 4),
    ];
    assert_eq!(
        decide(&view(fleet.clone()), &adaptive),
        Decision::Consolidate(InstanceName::parse("a").unwrap())
    );
    // The fixed policy drains only empty instances.
    assert_eq!(decide(&view(fleet.clone()), &POLICY), Decision::Nothing);
    // Demand holds room back as it does for launches.
    assert_eq!(decide(&wanting(fleet, 10), &adaptive), Decision::Nothing);
    // An empty instance goes first, as in the fixed policy.
    let with_empty = vec![
        active("a", 10, 1),
        active("b", 10, 2),
        active("c", 10, 6),
        active("d", 10, 0),
    ];
    assert_eq!(
        decide(&view(with_empty), &adaptive),
        Decision::Drain(names(&["d"]))
    );
    // 20 free, just an instance over: draining any would leave less than an instance
    // over the buffer.
    let snug = vec![active("a", 10, 1), active("b", 10, 2), active("c", 10, 7)];
    assert_eq!(decide(&view(snug), &adaptive), Decision::Nothing);
}

#[test]
fn an_instance_with_more_than_one_session_in_eight_slots_is_never_consolidated() {
    let adaptive = SizingPolicy {
        consolidate: true,
        ..POLICY
    };
    // 40 free, but every instance holds 2 of 10: each would be paid for hours more
    // while its room is launched again elsewhere.
    let busy = (0..5).map(|n| active(&format!("i{n}"), 10, 2)).collect();
    assert_eq!(decide(&view(busy), &adaptive), Decision::Nothing);
    // An instance of 16 slots may hold two.
    let large = (0..5).map(|n| active(&format!("i{n}"), 16, 2)).collect();
    assert_eq!(
        decide(&view(large), &adaptive),
        Decision::Consolidate(InstanceName::parse("i0").unwrap())
    );
    assert_eq!(consolidable_sessions(1), 1);
    assert_eq!(consolidable_sessions(8), 1);
    assert_eq!(consolidable_sessions(24), 3);
}

#[test]
fn consolidation_never_takes_the_buffer_below_what_is_wanted() {
    let adaptive = SizingPolicy {
        consolidate: true,
        ..POLICY
    };
    // 34 free, 13 slots an instance on average; the least loaded, largest, has 19 free
    // slots: draining it would leave 15, not an instance over the buffer. The next one
    // goes.
    let fleet = vec![active("big", 20, 1), active("a", 10, 1), active("b", 10, 4)];
    assert_eq!(
        decide(&view(fleet), &adaptive),
        Decision::Consolidate(InstanceName::parse("a").unwrap())
    );
    // Draining and booting instances are never picked.
    let others = vec![
        active("a", 10, 9),
        instance("d", InstanceStatus::Draining, 10, 1),
        instance("p", InstanceStatus::PreConnection, 0, 0),
        active("b", 10, 2),
        active("c", 10, 1),
        active("e", 10, 2),
    ];
    assert_eq!(
        decide(&view(others), &adaptive),
        Decision::Consolidate(InstanceName::parse("c").unwrap())
    );
}

/// A consolidated instance: `DRAINING`, reclaimable, its last session expected to end
/// at `expected_end` (ms).
fn consolidated(name: &str, capacity: i64, mandelboxes: i64, expected_end: i64) -> InstanceLoad {
    InstanceLoad {
        reclaimable: true,
        expected_end: UnixMillis::from_millis(expected_end),
        ..instance(name, InstanceStatus::Draining, capacity, mandelboxes)
    }
}

#[test]
fn a_shortfall_takes_consolidated_instances_back_before_launching() {
    // 2 free, 10 wanted: the one expected to run longest brings 9, enough.
    let fleet = vec![
        active("a", 10, 8),
        consolidated("soon", 10, 1, 1_000),
        consolidated("late", 10, 1, 9_000),
    ];
    assert_eq!(
        decide(&view(fleet), &POLICY),
        Decision::TakeBack {
            instances: names(&["late"]),
            launch: 0
        }
    );
    // 0 free: both (18), and a launch for the 2 still missing.
    let fleet = vec![
        active("a", 10, 10),
        consolidated("soon", 10, 1, 1_000),
        consolidated("late", 10, 1, 9_000),
        consolidated("later-but-full", 10, 10, 20_000),
    ];
    let wanting_more = SizingPolicy {
        desired_free: 20,
        ..POLICY
    };
    assert_eq!(
        decide(&view(fleet), &wanting_more),
        Decision::TakeBack {
            instances: names(&["late", "soon"]),
            launch: 1
        }
    );
}

#[test]
fn a_take_back_ignores_the_instance_cap_its_launches_do_not() {
    let capped = SizingPolicy {
        desired_free: 20,
        max_instances: Some(2),
        ..POLICY
    };
    let fleet = vec![active("a", 10, 10), consolidated("c", 10, 1, 5)];
    assert_eq!(
        decide(&view(fleet), &capped),
        Decision::TakeBack {
            instances: names(&["c"]),
            launch: 0
        }
    );
}

#[test]
fn nothing_is_taken_back_without_a_shortfall_or_for_an_image_on_its_way_out() {
    let roomy = vec![active("a", 10, 0), consolidated("c", 10, 1, 5)];
    assert_eq!(decide(&view(roomy), &POLICY), Decision::Nothing);
    let short = vec![active("a", 10, 10), consolidated("c", 10, 1, 5)];
    let retired = FleetView {
        image_active: false,
        ..view(short.clone())
    };
    assert_eq!(decide(&retired, &POLICY), Decision::Nothing);
    // A drain that is not reclaimable (an operator's, a dying host's) stays.
    let final_drain = vec![
        active("a", 10, 10),
        instance("d", InstanceStatus::Draining, 10, 1),
    ];
    assert_eq!(decide(&view(final_drain), &POLICY), Decision::Launch(1));
}

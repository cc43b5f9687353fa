//! The model, on small traces whose outcome can be worked out by hand.

use super::*;

fn user(at_secs: f64, session_secs: f64) -> Arrival {
    Arrival {
        at_secs,
        region: "us-east-1".to_owned(),
        session_secs,
        user: None,
    }
}

fn options() -> ModelOptions {
    let mut options = ModelOptions::default();
    options.sim.capacity = 8;
    options.sim.desired_free = 10;
    options
}

#[test]
fn users_arriving_together_on_an_empty_region_wait_one_boot_for_enough_instances() {
    // 24 users at once: all refused, all counted as demand, three instances launched at
    // once, every user served when they register 90 s later.
    let mut trace: Vec<Arrival> = (0..24).map(|n| user(f64::from(n) * 0.01, 3600.0)).collect();
    trace.push(user(600.0, 60.0));
    let report = run(&trace, Policy::Fixed, &options()).report;
    assert_eq!(report.first_try_ratio, 1.0 / 25.0);
    assert_eq!(report.served_ratio, 1.0);
    assert!(
        (89.0..=90.0).contains(&report.p95_wait_secs),
        "{}",
        report.p95_wait_secs
    );
    // The first check saw one user; the next ones the rest (3 × 8 = 24 for them), then
    // the buffer of 10 once they were served.
    assert!((3..=6).contains(&report.launches), "{}", report.launches);
}

#[test]
fn a_waiter_gets_the_slot_a_session_frees_before_its_deadline() {
    let mut options = options();
    options.sim.capacity = 1;
    options.sim.desired_free = 1;
    options.sim.client_wait = Duration::from_secs(60);
    // The pass at 0 launches one instance (up at 90); the first user takes its slot at
    // 100 and another launches (up at 190). The second user, refused at 120, may wait
    // until 180: only the slot the first session frees at 150 serves it in time.
    let trace = [user(100.0, 50.0), user(120.0, 10.0)];
    let report = run(&trace, Policy::Fixed, &options).report;
    assert_eq!(report.first_try_ratio, 0.5);
    assert_eq!(report.served_ratio, 1.0);
    assert_eq!(report.p95_wait_secs, 30.0);
}

#[test]
fn the_idle_slots_add_up_to_what_was_paid_less_what_was_used() {
    // One user on an empty region, then one every 30 s once its instance is up.
    let trace: Vec<Arrival> = std::iter::once(user(0.0, 600.0))
        .chain((0..199).map(|n| {
            user(
                300.0 + f64::from(n) * 30.0,
                600.0 + f64::from(n % 7) * 300.0,
            )
        }))
        .collect();
    for policy in [Policy::Fixed, Policy::Adaptive] {
        let model = run(&trace, policy, &options());
        let idle = model.report.idle;
        let parts = idle.booting + idle.empty + idle.in_use + idle.draining;
        assert!((parts - model.report.idle_slot_hours).abs() < 1e-9);
        let length = trace.last().map_or(0.0, |a| a.at_secs);
        // Sessions served, in slot-hours, cut at the end of the trace.
        let used: f64 = trace
            .iter()
            .map(|a| a.session_secs.min(length - a.at_secs).max(0.0) / 3600.0)
            .sum();
        let paid = model.report.instance_hours * 8.0;
        assert_eq!(
            model.report.first_try_ratio,
            1.0 - 1.0 / 200.0,
            "{policy:?}"
        );
        // The first user waits a boot: its session starts 90 s late.
        let late = 90.0 / 3600.0;
        assert!(
            (paid - used - parts).abs() < late + 1e-6,
            "{policy:?}: paid {paid}, used {used}, idle {parts}"
        );
    }
}

#[test]
fn known_lengths_place_a_short_session_beside_a_long_one() {
    let mut options = options();
    options.sim.desired_free = 0;
    options.sim.capacity = 2;
    // Two instances come up for two users; a third, short session fits beside the
    // long one under known lengths, beside the short one under fullest-first (a tie,
    // by name).
    let trace = [
        user(0.0, 100.0),
        user(0.0, 5000.0),
        user(200.0, 50.0),
        user(6000.0, 10.0),
    ];
    let fullest = run(&trace, Policy::Fixed, &options);
    options.sim.placement = Placement::KnownLengths;
    let known = run(&trace, Policy::Fixed, &options);
    assert_eq!(fullest.report.served_ratio, 1.0);
    assert_eq!(known.report.served_ratio, 1.0);
    assert!(
        known.report.idle_slot_hours <= fullest.report.idle_slot_hours,
        "{} vs {}",
        known.report.idle_slot_hours,
        fullest.report.idle_slot_hours
    );
}

#[test]
fn by_expected_end_a_session_goes_where_it_will_not_outlive_the_instance() {
    use super::fleet::{Fleet, Session};
    let mut fleet = Fleet::new(4);
    for _ in 0..3 {
        let n = fleet.launch();
        fleet.ready(n);
    }
    let session = |end: f64, expected_end: f64| Session {
        end,
        start: 0.0,
        expected_end,
        own: true,
        prediction: None,
    };
    // Instance 1 is expected to end at 100, instance 2 at 1000; 3 is empty.
    assert_eq!(
        fleet.place(session(100.0, 100.0), Placement::Packed),
        Some(1)
    );
    assert_eq!(
        fleet.place(session(1000.0, 1000.0), Placement::Lifetime),
        Some(1),
        "it outlives the only busy instance: the one it extends least"
    );
    let mut fleet = Fleet::new(4);
    for _ in 0..3 {
        let n = fleet.launch();
        fleet.ready(n);
    }
    fleet.place(session(100.0, 100.0), Placement::Packed);
    fleet.place(session(1000.0, 1000.0), Placement::Packed);
    fleet.place(session(1000.0, 1000.0), Placement::Packed);
    // Packed, `1` is the fullest whatever the session.
    assert_eq!(fleet.place(session(5.0, 5.0), Placement::Packed), Some(1));
    // 500 fits under 1000 only (instance 1 is expected to end at 100).
    let mut by_end = Fleet::new(4);
    for _ in 0..3 {
        let n = by_end.launch();
        by_end.ready(n);
    }
    assert_eq!(
        by_end.place(session(100.0, 100.0), Placement::Packed),
        Some(1)
    );
    // Nothing on 2 yet: a long session goes beside the short one (extends it least)…
    assert_eq!(
        by_end.place(session(900.0, 900.0), Placement::Lifetime),
        Some(1)
    );
    // …and once `1` ends at 900, a session of 50 fits there, one of 2000 extends it.
    assert_eq!(
        by_end.place(session(50.0, 50.0), Placement::Lifetime),
        Some(1)
    );
    assert_eq!(
        by_end.place(session(2000.0, 2000.0), Placement::Lifetime),
        Some(1)
    );
    // `1` is full (4): the rest go to the fullest empty one.
    assert_eq!(
        by_end.place(session(10.0, 10.0), Placement::Lifetime),
        Some(2)
    );
    // Now `2` ends at 10 and `1` at 2000 (full): 5 fits in `2`; 20 outlives it.
    assert_eq!(
        by_end.place(session(5.0, 5.0), Placement::Lifetime),
        Some(2)
    );
    assert_eq!(
        by_end.place(session(20.0, 20.0), Placement::Lifetime),
        Some(2)
    );
    // Nothing known of a session: packed.
    assert_eq!(
        by_end.place(session(30.0, f64::NEG_INFINITY), Placement::Lifetime),
        Some(2)
    );
}

#[test]
fn by_expected_end_habitual_users_cost_fewer_idle_slots_than_packed() {
    // A day of users whose sessions keep close to their habit, with their history.
    let habits = crate::sim::trace::Habits {
        spread: 0.1,
        off_habit: 0.0,
    };
    let (day, history) = crate::sim::trace::returning(5, "us-east-1", 1, habits);
    let mut options = options();
    let packed = run_with_history(&day, &history, Policy::Adaptive, &options);
    options.sim.placement = Placement::Lifetime;
    let lifetime = run_with_history(&day, &history, Policy::Adaptive, &options);
    assert_eq!(lifetime.report.placement, "lifetime");
    assert_eq!(lifetime.report.served_ratio, 1.0);
    assert!(
        lifetime.report.first_try_ratio >= 0.99,
        "{:?}",
        lifetime.report
    );
    // Placed by expected end, fewer free slots are paid beside sessions.
    assert!(
        lifetime.report.idle_slot_hours < 0.9 * packed.report.idle_slot_hours,
        "{} vs {}",
        lifetime.report.idle_slot_hours,
        packed.report.idle_slot_hours
    );
    assert!(lifetime.report.idle.in_use < packed.report.idle.in_use);
    // Without the history nobody has a prediction of their own: placed as packed.
    let forgetful = run(&day, Policy::Adaptive, &options);
    options.sim.placement = Placement::Packed;
    let plain = run(&day, Policy::Adaptive, &options);
    assert!(
        forgetful.report.idle_slot_hours < plain.report.idle_slot_hours,
        "sessions that end teach the model during the day: {} vs {}",
        forgetful.report.idle_slot_hours,
        plain.report.idle_slot_hours
    );
}

#[test]
fn known_habits_know_every_other_session_of_the_user_and_not_this_one() {
    let of = |name: &str, at_secs: f64, session_secs: f64| Arrival {
        user: Some(name.to_owned()),
        ..user(at_secs, session_secs)
    };
    let trace = [
        of("a", 0.0, 100.0),
        of("b", 10.0, 50.0),
        of("a", 500.0, 300.0),
    ];
    let history = [Past {
        user: "a".to_owned(),
        region: "us-east-1".to_owned(),
        session_secs: 200.0,
    }];
    let known = habits(&trace, &history);
    let expected: Vec<Option<f64>> = known
        .iter()
        .map(|lengths| lengths.as_ref().and_then(|l| l.expected()))
        .collect();
    // a's first session knows 200 (history) and 300 (later); b, seen once, nothing.
    assert_eq!(expected, [Some(250.0), None, Some(150.0)]);
    let mut options = options();
    options.sim.placement = Placement::KnownHabits;
    let report = run_with_history(&trace, &history, Policy::Fixed, &options).report;
    assert_eq!(report.placement, "known-habits");
    assert_eq!(report.served_ratio, 1.0);
}

//! The fleet simulator's short version, as the test command runs it: a burst of users on
//! an empty region, replayed against the real server under both policies. The long runs
//! (`scripts/simulate.sh` on the shipped traces) print the figures.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use bench::sim::{self, Arrival, Past, Placement, Policy, SimOptions};

/// 20 minutes: a user every two minutes, and 24 at once at 2:00 on an empty region,
/// each for 5 to 9 minutes.
fn trace() -> Vec<Arrival> {
    let mut arrivals: Vec<Arrival> = (0..10)
        .map(|n| Arrival {
            at_secs: f64::from(n) * 120.0,
            region: "us-east-1".to_owned(),
            session_secs: 300.0,
            user: None,
        })
        .collect();
    arrivals.extend((0..24).map(|n| Arrival {
        at_secs: 120.0 + f64::from(n),
        region: "us-east-1".to_owned(),
        session_secs: 300.0 + 10.0 * f64::from(n),
        user: None,
    }));
    arrivals.push(Arrival {
        at_secs: 1200.0,
        region: "us-east-1".to_owned(),
        session_secs: 60.0,
        user: None,
    });
    arrivals.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    arrivals
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_on_an_empty_region_is_served_within_the_clients_wait_under_both_policies() {
    let arrivals = trace();
    let options = SimOptions {
        speed: 40.0,
        boot: Duration::from_secs(90),
        ..SimOptions::default()
    };
    for policy in [Policy::Fixed, Policy::Adaptive] {
        let report = sim::simulate(&arrivals, &[], policy, &options).await;
        eprintln!("{report:?}");
        assert_eq!(report.policy, policy.name());
        assert_eq!(report.errors, 0, "{report:?}");
        assert_eq!(report.sessions, arrivals.len());
        // 25 users at once need four instances of 8 at least; all are served, most
        // after waiting for the boots the burst set off.
        assert!(report.served_ratio >= 0.97, "{report:?}");
        assert!(report.first_try_ratio < report.served_ratio, "{report:?}");
        assert!(report.peak_instances >= 4, "{report:?}");
        assert!(report.launches >= report.peak_instances, "{report:?}");
        assert!(report.p95_wait_secs <= 120.0 + 30.0, "{report:?}");
        // Costs add up: idle slots are some of the paid ones.
        assert!(report.instance_hours > 0.0, "{report:?}");
        assert!(
            report.idle_slot_hours > 0.0 && report.idle_slot_hours < report.instance_hours * 8.0,
            "{report:?}"
        );
        // Where they were, from the hosts' own accounts: the burst's boots were paid
        // for, and so were the slots beside the sessions they then held; the parts add
        // up to what the clients' count of sessions gives (within the moments a client
        // and its host see a session start and end apart).
        let idle = report.idle;
        assert!(idle.booting > 0.0 && idle.in_use > 0.0, "{idle:?}");
        assert!(
            (idle.total() - report.idle_slot_hours).abs() <= 0.05 * report.idle_slot_hours,
            "{idle:?} against {report:?}"
        );
    }
}

/// Returning users with a history, placed by expected end: the server learns from the
/// history it starts with and from the sessions that end, and serves everyone.
#[tokio::test(flavor = "multi_thread")]
async fn returning_users_placed_by_expected_end_are_served_and_remembered() {
    // Thirty users of three habits (5, 20 and 60 minutes), five past sessions each; each
    // comes once in the first twenty minutes.
    let habit = |n: u32| [300.0, 1200.0, 3600.0][(n % 3) as usize];
    let history: Vec<Past> = (0..5)
        .flat_map(|_| {
            (0..30).map(move |n| Past {
                user: format!("habit-{n}"),
                region: "us-east-1".to_owned(),
                session_secs: habit(n),
            })
        })
        .collect();
    let arrivals: Vec<Arrival> = (0..30)
        .map(|n| Arrival {
            at_secs: 40.0 * f64::from(n),
            region: "us-east-1".to_owned(),
            session_secs: habit(n) * 0.9,
            user: Some(format!("habit-{n}")),
        })
        .collect();
    let options = SimOptions {
        speed: 60.0,
        placement: Placement::Lifetime,
        ..SimOptions::default()
    };
    let report = sim::simulate(&arrivals, &history, Policy::Adaptive, &options).await;
    eprintln!("{report:?}");
    assert_eq!(report.placement, "lifetime");
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(report.served_ratio, 1.0, "{report:?}");
    // Everyone of the history was predicted, and the sessions that ended were added.
    assert!(report.users_predicted >= 30, "{report:?}");
    assert!(report.sessions_remembered > 150, "{report:?}");
    // A boot was recorded, and took about the simulated boot or more (in trace time).
    let boot = report.boot_secs.expect("a boot was recorded");
    assert!(boot >= 0.9 * options.boot.as_secs_f64(), "{report:?}");
}

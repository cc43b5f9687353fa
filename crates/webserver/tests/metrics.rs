//! `GET /metrics`: the counters move with requests, assignments, launches and job runs,
//! and the fleet gauges follow the database. One test, so that no other server in this
//! process scrapes the shared registry meanwhile.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, free_port};
use reqwest::StatusCode;

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as printed), 0 if absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn wait_for_value(app: &TestApp, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(app).await;
        if value(&text, series) >= at_least {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scrapes until `series` is `expected`, for up to 10 s; the last scrape.
async fn wait_for_exactly(app: &TestApp, series: &str, expected: f64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(app).await;
        if value(&text, series) == expected {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never became {expected}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_requests_assignments_the_fleet_and_the_jobs() {
    let port = free_port().to_string();
    let app = TestApp::spawn_scaling(&[
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", &port),
        ("LOCAL_BOOT_DELAY_MS", "50"),
        ("LOCAL_MANDELBOX_CAPACITY", "4"),
        ("LIFECYCLE_INTERVAL_SECS", "1"),
        // One instance is enough: the gauges below count its slots.
        ("DESIRED_FREE_MANDELBOXES", "1"),
    ])
    .await;
    app.add_region("us-east-1", "metrics-commit", "ami-metrics", true, true);

    let before = scrape(&app).await;

    // Requests, by route pattern and status.
    let regions = r#"webserver_http_requests_total{method="GET",route="/regions",status="401"}"#;
    let seen = value(&before, regions);
    for _ in 0..3 {
        assert_eq!(app.get("/regions").await.status(), StatusCode::UNAUTHORIZED);
    }
    let unmatched = r#"webserver_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    app.get("/no/such/route").await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, regions), seen + 3.0);
    assert!(value(&text, unmatched) >= 1.0, "{text}");
    assert!(
        value(
            &text,
            r#"webserver_http_request_duration_seconds_count{method="GET",route="/regions",status="401"}"#
        ) >= 3.0
    );

    // An assignment refused for lack of capacity, which launches an instance.
    let refused = app.assign("alice", "us-east-1", "metrics-commit").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = scrape(&app).await;
    assert!(
        value(
            &text,
            r#"webserver_assign_outcomes_total{outcome="NO_INSTANCE_AVAILABLE"}"#
        ) >= 1.0
    );
    wait_for_value(
        &app,
        r#"webserver_fleet_actions_total{action="launched",region="us-east-1"}"#,
        1.0,
    )
    .await;

    // The host registers: the gauges show an ACTIVE instance with 4 free slots, then 3.
    let text = wait_for_value(
        &app,
        r#"webserver_fleet_instances{region="us-east-1",status="ACTIVE"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(&text, r#"webserver_fleet_free_slots{region="us-east-1"}"#),
        4.0
    );
    let assigned = app.assign("alice", "us-east-1", "metrics-commit").await;
    assert_eq!(assigned.status(), StatusCode::ACCEPTED);
    let text = scrape(&app).await;
    assert!(
        value(
            &text,
            r#"webserver_assign_outcomes_total{outcome="ASSIGNED"}"#
        ) >= 1.0
    );
    // The gauges are read from the database at most every 5 s: the change shows then.
    let text = wait_for_exactly(
        &app,
        r#"webserver_fleet_free_slots{region="us-east-1"}"#,
        3.0,
    )
    .await;
    assert_eq!(
        value(&text, r#"webserver_fleet_capacity{region="us-east-1"}"#),
        4.0
    );
    assert_eq!(
        value(
            &text,
            r#"webserver_fleet_mandelboxes{region="us-east-1",status="ALLOCATED"}"#
        ),
        1.0
    );
    // A region with instances has an unmet-demand series even when no one waits (the
    // dashboard shows 0, not nothing).
    assert!(
        text.lines()
            .any(|line| line.starts_with(r#"webserver_fleet_unmet_demand{region="us-east-1"} "#)),
        "{text}"
    );

    // The lifecycle job runs every second.
    wait_for_value(
        &app,
        r#"webserver_job_runs_total{job="lifecycle",result="ok"}"#,
        1.0,
    )
    .await;

    // Every family is there once it has moved.
    let text = scrape(&app).await;
    for name in [
        "# TYPE webserver_http_requests_total counter",
        "# TYPE webserver_http_request_duration_seconds histogram",
        "# TYPE webserver_assign_outcomes_total counter",
        "# TYPE webserver_fleet_actions_total counter",
        "# TYPE webserver_job_runs_total counter",
        "# TYPE webserver_fleet_instances gauge",
        "# TYPE webserver_fleet_capacity gauge",
        "# TYPE webserver_fleet_free_slots gauge",
        "# TYPE webserver_fleet_mandelboxes gauge",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

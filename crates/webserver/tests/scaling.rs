//! Fleet scaling through the HTTP API on the local provider: a refusal launches an
//! instance, its simulated host registers, and the next assignment lands on it.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, free_port};
use reqwest::StatusCode;
use serde_json::Value;

const REGION: &str = "us-east-1";
const COMMIT: &str = "local-loop-commit";

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Paying users `user-0` to `user-{count - 1}`, each asking to wait up to `wait_secs`.
fn waiting_assigns(app: &TestApp, count: usize, wait_secs: u64) -> Vec<reqwest::RequestBuilder> {
    (0..count)
        .map(|i| {
            let user = format!("user-{i}");
            let mut body = common::assign_body(&user, REGION, COMMIT);
            body["wait_secs"] = serde_json::json!(wait_secs);
            app.client
                .post(app.url("/mandelbox/assign"))
                .bearer_auth(app.paying_token(&user))
                .json(&body)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_launches_a_local_instance_whose_host_registers_and_takes_the_next_assign() {
    let port = free_port().to_string();
    let app = TestApp::spawn_scaling(&[
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", &port),
        ("LOCAL_BOOT_DELAY_MS", "100"),
        ("LOCAL_MANDELBOX_CAPACITY", "4"),
        ("DESIRED_FREE_MANDELBOXES", "2"),
        ("MANDELBOX_LIMIT_PER_USER", "10"),
    ])
    .await;
    app.add_region(REGION, COMMIT, "ami-local", true, true);

    let refused = app.assign("alice", REGION, COMMIT).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The refusal's capacity check launched one instance; its host boots and registers.
    wait_for(
        "the simulated host to register",
        Duration::from_secs(20),
        async || {
            app.db.number(
                "SELECT count(*) AS n FROM hardware.instance_info
             WHERE status = 'ACTIVE' AND cloud_provider_id LIKE 'local-%'",
            ) == 1
        },
    )
    .await;
    let assigned = app.assign("alice", REGION, COMMIT).await;
    assert_eq!(assigned.status(), StatusCode::ACCEPTED);
    let body: Value = assigned.json().await.unwrap();
    let ip = body["ip"].as_str().unwrap();
    assert!(ip.starts_with("127.") && ip != "127.0.0.1", "{body}");
    assert_eq!(
        app.db.number(&format!(
            "SELECT count(*) AS n FROM hardware.instance_info
             WHERE ip = '{ip}' AND mandelbox_capacity = 4 AND aws_ami_id = 'ami-local'
               AND commit_hash = '{COMMIT}' AND last_updated_utc_unix_ms > 0"
        )),
        1
    );

    // 3 of 4 free after that assign: above the 2 wanted, so nothing more launches
    // (once the check that assign asked for is done).
    app.hook.idle().await;
    assert_eq!(
        app.db
            .number("SELECT count(*) AS n FROM hardware.instance_info"),
        1
    );

    // Fill it: the buffer runs low and a second instance comes.
    for user in ["bob", "carol"] {
        let response = app.assign(user, REGION, COMMIT).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    wait_for("a second instance", Duration::from_secs(20), async || {
        app.db
            .number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'ACTIVE'")
            == 2
    })
    .await;
}

/// With a pool of two connections, a burst of refusals still launches and records the
/// instance (the fleet's lock lives on a connection of its own, and no connection is held
/// while the cloud answers), and the server keeps answering meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn scaling_on_a_pool_of_two_starves_neither_itself_nor_the_requests() {
    let port = free_port().to_string();
    let app = TestApp::spawn_scaling(&[
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", &port),
        ("LOCAL_BOOT_DELAY_MS", "300"),
        ("LOCAL_MANDELBOX_CAPACITY", "8"),
        ("DESIRED_FREE_MANDELBOXES", "8"),
        ("DATABASE_POOL_SIZE", "2"),
    ])
    .await;
    app.add_region(REGION, COMMIT, "ami-local", true, true);
    let users: Vec<String> = (0..12).map(|n| format!("burst-{n}")).collect();
    let refusals =
        futures_util::future::join_all(users.iter().map(|user| app.assign(user, REGION, COMMIT)))
            .await;
    assert!(
        refusals
            .iter()
            .all(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
    );
    // The server answers while the fleet launches.
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    wait_for(
        "the launched host to register",
        Duration::from_secs(20),
        async || {
            app.db
                .number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'ACTIVE'")
                >= 1
        },
    )
    .await;
    // Nothing launched was terminated for want of a connection to record it.
    assert_eq!(
        app.db.number(
            "SELECT count(*) AS n FROM hardware.instance_info WHERE cloud_provider_id LIKE 'local-%'"
        ),
        app.db.number("SELECT count(*) AS n FROM hardware.instance_info")
    );
    assert_eq!(
        app.assign("late", REGION, COMMIT).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_users_waiting_on_an_empty_region_launch_enough_for_all_at_once() {
    let port = free_port().to_string();
    let app = TestApp::spawn_scaling(&[
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", &port),
        ("LOCAL_BOOT_DELAY_MS", "3000"),
        ("LOCAL_MANDELBOX_CAPACITY", "8"),
        ("DESIRED_FREE_MANDELBOXES", "10"),
    ])
    .await;
    app.add_region(REGION, COMMIT, "ami-local", true, true);
    let requests = waiting_assigns(&app, 40, 90);
    let waiting = tokio::spawn(futures_util::future::join_all(
        requests.into_iter().map(reqwest::RequestBuilder::send),
    ));

    // Every refusal is unmet demand: before the first host has booted, the fleet has
    // grown to cover all forty (instances of 8 once they register; 10 expected before).
    let launched = || {
        app.db
            .number("SELECT count(*) AS n FROM hardware.instance_info")
    };
    wait_for(
        "launches for everyone",
        Duration::from_secs(2),
        async || launched() >= 5,
    )
    .await;
    assert_eq!(
        app.db
            .number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'ACTIVE'"),
        0,
        "a host booted before the fleet grew: that is one boot cycle at a time"
    );

    let answers = waiting.await.unwrap();
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status();
        let body = answer.text().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(app.mandelboxes(), 40);
    // Enough for all, not one per user: 40 served plus the 10 wanted free.
    let instances = launched();
    assert!((5..=8).contains(&instances), "{instances} instances");
    app.assert_invariants(1);
}

/// Before any host of a region has registered, a launch counts what the cloud provider
/// says an instance holds (`LOCAL_MANDELBOX_CAPACITY` here), not the buffer: with no
/// buffer at all, forty users waiting on an empty region of 8-slot instances launch
/// five instances, not one per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_buffer_forty_waiting_users_launch_five_instances_of_eight() {
    let port = free_port().to_string();
    let app = TestApp::spawn_scaling(&[
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", &port),
        ("LOCAL_BOOT_DELAY_MS", "2000"),
        ("LOCAL_MANDELBOX_CAPACITY", "8"),
        ("DESIRED_FREE_MANDELBOXES", "0"),
    ])
    .await;
    app.add_region(REGION, COMMIT, "ami-local", true, true);
    let requests = waiting_assigns(&app, 40, 60);
    let answers =
        futures_util::future::join_all(requests.into_iter().map(reqwest::RequestBuilder::send))
            .await;
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status();
        let body = answer.text().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    app.hook.idle().await;
    assert_eq!(app.mandelboxes(), 40);
    assert_eq!(
        app.db
            .number("SELECT count(*) AS n FROM hardware.instance_info"),
        5,
        "forty sessions of eight slots each need five instances"
    );
    app.assert_invariants(1);
}

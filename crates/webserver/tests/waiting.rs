//! Assignments that wait for a slot (`wait_secs`, SPEC §5 "Waiting"), and the enabled
//! regions kept in memory: both woken by PostgreSQL notifications, whichever process (or
//! psql) changed the database.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, assign_body, json};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

const HASH: &str = "abc1234";

async fn app_with_region(overrides: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(overrides).await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    app
}

fn waiting_body(user: &str, wait_secs: u64) -> Value {
    let mut body = assign_body(user, "us-east-1", HASH);
    body["wait_secs"] = json!(wait_secs);
    body
}

/// The value of the sample `series` (name and labels exactly as printed), 0 if absent.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Waits (up to 20 s) until `series` is `expected`.
async fn until_metric(app: &TestApp, series: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = metric(app, series).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {now}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_gets_the_slot_a_plain_sql_delete_frees() {
    let app = app_with_region(&[]).await;
    app.add_instance("small", "us-east-1", HASH, 1, 1);
    let token = app.paying_token("alice");
    let body = waiting_body("alice", 60);
    let started = Instant::now();
    let waiting = tokio::spawn({
        let request = app
            .client
            .post(app.url("/mandelbox/assign"))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.unwrap() }
    });
    until_metric(&app, "webserver_assign_waiting", 1.0).await;
    assert_eq!(app.mandelboxes_of("alice"), 0);

    // Another process ends a session: nothing but the database tells this one.
    app.db
        .execute("DELETE FROM hardware.mandelbox_info WHERE user_id <> 'alice'");
    let answer = waiting.await.unwrap();
    let waited = started.elapsed();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert_eq!(json(answer).await["ip"], "ip-of-small");
    // Woken by the notification, long before the 60 s deadline.
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    assert_eq!(app.mandelboxes_of("alice"), 1);
    until_metric(&app, "webserver_assign_waiting", 0.0).await;
    assert_eq!(
        metric(&app, "webserver_assign_waited_total{outcome=\"ASSIGNED\"}").await,
        1.0
    );
    app.assert_invariants(1);
}

#[tokio::test]
async fn at_its_deadline_a_waiter_gets_the_refusal_it_would_have_got() {
    let app = app_with_region(&[]).await;
    app.add_instance("full", "us-east-1", HASH, 1, 1);
    let started = Instant::now();
    let answer = app
        .assign_body(&app.paying_token("alice"), &waiting_body("alice", 1))
        .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(answer).await,
        json!({"ip": null, "mandelbox_id": null, "error": "NO_INSTANCE_AVAILABLE"})
    );
    assert_eq!(
        metric(
            &app,
            "webserver_assign_waited_total{outcome=\"NO_INSTANCE_AVAILABLE\"}"
        )
        .await,
        1.0
    );
    assert_eq!(metric(&app, "webserver_assign_waiting").await, 0.0);
    assert_eq!(app.mandelboxes(), 1);
    // Alice is unmet demand, which the fleet's sizing counts, for a minute.
    assert_eq!(
        metric(&app, "webserver_fleet_unmet_demand{region=\"us-east-1\"}").await,
        1.0
    );
}

#[tokio::test]
async fn refusals_that_waiting_cannot_change_answer_at_once() {
    let app = app_with_region(&[]).await;
    let started = Instant::now();
    let mut body = waiting_body("alice", 60);
    body["region"] = json!("eu-west-1");
    let answer = app.assign_body(&app.paying_token("alice"), &body).await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(answer).await["error"], "REGION_NOT_ENABLED");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(metric(&app, "webserver_assign_waiting").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_waiters_on_a_pool_of_three_leave_the_server_answering() {
    let app = app_with_region(&[("DATABASE_POOL_SIZE", "3")]).await;
    let users: Vec<(String, String)> = (0..40)
        .map(|i| {
            let user = format!("user-{i}");
            let token = app.paying_token(&user);
            (user, token)
        })
        .collect();
    let waiters = join_all(users.iter().map(|(user, token)| {
        let request = app
            .client
            .post(app.url("/mandelbox/assign"))
            .bearer_auth(token)
            .json(&waiting_body(user, 60));
        tokio::spawn(async move { request.send().await.unwrap() })
    }));
    let waiters = tokio::spawn(waiters);
    until_metric(&app, "webserver_assign_waiting", 40.0).await;

    // None of them holds a connection: the pool of three answers everyone else.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..5 {
        let ready = quick.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        let regions = quick
            .get(app.url("/regions"))
            .bearer_auth(app.paying_token("reader"))
            .send()
            .await
            .unwrap();
        assert_eq!(regions.status(), StatusCode::OK);
        assert_eq!(json(regions).await, json!(["us-east-1"]));
    }

    // An instance with room for all of them arrives.
    app.add_instance("big", "us-east-1", HASH, 40, 0);
    let answers = waiters.await.unwrap();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(app.mandelboxes(), 40);
    assert_eq!(
        metric(&app, "webserver_assign_waited_total{outcome=\"ASSIGNED\"}").await,
        40.0
    );
    app.assert_invariants(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_stops_waiting() {
    let app = app_with_region(&[]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(app.url("/mandelbox/assign"))
        .bearer_auth(app.paying_token("alice"))
        .json(&waiting_body("alice", 60))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    until_metric(&app, "webserver_assign_waiting", 0.0).await;
    assert_eq!(
        metric(
            &app,
            "webserver_assign_waited_total{outcome=\"DISCONNECTED\"}"
        )
        .await,
        1.0
    );
    // A slot appearing now is taken by nobody.
    app.add_instance("late", "us-east-1", HASH, 1, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.mandelboxes(), 0);
}

#[tokio::test]
async fn wait_secs_outside_0_to_120_is_400_naming_it() {
    let app = app_with_region(&[]).await;
    app.add_instance("room", "us-east-1", HASH, 1, 0);
    let token = app.paying_token("alice");
    for bad in [json!(-1), json!(121), json!("5"), json!(1.5), json!(null)] {
        let mut body = assign_body("alice", "us-east-1", HASH);
        body["wait_secs"] = bad.clone();
        let answer = app.assign_body(&token, &body).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad}");
        let text = answer.text().await.unwrap();
        assert!(text.contains("wait_secs"), "{bad}: {text}");
    }
    assert_eq!(app.mandelboxes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_enabled_with_psql_is_listed_within_a_second() {
    let app = TestApp::spawn().await;
    let token = app.paying_token("alice");
    let regions = || async { json(app.get_with_token("/regions", &token).await).await };
    assert_eq!(regions().await, json!([]));
    app.add_region("eu-west-1", HASH, "ami-eu", true, true);
    let changed = Instant::now();
    loop {
        if regions().await == json!(["eu-west-1"]) {
            break;
        }
        // The cache's own expiry is 5 s: only the notification makes it this quick.
        assert!(
            changed.elapsed() < Duration::from_millis(2500),
            "the new region is not listed yet"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.db
        .execute("UPDATE hardware.region_to_ami SET region_enabled = false");
    let changed = Instant::now();
    while regions().await != json!([]) {
        assert!(changed.elapsed() < Duration::from_millis(2500));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

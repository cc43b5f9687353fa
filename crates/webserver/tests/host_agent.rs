//! The host agent client (crates/host-agent) speaking the protocol to the real
//! server, as a simulated or real host would.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestApp, json};
use host_agent::{AgentError, DrainEndpoint, HostAgent, HostMetrics, MandelboxState, Registration};
use reqwest::StatusCode;
use secrecy::SecretString;

const HASH: &str = "abc1234";
const NAME: &str = "us-east-1-main-abc1234-uid-agent00001";
const METRICS: HostMetrics = HostMetrics {
    memory_remaining_kb: 8_000_000,
    nanocpus_remaining: 4_000_000_000,
    gpu_vram_remaining_kb: 12_000_000,
};

fn registration(secret: &str) -> Registration {
    Registration {
        instance_name: models::InstanceName::parse(NAME).unwrap(),
        bootstrap_secret: SecretString::from(secret.to_owned()),
        ip: None,
        mandelbox_capacity: 2,
        metrics: METRICS,
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_registers_heartbeats_and_reports_its_mandelboxes() {
    let app = TestApp::spawn().await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    let webserver = app.address.parse().unwrap();
    let agent = Arc::new(
        HostAgent::register(&webserver, &registration(&secret))
            .await
            .unwrap(),
    );
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");
    assert_eq!(app.instance_column(NAME, "memory_remaining_kb"), "8000000");

    // The loop keeps last_updated moving.
    app.db.execute(&format!(
        "UPDATE hardware.instance_info SET last_updated_utc_unix_ms = 1 WHERE instance_name = '{NAME}'"
    ));
    let heartbeats = agent.heartbeat_every(Duration::from_millis(100), || METRICS);
    wait_until("a heartbeat arrives", || {
        app.instance_column(NAME, "last_updated_utc_unix_ms") != "1"
    })
    .await;
    heartbeats.stop();

    let assigned = json(app.assign("alice", "us-east-1", HASH).await).await;
    let id = models::MandelboxId::parse(assigned["mandelbox_id"].as_str().unwrap()).unwrap();
    let id = &id;
    agent
        .set_mandelbox_status(id, MandelboxState::Connecting)
        .await
        .unwrap();
    agent
        .set_mandelbox_status(id, MandelboxState::Running)
        .await
        .unwrap();
    let running = app.db.number(&format!(
        "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE mandelbox_id = '{id}' AND status = 'RUNNING'"
    ));
    assert_eq!(running, 1);
    agent.remove_mandelbox(id).await.unwrap();
    assert_eq!(app.mandelboxes(), 0);
    let gone = agent.remove_mandelbox(id).await.unwrap_err();
    assert!(
        matches!(gone, AgentError::Refused { status: 404, .. }),
        "{gone:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let app = TestApp::spawn().await;
    app.launch_instance(NAME, "us-east-1", HASH);
    let webserver = app.address.parse().unwrap();
    let refused = HostAgent::register(&webserver, &registration("wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, AgentError::Refused { status: 401, .. }),
        "{refused:?}"
    );
    let nowhere = "http://127.0.0.1:1/".parse().unwrap();
    let unreachable = HostAgent::register(&nowhere, &registration("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(unreachable, AgentError::Unreachable(_)),
        "{unreachable:?}"
    );
}

#[tokio::test]
async fn a_drain_request_stops_heartbeats_with_a_dying_one() {
    let app = TestApp::spawn().await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    let webserver = app.address.parse().unwrap();
    let agent = Arc::new(
        HostAgent::register(&webserver, &registration(&secret))
            .await
            .unwrap(),
    );
    let mut drain = DrainEndpoint::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let drain_url = format!("http://127.0.0.1:{}/drain_and_shutdown", drain.port());

    let runner = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let result = agent
                .run_until_drained(&mut drain, Duration::from_millis(100), || METRICS)
                .await;
            drain.stop().await;
            result
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");

    // Anyone else is refused: unsigned, signed for another instance, with another
    // host's key, or too old.
    let digest = app.instance_column(NAME, "host_token_sha256");
    let now = test_support::unix_now_secs();
    let (_, stranger) = auth::host::new_host_token().unwrap();
    for authorization in [
        None,
        Some(auth::host::drain_authorization(
            &digest,
            "us-east-1-other",
            now,
        )),
        Some(auth::host::drain_authorization(&stranger, NAME, now)),
        Some(auth::host::drain_authorization(&digest, NAME, now - 3600)),
    ] {
        let mut request = reqwest::Client::new().post(&drain_url);
        if let Some(authorization) = &authorization {
            request = request.header("Authorization", authorization);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");

    // The control plane's signature, as the fleet sends it.
    let asked = reqwest::Client::new()
        .post(&drain_url)
        .header(
            "Authorization",
            auth::host::drain_authorization(&digest, NAME, now),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), StatusCode::OK);
    runner.await.unwrap().unwrap();
    assert_eq!(app.instance_column(NAME, "status"), "DRAINING");
    // The endpoint is closed once the agent is done.
    assert!(
        reqwest::Client::new()
            .post(&drain_url)
            .send()
            .await
            .is_err()
    );
}

//! The host service protocol (SPEC §6) through the real server.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{TestApp, json, registration};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const HASH: &str = "abc1234";
const NAME: &str = "us-east-1-main-abc1234-uid-0123456789";

fn heartbeat(dying: bool) -> Value {
    json!({
        "memory_remaining_kb": 1_000,
        "nanocpus_remaining": 2_000,
        "gpu_vram_remaining_kb": 3_000,
        "dying": dying,
    })
}

#[tokio::test]
async fn registering_activates_the_instance_and_returns_its_credential() {
    let app = TestApp::spawn().await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    assert_eq!(app.instance_column(NAME, "status"), "PRE_CONNECTION");
    assert!(
        app.instance_column(NAME, "bootstrap_secret_hash")
            .starts_with("$argon2id$")
    );

    let mut body = registration(NAME, &secret, 4);
    body["ip"] = json!("203.0.113.7");
    let response = app.register(&body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = json(response).await["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("host_"), "{token}");

    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");
    assert_eq!(app.instance_column(NAME, "ip"), "203.0.113.7");
    assert_eq!(app.instance_column(NAME, "mandelbox_capacity"), "4");
    assert_eq!(app.instance_column(NAME, "memory_remaining_kb"), "16000000");
    assert_eq!(app.instance_column(NAME, "bootstrap_secret_hash"), "NULL");
    let stored = app.instance_column(NAME, "host_token_sha256");
    assert_eq!(stored.len(), 64);
    assert!(!stored.contains(&token[5..]), "only a digest is stored");
    let heard = app
        .instance_column(NAME, "last_updated_utc_unix_ms")
        .parse::<i64>()
        .unwrap();
    let age = models::UnixMillis::now().as_millis() - heard;
    assert!((0..60_000).contains(&age), "last heard {age} ms ago");
}

#[tokio::test]
async fn where_private_addresses_are_refused_a_host_must_give_a_public_one() {
    let app = TestApp::spawn_with(&[("HOST_PRIVATE_ADDRESSES", "false")]).await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    // No ip: the peer (here loopback; behind an ingress, the proxy) is never taken.
    let mut body = registration(NAME, &secret, 4);
    for ip in [
        None,
        Some("10.0.3.4"),
        Some("169.254.169.254"),
        Some("::1"),
        Some("100.64.1.1"),
    ] {
        match ip {
            Some(ip) => body["ip"] = json!(ip),
            None => drop(body.as_object_mut().unwrap().remove("ip")),
        }
        let response = app.register(&body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{ip:?}");
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains("not a public address"), "{ip:?}: {error}");
        // Nothing changed, and the secret is still unused.
        assert_eq!(app.instance_column(NAME, "status"), "PRE_CONNECTION");
    }
    body["ip"] = json!("3.80.1.2");
    assert_eq!(app.register(&body).await.status(), StatusCode::OK);
    assert_eq!(app.instance_column(NAME, "ip"), "3.80.1.2");
}

#[tokio::test]
async fn unknown_instances_and_wrong_secrets_get_the_same_answer() {
    // Both also do the same work (an argon2 check: a decoy hash for an unknown name), so
    // their timing tells nothing either; that is measured, not asserted here.
    let app = TestApp::spawn().await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    let wrong = app.register(&registration(NAME, "not-the-secret", 4)).await;
    let unknown = app
        .register(&registration(
            "us-east-1-main-abc1234-uid-9999999999",
            &secret,
            4,
        ))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(wrong).await, json(unknown).await);
}

#[tokio::test]
async fn without_an_ip_the_peer_address_is_recorded() {
    let app = TestApp::spawn().await;
    app.registered_host(NAME, "us-east-1", HASH, 2).await;
    assert_eq!(app.instance_column(NAME, "ip"), "127.0.0.1");
}

#[tokio::test]
async fn wrong_secrets_unknown_instances_and_replays_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    let hash_before = app.instance_column(NAME, "bootstrap_secret_hash");

    for body in [
        registration(NAME, "not-the-secret", 4),
        registration("us-east-1-main-abc1234-uid-unknown0000", &secret, 4),
    ] {
        let response = app.register(&body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(json(response).await["error"].is_string());
    }
    assert_eq!(app.instance_column(NAME, "status"), "PRE_CONNECTION");
    assert_eq!(
        app.instance_column(NAME, "bootstrap_secret_hash"),
        hash_before
    );

    assert_eq!(
        app.register(&registration(NAME, &secret, 4)).await.status(),
        StatusCode::OK
    );
    let token = app.instance_column(NAME, "host_token_sha256");
    let replay = app.register(&registration(NAME, &secret, 9)).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.instance_column(NAME, "mandelbox_capacity"), "4");
    assert_eq!(app.instance_column(NAME, "host_token_sha256"), token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_secret_registers_once_even_when_raced() {
    let app = TestApp::spawn().await;
    let second = app.spawn_sharing(&[]).await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    let body = registration(NAME, &secret, 4);
    let attempts = (0..8).map(|i| {
        if i % 2 == 0 {
            app.register(&body)
        } else {
            second.register(&body)
        }
    });
    let answers = join_all(attempts).await;
    let won = answers
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
    assert!(
        answers
            .iter()
            .all(|r| r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn malformed_registrations_are_400() {
    let app = TestApp::spawn().await;
    let secret = app.launch_instance(NAME, "us-east-1", HASH);
    let good = registration(NAME, &secret, 4);
    for (field, value) in [
        ("instance_name", json!(null)),
        ("bootstrap_secret", json!(5)),
        ("mandelbox_capacity", json!(-1)),
        ("mandelbox_capacity", json!(100_000)),
        ("memory_remaining_kb", json!("lots")),
        ("ip", json!("not-an-ip")),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let response = app.register(&body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{field}");
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with(field), "{field}: {error}");
    }
    assert_eq!(app.instance_column(NAME, "status"), "PRE_CONNECTION");
}

#[tokio::test]
async fn heartbeats_update_metrics_and_time() {
    let app = TestApp::spawn().await;
    let token = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    app.db.execute(&format!(
        "UPDATE hardware.instance_info SET last_updated_utc_unix_ms = 5 WHERE instance_name = '{NAME}'"
    ));
    let response = app
        .as_host(Method::POST, "/host_service/heartbeat", &token)
        .json(&heartbeat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["instance_name"], NAME);
    assert_eq!(app.instance_column(NAME, "memory_remaining_kb"), "1000");
    assert_eq!(app.instance_column(NAME, "nanocpus_remaining"), "2000");
    assert_eq!(app.instance_column(NAME, "gpu_vram_remaining_kb"), "3000");
    let heard = app
        .instance_column(NAME, "last_updated_utc_unix_ms")
        .parse::<i64>()
        .unwrap();
    assert!(models::UnixMillis::now().as_millis() - heard < 60_000);
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");

    let bad = app
        .as_host(Method::POST, "/host_service/heartbeat", &token)
        .json(&json!({"memory_remaining_kb": -5}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_heartbeat_makes_an_unresponsive_host_active_again_with_its_mandelboxes() {
    let app = TestApp::spawn().await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    let token = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    let assigned = app.assign("alice", "us-east-1", HASH).await;
    assert_eq!(assigned.status(), StatusCode::ACCEPTED);
    // Found silent (its network was away, say): nothing new lands on it.
    app.db.execute(&format!(
        "UPDATE hardware.instance_info SET status = 'HOST_SERVICE_UNRESPONSIVE'
         WHERE instance_name = '{NAME}'"
    ));
    assert_eq!(
        app.assign("bob", "us-east-1", HASH).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let response = app
        .as_host(Method::POST, "/host_service/heartbeat", &token)
        .json(&heartbeat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");
    assert_eq!(app.mandelboxes_of("alice"), 1, "its session is still there");
    assert_eq!(
        app.assign("bob", "us-east-1", HASH).await.status(),
        StatusCode::ACCEPTED
    );

    // One being terminated is not revived.
    app.db.execute(&format!(
        "UPDATE hardware.instance_info
         SET status = 'HOST_SERVICE_UNRESPONSIVE', terminating_utc_unix_ms = 1
         WHERE instance_name = '{NAME}'"
    ));
    let late = app
        .as_host(Method::POST, "/host_service/heartbeat", &token)
        .json(&heartbeat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(
        app.instance_column(NAME, "status"),
        "HOST_SERVICE_UNRESPONSIVE"
    );
}

#[tokio::test]
async fn a_dying_heartbeat_drains_the_instance() {
    let app = TestApp::spawn().await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    let token = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    let assigned = app.assign("alice", "us-east-1", HASH).await;
    assert_eq!(
        assigned.status(),
        StatusCode::ACCEPTED,
        "a registered host receives mandelboxes"
    );

    let response = app
        .as_host(Method::POST, "/host_service/heartbeat", &token)
        .json(&heartbeat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.instance_column(NAME, "status"), "DRAINING");
    let refused = app.assign("bob", "us-east-1", HASH).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn credentials_do_not_cross_between_users_and_hosts() {
    let app = TestApp::spawn().await;
    let host = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    let user = app.identity.admin_token("alice");
    let with_user_token = app
        .as_host(Method::POST, "/host_service/heartbeat", &user)
        .json(&heartbeat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(with_user_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_with_token("/regions", &host).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A well-formed but unknown credential.
    let (stranger, _) = auth::host::new_host_token().unwrap();
    use secrecy::ExposeSecret;
    let unknown = app
        .as_host(
            Method::POST,
            "/host_service/heartbeat",
            stranger.expose_secret(),
        )
        .json(&heartbeat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let missing = app
        .client
        .post(app.url("/host_service/heartbeat"))
        .json(&heartbeat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hosts_update_and_remove_only_their_own_mandelboxes() {
    let app = TestApp::spawn().await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    let mine = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    let other = app
        .registered_host(
            "us-east-1-main-abc1234-uid-9999999999",
            "us-east-1",
            HASH,
            0,
        )
        .await;
    let assigned = json(app.assign("alice", "us-east-1", HASH).await).await;
    let id = assigned["mandelbox_id"].as_str().unwrap().to_owned();
    let status_path = format!("/host_service/mandelbox/{id}/status");
    let path = format!("/host_service/mandelbox/{id}");
    let box_status = |app: &TestApp| {
        app.db.number(&format!(
            "SELECT count(*) AS n FROM hardware.mandelbox_info
             WHERE mandelbox_id = '{id}' AND status = 'RUNNING'"
        ))
    };

    let foreign = app
        .as_host(Method::PUT, &status_path, &other)
        .json(&json!({"status": "RUNNING"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let foreign = app
        .as_host(Method::DELETE, &path, &other)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.mandelboxes(), 1);

    for (body, expected) in [
        (json!({"status": "ALLOCATED"}), StatusCode::BAD_REQUEST),
        (json!({"status": null}), StatusCode::BAD_REQUEST),
        (json!({"status": "CONNECTING"}), StatusCode::OK),
        (json!({"status": "RUNNING"}), StatusCode::OK),
    ] {
        let response = app
            .as_host(Method::PUT, &status_path, &mine)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{body}");
    }
    assert_eq!(box_status(&app), 1);
    let bad_id = app
        .as_host(
            Method::PUT,
            "/host_service/mandelbox/not-a-uuid/status",
            &mine,
        )
        .json(&json!({"status": "RUNNING"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);

    let removed = app
        .as_host(Method::DELETE, &path, &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    assert_eq!(app.mandelboxes(), 0);
    assert_eq!(
        app.instance_column(NAME, "free_slots"),
        "4",
        "the slot is free again"
    );
    let again = app
        .as_host(Method::DELETE, &path, &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let user = app.identity.admin_token("alice");
    assert_eq!(
        app.as_host(Method::DELETE, &path, &user)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_report_for_a_mandelbox_removed_for_never_being_reported_is_410() {
    let app = TestApp::spawn_with(&[
        ("LIFECYCLE_INTERVAL_SECS", "1"),
        ("ALLOCATION_TIMEOUT_SECS", "2"),
    ])
    .await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    let host = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    let mut ids = Vec::new();
    for user in ["slow", "quick"] {
        let assigned = json(app.assign(user, "us-east-1", HASH).await).await;
        ids.push(assigned["mandelbox_id"].as_str().unwrap().to_owned());
    }
    let report = |id: &str| {
        app.as_host(
            Method::PUT,
            &format!("/host_service/mandelbox/{id}/status"),
            &host,
        )
        .json(&json!({"status": "CONNECTING"}))
        .send()
    };
    // The quick client's host reports at once: that one is never removed.
    assert_eq!(report(&ids[1]).await.unwrap().status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.mandelboxes() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "not removed after 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let late = report(&ids[0]).await.unwrap();
    assert_eq!(late.status(), StatusCode::GONE);
    let error = json(late).await["error"].as_str().unwrap().to_owned();
    assert!(error.contains("allocation timeout"), "{error}");
    let ended = app
        .as_host(
            Method::DELETE,
            &format!("/host_service/mandelbox/{}", ids[0]),
            &host,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::GONE);
    // An id never issued is still 404, and the reported one is still there.
    let never = report("6f1c2e1a-1b2c-4d3e-8f90-0123456789ab")
        .await
        .unwrap();
    assert_eq!(never.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.db.number(&format!(
            "SELECT count(*) AS n FROM hardware.mandelbox_info
             WHERE mandelbox_id = '{}' AND status = 'CONNECTING'",
            ids[1]
        )),
        1
    );
}

#[tokio::test]
async fn the_server_marks_silent_hosts_unresponsive_on_its_own() {
    let app = TestApp::spawn_with(&[
        ("LIFECYCLE_INTERVAL_SECS", "1"),
        ("HEARTBEAT_TIMEOUT_SECS", "1"),
    ])
    .await;
    app.registered_host(NAME, "us-east-1", HASH, 4).await;
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.instance_column(NAME, "status") != "HOST_SERVICE_UNRESPONSIVE" {
        assert!(
            std::time::Instant::now() < deadline,
            "still ACTIVE after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The value of one sample in the metrics text, 0 if absent.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_heartbeats_are_written_together_and_each_host_is_answered_for_itself() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..6)
        .map(|n| format!("us-east-1-main-abc1234-uid-00000000{n:02}"))
        .collect();
    let mut tokens = Vec::new();
    for name in &names {
        tokens.push(app.registered_host(name, "us-east-1", HASH, 4).await);
    }
    // 20 heartbeats from each host at once, each with its own numbers, and 10 with a
    // credential nobody holds.
    let beats = (0..120).map(|n| {
        let (host, token) = (n % 6, tokens[n % 6].clone());
        let app = &app;
        async move {
            let mut body = heartbeat(false);
            body["memory_remaining_kb"] = json!(1_000_000 * (host + 1) + n);
            let response = app
                .as_host(Method::POST, "/host_service/heartbeat", &token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (host, response.status(), json(response).await)
        }
    });
    let strangers = (0..10).map(|_| {
        let app = &app;
        async move {
            let (token, _) = auth::host::new_host_token().unwrap();
            let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();
            app.as_host(Method::POST, "/host_service/heartbeat", &token)
                .json(&heartbeat(false))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let (answers, refused) = tokio::join!(join_all(beats), join_all(strangers));
    for (host, status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["instance_name"], names[host].as_str());
    }
    assert!(
        refused.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{refused:?}"
    );
    // Each host's row holds numbers one of its own heartbeats sent.
    for (host, name) in names.iter().enumerate() {
        let memory: usize = app
            .instance_column(name, "memory_remaining_kb")
            .parse()
            .unwrap();
        let base = 1_000_000 * (host + 1);
        assert!(
            (base..base + 120).contains(&memory) && (memory - base) % 6 == host,
            "{name}: {memory}"
        );
    }
    // Every known host's heartbeat went through a batch; the strangers' never queued.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(&metrics, "webserver_heartbeat_batch_size_sum"),
        120.0
    );
    let batches = sample(&metrics, "webserver_heartbeat_batch_size_count");
    assert!((1.0..=120.0).contains(&batches), "{batches}");
}

/// A well-formed host credential nobody was issued.
fn stranger() -> String {
    let (token, _) = auth::host::new_host_token().unwrap();
    secrecy::ExposeSecret::expose_secret(&token).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_before_they_queue_and_other_replicas_learn_new_hosts() {
    let app = TestApp::spawn().await;
    let other = app.spawn_sharing(&[]).await;
    let host = app.registered_host(NAME, "us-east-1", HASH, 4).await;
    let beat = |app: &TestApp, token: &str, dying: bool| {
        app.as_host(Method::POST, "/host_service/heartbeat", token)
            .json(&heartbeat(dying))
            .send()
    };
    // The replica that registered the host knows it at once; the other within moments
    // (the credential's notification).
    assert_eq!(
        beat(&app, &host, false).await.unwrap().status(),
        StatusCode::OK
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while beat(&other, &host, false).await.unwrap().status() != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica never learnt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let before = sample(
        &app.get("/metrics").await.text().await.unwrap(),
        "webserver_heartbeat_batch_size_sum",
    );
    let forged = (0..300).map(|n| {
        let app = &app;
        async move {
            let status = beat(app, &stranger(), n % 10 == 0).await.unwrap().status();
            let id = "6f1c2e1a-1b2c-4d3e-8f90-0123456789ab";
            let report = app
                .as_host(
                    Method::PUT,
                    &format!("/host_service/mandelbox/{id}/status"),
                    &stranger(),
                )
                .json(&json!({"status": "RUNNING"}))
                .send()
                .await
                .unwrap()
                .status();
            (status, report)
        }
    });
    for (beat, report) in join_all(forged).await {
        assert_eq!(beat, StatusCode::UNAUTHORIZED);
        assert_eq!(report, StatusCode::UNAUTHORIZED);
    }
    let after = sample(
        &app.get("/metrics").await.text().await.unwrap(),
        "webserver_heartbeat_batch_size_sum",
    );
    assert_eq!(
        after, before,
        "a stranger's heartbeat took a place in a batch"
    );
    // Dying strangers drained nothing; the real host still beats, dying included.
    assert_eq!(app.instance_column(NAME, "status"), "ACTIVE");
    assert_eq!(
        beat(&app, &host, true).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(app.instance_column(NAME, "status"), "DRAINING");
}

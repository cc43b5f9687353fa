//! `POST /mandelbox/assign` (SPEC §5) through the real server, against PostgreSQL.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use assignment::ScaleCheck;
use common::{TestApp, assign_body, json};
use futures_util::future::join_all;
use models::Region;
use reqwest::StatusCode;
use serde_json::{Value, json};

const HASH: &str = "abc1234";

/// An app with `region` enabled, its active image serving `HASH`.
async fn app_with_region(region: &str, overrides: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(overrides).await;
    app.add_region(region, HASH, &format!("ami-{region}"), true, true);
    app
}

async fn expect_assigned(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

async fn expect_refused(response: reqwest::Response, code: &str) {
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body,
        json!({"ip": null, "mandelbox_id": null, "error": code})
    );
}

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

#[tokio::test]
async fn an_empty_fleet_is_503_and_asks_for_capacity() {
    let app = app_with_region("us-east-1", &[]).await;
    expect_refused(
        app.assign("alice", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;
    assert_eq!(app.mandelboxes(), 0);
    assert_eq!(
        app.scaling.checks(),
        [ScaleCheck {
            region: region("us-east-1"),
            ami: None
        }]
    );
}

#[tokio::test]
async fn the_fullest_instance_with_room_is_chosen() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("half-full", "us-east-1", HASH, 10, 5);
    app.add_instance("empty", "us-east-1", HASH, 10, 0);
    app.add_instance("nearly-full", "us-east-1", HASH, 10, 9);

    let body = expect_assigned(app.assign("alice", "us-east-1", HASH).await).await;
    assert_eq!(body["ip"], "ip-of-nearly-full");
    let id = body["mandelbox_id"].as_str().unwrap();
    assert_eq!(uuid_version(id), Some(4), "{id}");
    let stored = app.db.number(&format!(
        "SELECT count(*) AS n FROM hardware.mandelbox_info
         WHERE mandelbox_id = '{id}' AND user_id = 'alice'
           AND instance_name = 'nearly-full' AND status = 'ALLOCATED'"
    ));
    assert_eq!(stored, 1);
    assert_eq!(
        app.scaling.checks(),
        [ScaleCheck {
            region: region("us-east-1"),
            ami: Some(models::AmiId::parse("ami-us-east-1").unwrap())
        }]
    );

    // nearly-full is full now: the next fullest is half-full.
    let body = expect_assigned(app.assign("bob", "us-east-1", HASH).await).await;
    assert_eq!(body["ip"], "ip-of-half-full");
    app.assert_invariants(1);
}

fn uuid_version(id: &str) -> Option<usize> {
    let parsed = uuid::Uuid::parse_str(id).ok()?;
    Some(parsed.get_version_num())
}

#[tokio::test]
async fn full_instances_are_skipped() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("full-10", "us-east-1", HASH, 10, 10);
    app.add_instance("full-5", "us-east-1", HASH, 5, 5);
    app.add_instance("room-5", "us-east-1", HASH, 5, 4);

    let body = expect_assigned(app.assign("alice", "us-east-1", HASH).await).await;
    assert_eq!(body["ip"], "ip-of-room-5");
    expect_refused(
        app.assign("bob", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;
    app.assert_invariants(1);
}

#[tokio::test]
async fn only_active_instances_that_were_heard_from_receive_mandelboxes() {
    let app = app_with_region("us-east-1", &[]).await;
    for status in ["PRE_CONNECTION", "DRAINING", "HOST_SERVICE_UNRESPONSIVE"] {
        app.add_instance_in(status, "us-east-1", HASH, 10, status, 1_700_000_000_000);
    }
    app.add_instance_in("silent", "us-east-1", HASH, 10, "ACTIVE", -1);
    expect_refused(
        app.assign("alice", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;
    assert_eq!(app.mandelboxes(), 0);
}

#[tokio::test]
async fn mandelboxes_written_with_plain_sql_are_counted() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("small", "us-east-1", HASH, 2, 0);
    app.add_mandelboxes("small", 2);
    expect_refused(
        app.assign("alice", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;

    app.db.execute(
        "DELETE FROM hardware.mandelbox_info
         WHERE mandelbox_id = (SELECT min(mandelbox_id) FROM hardware.mandelbox_info)",
    );
    let body = expect_assigned(app.assign("alice", "us-east-1", HASH).await).await;
    assert_eq!(body["ip"], "ip-of-small");
    app.assert_invariants(1);
}

#[tokio::test]
async fn bundled_neighbours_are_the_fallback_for_all_four_regions() {
    let app = TestApp::spawn().await;
    for name in ["us-east-1", "us-east-2", "us-west-1", "us-west-2"] {
        app.add_region(name, HASH, &format!("ami-{name}"), true, true);
    }
    let pairs = [
        ("us-east-1", "us-east-2"),
        ("us-east-2", "us-east-1"),
        ("us-west-1", "us-west-2"),
        ("us-west-2", "us-west-1"),
    ];
    for (i, (asked, neighbour)) in pairs.iter().enumerate() {
        app.db.execute("DELETE FROM hardware.instance_info");
        // The asked region is full; its neighbour has room; another region too.
        app.add_instance(&format!("{asked}-full"), asked, HASH, 5, 5);
        app.add_instance(&format!("{neighbour}-room"), neighbour, HASH, 5, 0);
        let elsewhere = if asked.starts_with("us-east") {
            "us-west-1"
        } else {
            "us-east-1"
        };
        app.add_instance(&format!("{elsewhere}-room"), elsewhere, HASH, 5, 0);

        let user = format!("user-{i}");
        let body = expect_assigned(app.assign(&user, asked, HASH).await).await;
        assert_eq!(body["ip"], format!("ip-of-{neighbour}-room"), "{asked}");

        // With room at home, home comes first.
        app.add_instance(&format!("{asked}-room"), asked, HASH, 5, 0);
        let body = expect_assigned(app.assign(&format!("{user}-b"), asked, HASH).await).await;
        assert_eq!(body["ip"], format!("ip-of-{asked}-room"), "{asked}");
    }
    app.assert_invariants(1);
}

#[tokio::test]
async fn a_client_list_of_regions_is_tried_in_order_instead_of_the_neighbours() {
    let app = TestApp::spawn().await;
    for name in ["us-east-1", "us-west-1", "us-west-2"] {
        app.add_region(name, HASH, &format!("ami-{name}"), true, true);
    }
    app.add_region("eu-west-1", HASH, "ami-eu", true, false);
    app.add_instance("east", "us-east-1", HASH, 5, 0);
    app.add_instance("west-1", "us-west-1", HASH, 5, 0);
    let token = |app: &TestApp, user: &str| app.paying_token(user);
    let body = |user: &str, regions: Value| json!({"regions": regions, "username": user, "dpi": 96, "client_commit_hash": HASH});

    let first = app
        .assign_body(
            &token(&app, "a"),
            &body("a", json!(["eu-west-1", "us-east-1", "us-west-1"])),
        )
        .await;
    assert_eq!(expect_assigned(first).await["ip"], "ip-of-east");

    let second = app
        .assign_body(
            &token(&app, "b"),
            &body("b", json!(["us-west-1", "us-east-1"])),
        )
        .await;
    assert_eq!(expect_assigned(second).await["ip"], "ip-of-west-1");

    // us-west-1 is the bundled neighbour of us-west-2, but the client's list rules.
    let third = app
        .assign_body(&token(&app, "c"), &body("c", json!(["us-west-2"])))
        .await;
    expect_refused(third, "NO_INSTANCE_AVAILABLE").await;

    let disabled = app
        .assign_body(
            &token(&app, "d"),
            &body("d", json!(["eu-west-1", "ap-south-1"])),
        )
        .await;
    expect_refused(disabled, "REGION_NOT_ENABLED").await;
}

#[tokio::test]
async fn unknown_or_disabled_regions_are_not_enabled() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_region("eu-west-1", HASH, "ami-eu", true, false);
    app.add_instance("east", "us-east-1", HASH, 5, 0);
    app.add_instance("eu", "eu-west-1", HASH, 5, 0);
    expect_refused(
        app.assign("alice", "ap-south-1", HASH).await,
        "REGION_NOT_ENABLED",
    )
    .await;
    expect_refused(
        app.assign("alice", "eu-west-1", HASH).await,
        "REGION_NOT_ENABLED",
    )
    .await;
    assert_eq!(app.mandelboxes(), 0);
    assert!(
        app.scaling.checks().is_empty(),
        "no scaling for regions we do not serve"
    );
}

#[tokio::test]
async fn room_only_for_another_commit_hash_is_a_mismatch() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("old-client", "us-east-1", "0ld0ld0", 5, 0);
    expect_refused(
        app.assign("alice", "us-east-1", HASH).await,
        "COMMIT_HASH_MISMATCH",
    )
    .await;
    assert_eq!(app.mandelboxes(), 0);
}

#[tokio::test]
async fn local_dev_means_the_active_image_in_development_and_local_only() {
    for environment in ["local", "development"] {
        let app = app_with_region("us-east-1", &[("ENVIRONMENT", environment)]).await;
        app.add_instance("dev", "us-east-1", HASH, 5, 0);
        let body = expect_assigned(app.assign("alice", "us-east-1", "local_dev").await).await;
        assert_eq!(body["ip"], "ip-of-dev", "{environment}");
    }
    for environment in ["production", "testing"] {
        let app = app_with_region(
            "us-east-1",
            &[
                ("ENVIRONMENT", environment),
                ("WEBSERVER_URL", "https://webserver.example.com"),
            ],
        )
        .await;
        app.add_instance("dev", "us-east-1", HASH, 5, 0);
        expect_refused(
            app.assign("alice", "us-east-1", "local_dev").await,
            "COMMIT_HASH_MISMATCH",
        )
        .await;
    }
}

#[tokio::test]
async fn an_active_user_is_refused_up_to_the_per_user_limit() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("big", "us-east-1", HASH, 10, 0);
    expect_assigned(app.assign("alice", "us-east-1", HASH).await).await;
    expect_refused(
        app.assign("alice", "us-east-1", HASH).await,
        "USER_ALREADY_ACTIVE",
    )
    .await;
    assert_eq!(app.mandelboxes_of("alice"), 1);

    let two = app_with_region("us-east-1", &[("MANDELBOX_LIMIT_PER_USER", "2")]).await;
    two.add_instance("big", "us-east-1", HASH, 10, 0);
    expect_assigned(two.assign("alice", "us-east-1", HASH).await).await;
    expect_assigned(two.assign("alice", "us-east-1", HASH).await).await;
    expect_refused(
        two.assign("alice", "us-east-1", HASH).await,
        "USER_ALREADY_ACTIVE",
    )
    .await;
    two.assert_invariants(2);
}

#[tokio::test]
async fn users_act_for_themselves_and_admins_for_anyone() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("big", "us-east-1", HASH, 10, 0);
    let response = app
        .assign_body(
            &app.paying_token("alice"),
            &assign_body("bob", "us-east-1", HASH),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(json(response).await["error"].is_string());
    assert_eq!(app.mandelboxes(), 0);

    // Admins need no subscription, and may act for another user.
    let admin = app.identity.admin_token("dev");
    let response = app
        .assign_body(&admin, &assign_body("bob", "us-east-1", HASH))
        .await;
    expect_assigned(response).await;
    assert_eq!(app.mandelboxes_of("bob"), 1);
    assert_eq!(app.mandelboxes_of("dev"), 0);
}

#[tokio::test]
async fn the_payment_gate_wants_an_active_or_trialing_subscription() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("big", "us-east-1", HASH, 10, 0);
    let assign_with = |token: String, user: String| {
        let app = &app;
        async move {
            app.assign_body(&token, &assign_body(&user, "us-east-1", HASH))
                .await
        }
    };

    let no_claim = assign_with(app.identity.token("nobody"), "nobody".into()).await;
    assert_eq!(no_claim.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(json(no_claim).await["error"].is_string());

    for status in ["canceled", "past_due", "unpaid", "incomplete_expired"] {
        let user = format!("lapsed-{status}");
        let response = assign_with(app.token_with_subscription(&user, status), user).await;
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED, "{status}");
    }
    assert_eq!(app.mandelboxes(), 0);

    let trial = assign_with(
        app.token_with_subscription("trial", "trialing"),
        "trial".into(),
    )
    .await;
    expect_assigned(trial).await;
    let paying = assign_with(app.paying_token("payer"), "payer".into()).await;
    expect_assigned(paying).await;
}

#[tokio::test]
async fn stripe_down_is_503_never_a_free_pass() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("big", "us-east-1", HASH, 10, 0);
    let token = app.paying_token("alice");
    app.stripe.set_down(true);
    expect_refused(
        app.assign_body(&token, &assign_body("alice", "us-east-1", HASH))
            .await,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert_eq!(app.mandelboxes(), 0);
    // Admins do not depend on Stripe.
    let admin = app.identity.admin_token("dev");
    expect_assigned(
        app.assign_body(&admin, &assign_body("dev", "us-east-1", HASH))
            .await,
    )
    .await;
}

#[tokio::test]
async fn a_burst_of_assigns_is_not_a_burst_of_stripe_calls() {
    let app = app_with_region("us-east-1", &[]).await;
    app.add_instance("big", "us-east-1", HASH, 10, 0);
    let token = app.paying_token("alice");
    let body = assign_body("alice", "us-east-1", HASH);
    let answers = join_all((0..10).map(|_| app.assign_body(&token, &body))).await;
    let accepted = answers
        .iter()
        .filter(|r| r.status() == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(app.stripe.hits(), 1);
}

#[tokio::test]
async fn the_rate_limit_counts_per_client_address_across_server_processes() {
    let first = app_with_region("us-east-1", &[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    let second = first.spawn_sharing(&[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    // Refused calls count too: no capacity at all here.
    expect_refused(
        first.assign("u1", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;
    expect_refused(
        second.assign("u2", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;
    expect_refused(
        first.assign("u3", "us-east-1", HASH).await,
        "NO_INSTANCE_AVAILABLE",
    )
    .await;

    let limited = second.assign("u4", "us-east-1", HASH).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(json(limited).await["error"].is_string());

    // A forwarded-for header is not trusted by default.
    let spoofed = first
        .client
        .post(first.url("/mandelbox/assign"))
        .bearer_auth(first.paying_token("u5"))
        .header("X-Forwarded-For", "203.0.113.9")
        .json(&assign_body("u5", "us-east-1", HASH))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn behind_trusted_proxies_the_client_is_the_address_they_saw() {
    for (settings, hops) in [
        (&[("TRUST_X_FORWARDED_FOR", "true")][..], 1),
        (&[("TRUSTED_PROXY_HOPS", "2")][..], 2),
    ] {
        let mut overrides = vec![("RATE_LIMIT_PER_MINUTE", "1")];
        overrides.extend_from_slice(settings);
        let app = app_with_region("us-east-1", &overrides).await;
        // What the client writes itself comes first; each trusted proxy appends the
        // address it saw. With two hops, the inner proxy's own address comes last.
        let from = |forged: &'static str, client: &'static str, user: &'static str| {
            let app = &app;
            let header = if hops == 1 {
                format!("{forged}, {client}")
            } else {
                format!("{forged}, {client}, 10.0.0.1")
            };
            async move {
                app.client
                    .post(app.url("/mandelbox/assign"))
                    .bearer_auth(app.paying_token(user))
                    .header("X-Forwarded-For", header)
                    .json(&assign_body(user, "us-east-1", HASH))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(
            from("1.1.1.1", "203.0.113.1", "a").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A forged address per request escapes nothing.
        assert_eq!(
            from("9.9.9.9", "203.0.113.1", "b").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            from("1.1.1.1", "203.0.113.2", "c").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

#[tokio::test]
async fn bad_input_is_4xx_and_writes_nothing() {
    let app = app_with_region("us-east-1", &[("MAX_BODY_BYTES", "4096")]).await;
    app.add_instance("big", "us-east-1", HASH, 10, 0);
    let token = app.paying_token("alice");
    let post = |body: Vec<u8>, content_type: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.client
                .post(app.url("/mandelbox/assign"))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let good = assign_body("alice", "us-east-1", HASH);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body.to_string().into_bytes()
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        body.to_string().into_bytes()
    };
    let json_type = "application/json";
    type Case = (
        &'static str,
        Vec<u8>,
        &'static str,
        StatusCode,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("broken JSON", b"{\"region\": ".to_vec(), json_type, StatusCode::BAD_REQUEST, None),
        ("not an object", b"[1, 2]".to_vec(), json_type, StatusCode::BAD_REQUEST, Some("body")),
        ("empty", Vec::new(), json_type, StatusCode::BAD_REQUEST, None),
        ("wrong content type", good.to_string().into_bytes(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        ("huge body", vec![b' '; 10_000], json_type, StatusCode::PAYLOAD_TOO_LARGE, None),
        ("null region", with("region", Value::Null), json_type, StatusCode::BAD_REQUEST, Some("region")),
        ("missing username", without("username"), json_type, StatusCode::BAD_REQUEST, Some("username")),
        // Found by scripts/fuzz-api.sh: PostgreSQL text cannot hold NUL (it was a 500).
        ("NUL in username", with("username", json!("al\u{0}ice")), json_type, StatusCode::BAD_REQUEST, Some("username")),
        ("null dpi", with("dpi", Value::Null), json_type, StatusCode::BAD_REQUEST, Some("dpi")),
        ("huge dpi", b"{\"region\":\"us-east-1\",\"username\":\"alice\",\"dpi\":1e400,\"client_commit_hash\":\"abc\"}".to_vec(), json_type, StatusCode::BAD_REQUEST, None),
        ("huge integer dpi", with("dpi", json!(u64::MAX)), json_type, StatusCode::BAD_REQUEST, Some("dpi")),
        ("negative dpi", with("dpi", json!(-96)), json_type, StatusCode::BAD_REQUEST, Some("dpi")),
        ("number hash", with("client_commit_hash", json!(1234)), json_type, StatusCode::BAD_REQUEST, Some("client_commit_hash")),
        ("long hash", with("client_commit_hash", json!("x".repeat(1000))), json_type, StatusCode::BAD_REQUEST, Some("client_commit_hash")),
        ("bad region list", with("regions", json!([null])), json_type, StatusCode::BAD_REQUEST, Some("regions")),
        ("negative wait", with("wait_secs", json!(-1)), json_type, StatusCode::BAD_REQUEST, Some("wait_secs")),
        ("long wait", with("wait_secs", json!(121)), json_type, StatusCode::BAD_REQUEST, Some("wait_secs")),
        ("string wait", with("wait_secs", json!("5")), json_type, StatusCode::BAD_REQUEST, Some("wait_secs")),
        ("float wait", with("wait_secs", json!(1.5)), json_type, StatusCode::BAD_REQUEST, Some("wait_secs")),
        ("null wait", with("wait_secs", Value::Null), json_type, StatusCode::BAD_REQUEST, Some("wait_secs")),
    ];
    for (case, body, content_type, status, field) in cases {
        let response = post(body, content_type).await;
        assert_eq!(response.status(), status, "{case}");
        let answer = json(response).await;
        let error = answer["error"].as_str().unwrap_or_default();
        if let Some(field) = field {
            assert!(error.starts_with(&format!("{field}:")), "{case}: {error}");
        }
    }
    assert_eq!(app.mandelboxes(), 0);
    // And the good body works.
    expect_assigned(post(good.to_string().into_bytes(), json_type).await).await;
}

#[tokio::test]
async fn assign_needs_a_valid_token() {
    let app = app_with_region("us-east-1", &[]).await;
    let response = app
        .client
        .post(app.url("/mandelbox/assign"))
        .json(&assign_body("alice", "us-east-1", HASH))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .assign_body("not-a-token", &assign_body("alice", "us-east-1", HASH))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

// Concurrency: many requests at once, through two server instances sharing the database.

/// `users` different paying users ask for a mandelbox in us-east-1 at once, half
/// through each server.
async fn assign_all_at_once(
    first: &TestApp,
    second: &TestApp,
    users: usize,
) -> Vec<reqwest::Response> {
    let users: Vec<(String, String)> = (0..users)
        .map(|i| {
            let user = format!("user-{i}");
            let token = first.paying_token(&user);
            (user, token)
        })
        .collect();
    let bodies: Vec<Value> = users
        .iter()
        .map(|(user, _)| assign_body(user, "us-east-1", HASH))
        .collect();
    let requests = users
        .iter()
        .zip(&bodies)
        .enumerate()
        .map(|(i, ((_, token), body))| {
            let app = if i % 2 == 0 { first } else { second };
            app.assign_body(token, body)
        });
    join_all(requests).await
}

/// Each answer's status and JSON body, for assertions that show them all when they fail.
async fn statuses_and_bodies(answers: Vec<reqwest::Response>) -> Vec<(StatusCode, Value)> {
    let mut read = Vec::with_capacity(answers.len());
    for answer in answers {
        let status = answer.status();
        read.push((status, json(answer).await));
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_assigns_never_exceed_capacity() {
    let first = app_with_region("us-east-1", &[]).await;
    let second = first.spawn_sharing(&[]).await;
    for i in 0..5 {
        first.add_instance(&format!("i{i}"), "us-east-1", HASH, 3, 0);
    }
    let answers = statuses_and_bodies(assign_all_at_once(&first, &second, 40).await).await;
    let accepted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::SERVICE_UNAVAILABLE && body["error"] == "NO_INSTANCE_AVAILABLE"
        })
        .count();
    assert_eq!((accepted, refused), (15, 25), "{answers:?}");
    assert_eq!(first.mandelboxes(), 15);
    first.assert_invariants(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_sending_many_requests_at_once_gets_one_mandelbox() {
    let first = app_with_region("us-east-1", &[]).await;
    let second = first.spawn_sharing(&[]).await;
    first.add_instance("big", "us-east-1", HASH, 50, 0);
    let token = first.paying_token("alice");
    let body = assign_body("alice", "us-east-1", HASH);
    let requests = (0..20).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.assign_body(&token, &body)
    });
    let answers = join_all(requests).await;
    let accepted = answers
        .iter()
        .filter(|r| r.status() == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1);
    for answer in answers
        .into_iter()
        .filter(|r| r.status() != StatusCode::ACCEPTED)
    {
        expect_refused(answer, "USER_ALREADY_ACTIVE").await;
    }
    assert_eq!(first.mandelboxes_of("alice"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_refused_while_a_slot_is_free() {
    // Exactly as many slots as requests: every request must get one, even though they
    // all race for the same fullest instance.
    let first = app_with_region("us-east-1", &[]).await;
    let second = first.spawn_sharing(&[]).await;
    for i in 0..3 {
        first.add_instance(&format!("i{i}"), "us-east-1", HASH, 10, 0);
    }
    let answers = statuses_and_bodies(assign_all_at_once(&first, &second, 30).await).await;
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == StatusCode::ACCEPTED),
        "{answers:?}"
    );
    first.assert_invariants(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_processes_keep_every_invariant() {
    use common::process::{Server, run, stdout};
    use test_support::{Fleet, TempDir, TestDatabase};

    let dir = TempDir::new();
    let db = TestDatabase::new();
    db.seed_fleet(&Fleet {
        region: "us-east-1",
        commit_hash: HASH,
        prefix: "i",
        instances: 5,
        capacity: 4,
        mandelboxes_each: 0,
    });
    let vars = [
        ("ENVIRONMENT", "local"),
        ("DATABASE_URL", db.url()),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        // Twenty slots, all of them taken: the fleet is not to be resized meanwhile
        // (20 free of 10 wanted would drain an empty instance).
        ("AUTOSCALE", "false"),
    ];
    let token = stdout(&run(
        &dir,
        &vars,
        &["dev-token", "--user", "load", "--admin"],
    ))
    .trim()
    .to_owned();
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&dir, &vars, &[])).collect();
    let client = reqwest::Client::new();
    // 60 users racing for 20 slots, and one user asking ten times at once.
    let users: Vec<String> = (0..60)
        .map(|i| format!("user-{i}"))
        .chain((0..10).map(|_| "eager".to_owned()))
        .collect();
    let requests = users.iter().enumerate().map(|(i, user)| {
        let url = servers[i % 3].url("/mandelbox/assign");
        client
            .post(url)
            .bearer_auth(&token)
            .json(&assign_body(user, "us-east-1", HASH))
            .send()
    });
    let answers = join_all(requests).await;
    let accepted = answers
        .iter()
        .filter(|r| r.as_ref().unwrap().status() == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 20, "every slot taken, none twice");
    let violations = models::invariants::violations(&mut db.connect(), 1).unwrap();
    assert!(violations.is_clean(), "{violations:?}");
    for server in servers {
        let (status, log) = server.stop();
        assert!(status.success(), "{log}");
    }
}

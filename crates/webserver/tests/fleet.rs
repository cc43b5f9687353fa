//! The `webserver` binary running the fleet: two server processes on AWS (moto) sharing
//! one database, and `ami-upgrade` end to end on the local provider.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::process::{Server, run, stderr, stdout, webserver};
use common::{assign_body, free_port};
use reqwest::StatusCode;
use test_support::{
    MOTO_ACCESS_KEY_ID, MOTO_INSTANCE_PROFILE, MOTO_SECRET_ACCESS_KEY, Moto, TempDir, TestDatabase,
};

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn admin_token(dir: &TempDir, vars: &[(&str, &str)]) -> String {
    let minted = run(dir, vars, &["dev-token", "--user", "ops", "--admin"]);
    assert!(minted.status.success(), "{}", stderr(&minted));
    stdout(&minted).trim().to_owned()
}

/// A server on `db` whose cloud is moto at `endpoint`.
fn on_moto<'a>(db: &'a TestDatabase, endpoint: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ENVIRONMENT", "local"),
        ("DATABASE_URL", db.url()),
        ("CLOUD_PROVIDER", "aws"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_ACCESS_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// Instances of `image` in moto's us-east-1, with their states.
async fn moto_instances(image: &str) -> Vec<(String, String)> {
    let xml = Moto::shared()
        .ec2_query(
            "us-east-1",
            &[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", "image-id"),
                ("Filter.1.Value.1", image),
            ],
        )
        .await;
    // Each instance: <instanceId>…</instanceId> … <instanceState><code>…</code><name>…</name>
    xml.split("<instanceId>")
        .skip(1)
        .map(|rest| {
            let id = rest.split("</instanceId>").next().unwrap().to_owned();
            let state = rest
                .split("<instanceState>")
                .nth(1)
                .and_then(|s| s.split("<name>").nth(1))
                .and_then(|s| s.split("</name>").next())
                .unwrap_or("")
                .to_owned();
            (id, state)
        })
        .collect()
}

/// An instance of `image` started in moto's us-east-1 behind the server's back, tagged
/// with `owner`: one some launcher started and never recorded.
async fn moto_run_instance(image: &str, owner: &str) -> String {
    let xml = Moto::shared()
        .ec2_query(
            "us-east-1",
            &[
                ("Action", "RunInstances"),
                ("ImageId", image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "g4dn.xlarge"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "webserver-fleet"),
                ("TagSpecification.1.Tag.1.Value", owner),
            ],
        )
        .await;
    xml.split("<instanceId>")
        .nth(1)
        .and_then(|rest| rest.split("</instanceId>").next())
        .unwrap_or_else(|| panic!("no instance started: {xml}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pass_terminates_an_unrecorded_instance_of_this_deployment_in_ec2() {
    let moto = Moto::shared().endpoint().to_owned();
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let unique = &uuid::Uuid::new_v4().simple().to_string()[..17];
    let (image, stray_image) = (format!("ami-{unique}"), format!("ami-{}", &unique[..16]));
    let deployment = format!("deployment-{unique}");
    db.execute(&format!(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'orphan-commit', '{image}', true);
         INSERT INTO hardware.deployment (deployment_id) VALUES ('{deployment}')"
    ));
    let ours = moto_run_instance(&stray_image, &deployment).await;
    let theirs = moto_run_instance(&stray_image, "another-deployment").await;
    let mut vars = on_moto(&db, &moto);
    vars.extend([
        ("SCALE_DOWN_INTERVAL_SECS", "1"),
        ("ORPHAN_GRACE_SECS", "0"),
    ]);
    let server = Server::start(&dir, &vars, &[]);

    // The pass launches the region's buffer instance (recorded), and ends the stray one.
    let state_of = |instances: &[(String, String)], id: &str| {
        instances
            .iter()
            .find(|(seen, _)| seen == id)
            .map(|(_, state)| state.clone())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let strays = moto_instances(&stray_image).await;
        if matches!(
            state_of(&strays, &ours).as_deref(),
            Some("terminated" | "shutting-down")
        ) {
            assert_eq!(state_of(&strays, &theirs).as_deref(), Some("running"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stray instance still runs: {strays:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let launched = moto_instances(&image).await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!(launched[0].1, "running");
    assert_eq!(
        db.number(&format!(
            "SELECT count(*) AS n FROM hardware.instance_info
             WHERE cloud_provider_id = 'aws-{}'",
            launched[0].0
        )),
        1
    );
    // A few more passes: the recorded instance is left alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(moto_instances(&image).await[0].1, "running");

    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("terminating an instance no row records"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_aws_launch_the_shortfall_once_and_terminate_what_never_registers() {
    let moto = Moto::shared().endpoint().to_owned();
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let image = format!("ami-{}", &uuid::Uuid::new_v4().simple().to_string()[..17]);
    db.execute(&format!(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'aws-commit', '{image}', true)"
    ));
    let mut base = on_moto(&db, &moto);
    base.extend([
        ("AWS_INSTANCE_PROFILE", MOTO_INSTANCE_PROFILE),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("DESIRED_FREE_MANDELBOXES", "4"),
        // What each launched instance holds, whatever its type says.
        ("MANDELBOXES_PER_INSTANCE", "4"),
    ]);
    let first = Server::start(&dir, &base, &[]);
    let mut second_vars = base.clone();
    // Only the second one runs the lifecycle often, and gives up on silent instances fast.
    second_vars.extend([
        ("PRE_CONNECTION_TIMEOUT_SECS", "4"),
        ("LIFECYCLE_INTERVAL_SECS", "1"),
    ]);
    let token = admin_token(&dir, &base);

    // Refusals on both servers at once.
    let second = Server::start(&dir, &second_vars, &[]);
    let client = reqwest::Client::new();
    let body = assign_body("ops", "us-east-1", "aws-commit");
    let mut requests = Vec::new();
    for i in 0..24 {
        let server = if i % 2 == 0 { &first } else { &second };
        let request = client
            .post(server.url("/mandelbox/assign"))
            .bearer_auth(&token)
            .json(&body)
            .send();
        requests.push(request);
    }
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    // The shortfall was launched in moto and recorded once, however many refusals there
    // were: 4 wanted free plus the one user refused (unmet demand), at 4 slots per
    // instance (MANDELBOXES_PER_INSTANCE) while none has registered: two instances.
    wait_until("the launched instances", Duration::from_secs(30), || {
        db.number("SELECT count(*) AS n FROM hardware.instance_info") >= 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let launched = moto_instances(&image).await;
    assert_eq!(launched.len(), 2, "{launched:?}");
    for (id, state) in &launched {
        assert_eq!(state, "running");
        assert_eq!(
            db.number(&format!(
                "SELECT count(*) AS n FROM hardware.instance_info
                 WHERE cloud_provider_id = 'aws-{id}' AND status = 'PRE_CONNECTION'
                   AND aws_ami_id = '{image}' AND location = 'us-east-1'"
            )),
            1
        );
    }

    // Their hosts never register: the lifecycle terminates them in EC2 and removes the
    // rows.
    wait_until("the instances to go", Duration::from_secs(30), || {
        db.number("SELECT count(*) AS n FROM hardware.instance_info") == 0
    });
    let after = moto_instances(&image).await;
    assert_eq!(after.len(), 2, "{after:?}");
    for (_, state) in &after {
        assert!(
            matches!(state.as_str(), "terminated" | "shutting-down"),
            "{after:?}"
        );
    }

    let (status, log) = first.stop();
    assert!(status.success(), "{log}");
    let (status, log) = second.stop();
    assert!(status.success(), "{log}");
}

fn region_rows(db: &TestDatabase) -> String {
    let mut conn = db.connect();
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    diesel::sql_query(
        "SELECT concat_ws('|', region_name, client_commit_hash, ami_id, ami_active, region_enabled) AS row
         FROM hardware.region_to_ami ORDER BY 1",
    )
    .load::<Row>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|r| r.row)
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn ami_upgrade_refuses_bad_input_and_changes_nothing() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'old', 'ami-old', true), ('us-west-1', 'old', 'ami-west', true)",
    );
    let before = region_rows(&db);
    let vars = [("ENVIRONMENT", "local"), ("DATABASE_URL", db.url())];
    let cases: &[(&[&str], &str)] = &[
        (&["new", "{not json"], "not valid JSON"),
        (&["new", "[\"us-east-1\"]"], "must be a JSON object"),
        (&["new", "{}"], "names no region"),
        (&["new", "{\"us-east-1\": 7}"], "must be a string"),
        (&["new", "{\"US EAST\": \"ami-1\"}"], "invalid region"),
        (
            &[
                "new",
                "{\"us-east-1\": \"ami-1\", \"mars-north-1\": \"ami-2\"}",
            ],
            "unknown regions (not in hardware.region_to_ami): mars-north-1",
        ),
        // The image already serves another commit in that region.
        (
            &["new", "{\"us-east-1\": \"ami-old\"}"],
            "already serves commit old",
        ),
        (
            &["old", "{\"us-east-1\": \"ami-other\"}"],
            "already has ami-old for commit old",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["ami-upgrade"];
        full.extend_from_slice(args);
        let output = run(&dir, &vars, &full);
        assert!(!output.status.success(), "{args:?} succeeded");
        let err = stderr(&output);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
        assert_eq!(region_rows(&db), before, "{args:?} changed the table");
        assert_eq!(
            db.number("SELECT count(*) AS n FROM hardware.instance_info"),
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ami_upgrade_rolls_the_fleet_over_on_the_local_provider() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'old-commit', 'ami-old', true)",
    );
    let host_port = free_port().to_string();
    let vars = [
        ("ENVIRONMENT", "local"),
        ("DATABASE_URL", db.url()),
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", host_port.as_str()),
        ("LOCAL_BOOT_DELAY_MS", "100"),
        ("LOCAL_MANDELBOX_CAPACITY", "2"),
        ("DESIRED_FREE_MANDELBOXES", "1"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let server = Server::start(&dir, &vars, &[]);
    let token = admin_token(&dir, &vars);

    // The old image's fleet: a refusal launches an instance, whose host registers.
    let client = reqwest::Client::new();
    let refused = client
        .post(server.url("/mandelbox/assign"))
        .bearer_auth(&token)
        .json(&assign_body("ops", "us-east-1", "old-commit"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    wait_until("the old fleet", Duration::from_secs(20), || {
        db.number(
            "SELECT count(*) AS n FROM hardware.instance_info
             WHERE aws_ami_id = 'ami-old' AND status = 'ACTIVE'",
        ) == 1
    });

    // The upgrade, its new hosts registering with that server.
    let mut upgrade = webserver(&dir, &vars)
        .env("WEBSERVER_URL", &server.address)
        .args([
            "ami-upgrade",
            "new-commit",
            "{\"us-east-1\": \"ami-new\"}",
            "--timeout-secs",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(upgrade.stdout.take().unwrap()).lines();
    let report = lines.next().unwrap().unwrap();
    assert!(
        report.starts_with("us-east-1: upgraded to ami-new (1 new instance(s) active, 1 old asked to drain, 0 unreachable)"),
        "{report}"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .contains("serving them until")
    );

    assert_eq!(
        region_rows(&db),
        "us-east-1|new-commit|ami-new|t|t\nus-east-1|old-commit|ami-old|f|t"
    );
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.instance_info
             WHERE aws_ami_id = 'ami-new' AND status = 'ACTIVE' AND commit_hash = 'new-commit'"
        ),
        1
    );
    assert_eq!(
        db.number(
            "SELECT count(*) AS n FROM hardware.instance_info
             WHERE aws_ami_id = 'ami-old' AND status = 'DRAINING'"
        ),
        1
    );
    // New clients land on the new image.
    let assigned = client
        .post(server.url("/mandelbox/assign"))
        .bearer_auth(&token)
        .json(&assign_body("ops", "us-east-1", "new-commit"))
        .send()
        .await
        .unwrap();
    assert_eq!(assigned.status(), StatusCode::ACCEPTED);

    // Running it again finds the image active and does nothing.
    let instances = db.number("SELECT count(*) AS n FROM hardware.instance_info");
    let again = run(
        &dir,
        &vars,
        &["ami-upgrade", "new-commit", "{\"us-east-1\": \"ami-new\"}"],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        stdout(&again).trim(),
        "us-east-1: ami-new is already the active image; nothing to do"
    );
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.instance_info"),
        instances
    );

    let status = std::process::Command::new("kill")
        .args(["-TERM", &upgrade.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(upgrade.wait().unwrap().success());
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn an_upgrade_whose_instances_never_register_is_rolled_back() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'old-commit', 'ami-old', true)",
    );
    let before = region_rows(&db);
    let host_port = free_port().to_string();
    // No webserver listens at WEBSERVER_URL: the new hosts cannot register.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let vars = [
        ("ENVIRONMENT", "local"),
        ("DATABASE_URL", db.url()),
        ("CLOUD_PROVIDER", "local"),
        ("HOST_SERVICE_PORT", host_port.as_str()),
        ("LOCAL_BOOT_DELAY_MS", "50"),
        ("WEBSERVER_URL", nowhere.as_str()),
    ];
    let output = run(
        &dir,
        &vars,
        &[
            "ami-upgrade",
            "new-commit",
            "{\"us-east-1\": \"ami-new\"}",
            "--timeout-secs",
            "2",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("us-east-1: NOT upgraded to ami-new: 0 of 1 new instances registered"),
        "{out}"
    );
    assert_eq!(region_rows(&db), before);
    assert_eq!(
        db.number("SELECT count(*) AS n FROM hardware.instance_info"),
        0
    );
}

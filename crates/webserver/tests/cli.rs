//! The `webserver` binary as an operator runs it: configuration errors, migrations,
//! development tokens, logs and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{Server, run, stderr, stdout, webserver};

use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{TEST_ISSUER, TempDir, TestDatabase, TestIdentity};

fn one_line_naming(output: &Output, var: &str) {
    assert!(!output.status.success());
    let err = stderr(output);
    assert_eq!(err.trim().lines().count(), 1, "expected one line: {err}");
    assert!(err.contains(var), "expected {var} in: {err}");
}

#[test]
fn missing_database_url_stops_startup_with_one_line_naming_it() {
    let dir = TempDir::new();
    one_line_naming(&run(&dir, &[], &["serve"]), "DATABASE_URL");
    one_line_naming(&run(&dir, &[], &["migrate"]), "DATABASE_URL");
}

#[test]
fn malformed_values_stop_startup_with_one_line_naming_them() {
    let dir = TempDir::new();
    let db = ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
    one_line_naming(
        &run(&dir, &[db, ("BIND_ADDR", "everywhere")], &["serve"]),
        "BIND_ADDR",
    );
    one_line_naming(
        &run(&dir, &[db, ("ENVIRONMENT", "prod")], &["serve"]),
        "ENVIRONMENT",
    );
    one_line_naming(
        &run(
            &dir,
            &[db, ("DESIRED_FREE_MANDELBOXES", "lots")],
            &["serve"],
        ),
        "DESIRED_FREE_MANDELBOXES",
    );
    let secret = run(
        &dir,
        &[("DATABASE_URL", "mysql://root:hunter2@db/x")],
        &["serve"],
    );
    one_line_naming(&secret, "DATABASE_URL");
    assert!(!stderr(&secret).contains("hunter2"));
    // Out of its range, a number stops start-up the same way (0 used to panic the jobs).
    for (var, value) in [
        ("LIFECYCLE_INTERVAL_SECS", "0"),
        ("SCALE_DOWN_INTERVAL_SECS", "0"),
        ("DATABASE_CONNECT_TIMEOUT_SECS", "0"),
    ] {
        one_line_naming(&run(&dir, &[db, (var, value)], &["serve"]), var);
    }
}

#[test]
fn serve_refuses_to_start_without_an_explicit_environment() {
    let dir = TempDir::new();
    let output = webserver(
        &dir,
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    )
    .env_remove("ENVIRONMENT")
    .arg("serve")
    .output()
    .unwrap();
    one_line_naming(&output, "ENVIRONMENT");
}

#[test]
fn settings_are_read_from_a_dotenv_file() {
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=postgres://nobody@127.0.0.1:1/none\nBIND_ADDR=not-an-address\n",
    )
    .unwrap();
    one_line_naming(&run(&dir, &[], &["serve"]), "BIND_ADDR");
}

#[test]
fn production_and_staging_refuse_local_conveniences() {
    let dir = TempDir::new();
    let db = ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
    for env in ["production", "staging"] {
        let environment = ("ENVIRONMENT", env);
        one_line_naming(&run(&dir, &[db, environment], &["serve"]), "JWKS_URL");
        one_line_naming(
            &run(
                &dir,
                &[
                    db,
                    environment,
                    ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
                    ("STRIPE_SECRET", "sk_test_unused"),
                    ("CLOUD_PROVIDER", "local"),
                ],
                &["serve"],
            ),
            "CLOUD_PROVIDER",
        );
        let token = run(
            &dir,
            &[environment, ("AUTH0_DOMAIN", "fractal.us.auth0.com")],
            &["dev-token", "--user", "alice"],
        );
        assert!(!token.status.success());
        assert!(stderr(&token).contains("refused"), "{}", stderr(&token));
        assert!(stdout(&token).is_empty());
    }
}

#[test]
fn serve_refuses_a_database_behind_its_migrations_until_migrate_runs() {
    let dir = TempDir::new();
    let db = TestDatabase::empty();
    let vars = [("DATABASE_URL", db.url())];

    let refused = run(&dir, &vars, &["serve"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("run `webserver migrate`"),
        "{}",
        stderr(&refused)
    );

    let first = run(&dir, &vars, &["migrate"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let embedded = models::migrations::embedded_versions().unwrap();
    assert_eq!(
        stdout(&first).trim(),
        format!(
            "applied {} migration(s): {}",
            embedded.len(),
            embedded.join(", ")
        )
    );
    let second = run(&dir, &vars, &["migrate"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second).trim(), "the database is up to date");

    let server = Server::start(&dir, &vars, &[]);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn concurrent_migrations_take_turns() {
    let dir = TempDir::new();
    let db = TestDatabase::empty();
    let children: Vec<Child> = (0..3)
        .map(|_| {
            webserver(&dir, &[("DATABASE_URL", db.url())])
                .arg("migrate")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        assert!(output.status.success(), "{}", stderr(output));
    }
    let applied = outputs
        .iter()
        .filter(|output| stdout(output).starts_with("applied"))
        .count();
    assert_eq!(applied, 1, "exactly one process applies the migration");
}

#[tokio::test]
async fn serve_with_migrate_applies_pending_migrations_first() {
    let dir = TempDir::new();
    let db = TestDatabase::empty();
    let server = Server::start(&dir, &[("DATABASE_URL", db.url())], &["--migrate"]);
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("applied migrations"), "{log}");
}

#[tokio::test]
async fn dev_tokens_work_against_a_local_server() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    db.execute(
        "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
         VALUES ('us-east-1', 'dev', 'ami-dev', true)",
    );
    let vars = [("ENVIRONMENT", "local"), ("DATABASE_URL", db.url())];
    let minted = run(
        &dir,
        &vars,
        &[
            "dev-token",
            "--user",
            "alice",
            "--admin",
            "--stripe-customer",
            "cus_123",
        ],
    );
    assert!(minted.status.success(), "{}", stderr(&minted));
    let token = stdout(&minted).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");

    let server = Server::start(&dir, &vars, &[]);
    let client = reqwest::Client::new();
    let regions = client
        .get(server.url("/regions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(regions.status(), StatusCode::OK);
    assert_eq!(regions.json::<Value>().await.unwrap(), json!(["us-east-1"]));
    let hasura = client
        .get(server.url("/hasura/auth"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        hasura.json::<Value>().await.unwrap(),
        json!({"X-Hasura-Role": "user", "X-Hasura-User-Id": "alice"})
    );
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn a_production_server_refuses_dev_tokens() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let identity = TestIdentity::new();
    let minted = run(
        &dir,
        &[("ENVIRONMENT", "local")],
        &["dev-token", "--user", "mallory", "--admin"],
    );
    let dev_token = stdout(&minted).trim().to_owned();
    assert!(!dev_token.is_empty(), "{}", stderr(&minted));

    // Same data directory, so the development key is right there: still refused.
    let server = Server::start(
        &dir,
        &[
            ("ENVIRONMENT", "production"),
            ("STRIPE_SECRET", "sk_test_unused"),
            ("WEBSERVER_URL", "https://api.example.com"),
            ("DATABASE_URL", db.url()),
            ("JWKS_URL", identity.jwks.url()),
            ("JWT_ISSUER", TEST_ISSUER),
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let refused = client
        .get(server.url("/regions"))
        .bearer_auth(&dev_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let accepted = client
        .get(server.url("/regions"))
        .bearer_auth(identity.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn json_logs_are_json_lines_without_secrets() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let vars = [
        ("ENVIRONMENT", "local"),
        ("DATABASE_URL", db.url()),
        ("LOG_FORMAT", "json"),
    ];
    let token = stdout(&run(&dir, &vars, &["dev-token", "--user", "alice"]))
        .trim()
        .to_owned();
    let server = Server::start(&dir, &vars, &[]);
    let by_query = reqwest::get(server.url(&format!("/hasura/auth?access_token={token}")))
        .await
        .unwrap();
    assert_eq!(by_query.status(), StatusCode::OK);
    let by_header = reqwest::Client::new()
        .get(server.url("/regions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");

    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature),
        "the token reached the log:\n{log}"
    );
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["message"] == "request"
                && (line["route"] == "/regions" || line["route"] == "/hasura/auth")
        })
        .collect();
    assert_eq!(requests.len(), 2, "{log}");
    assert_eq!(requests[0]["query"], "access_token=[REDACTED]");
    assert_eq!(requests[0]["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let vars = [("ENVIRONMENT", "local"), ("DATABASE_URL", db.url())];
    let token = stdout(&run(&dir, &vars, &["dev-token", "--user", "alice"]))
        .trim()
        .to_owned();
    let mut server = Server::start(&dir, &vars, &[]);

    // Hold /regions in flight: its query waits for this lock.
    let mut locker = db.connect();
    locker
        .batch_execute("BEGIN; LOCK TABLE hardware.region_to_ami IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let url = server.url("/regions");
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map(|response| response.status())
    });
    wait_until("the request waits on the lock", || waiting_on_lock(&db));
    assert!(!in_flight.is_finished());

    server.signal("TERM");
    wait_until("the listener closes", || {
        std::net::TcpStream::connect(server.address.trim_start_matches("http://")).is_err()
    });
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server must wait for the in-flight request"
    );

    locker.batch_execute("COMMIT").unwrap();
    let status = in_flight.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    let exit = server.wait(Duration::from_secs(20));
    assert!(exit.success(), "exit status {exit}");
}

/// Polls `condition` for up to 20 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether some query of `db` is waiting for a lock.
fn waiting_on_lock(db: &TestDatabase) -> bool {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS count FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .get_result(&mut db.connect())
    .unwrap();
    count.count > 0
}

#[test]
fn a_signal_right_after_start_still_shuts_down_cleanly() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    for _ in 0..5 {
        let server = Server::start(&dir, &[("DATABASE_URL", db.url())], &[]);
        let (status, log) = server.stop();
        assert!(status.success(), "{status}: {log}");
        assert!(log.contains("signal received"), "{log}");
    }
}

#[tokio::test]
async fn sigint_stops_the_server_too() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let mut server = Server::start(&dir, &[("DATABASE_URL", db.url())], &[]);
    server.signal("INT");
    assert!(server.wait(Duration::from_secs(20)).success());
}

#[test]
fn every_command_has_help() {
    let dir = TempDir::new();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["dev-token", "--help"],
        &["ami-upgrade", "--help"],
    ] {
        let output = run(&dir, &[], args);
        assert!(output.status.success(), "{args:?}");
        assert!(stdout(&output).contains("Usage: webserver"), "{args:?}");
    }
    let top = stdout(&run(&dir, &[], &["--help"]));
    for command in ["serve", "migrate", "ami-upgrade", "dev-token"] {
        assert!(top.contains(command), "{command} missing from --help");
    }
}

/// An AWS instance type the server cannot size stops start-up: launches would count
/// each instance as one mandelbox, and a burst would launch one instance per user.
#[test]
fn an_instance_type_of_unknown_size_needs_mandelboxes_per_instance() {
    let dir = TempDir::new();
    let db = TestDatabase::new();
    let vars = [
        ("DATABASE_URL", db.url()),
        ("CLOUD_PROVIDER", "aws"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_INSTANCE_TYPE_TO_LAUNCH", "m5.large"),
    ];
    let refused = run(&dir, &vars, &["serve"]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("MANDELBOXES_PER_INSTANCE") && err.contains("m5.large"),
        "{err}"
    );
    // Sized by hand, it starts (and stops on SIGTERM).
    let mut sized = vars.to_vec();
    sized.push(("MANDELBOXES_PER_INSTANCE", "2"));
    let server = Server::start(&dir, &sized, &[]);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

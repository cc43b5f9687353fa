//! The operators' console: `GET /fleet`, `POST /fleet/instances/{name}/drain` and
//! `webserver fleet`, on a seeded fleet in PostgreSQL.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::process::{run, stdout};
use common::{TestApp, assign_body, json};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::TempDir;

const HASH: &str = "abc1234";

/// us-east-1 enabled with two ACTIVE instances and a booting one; us-west-1 disabled;
/// eu-west-1 has an instance but no image row.
async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    app.add_region("us-west-1", HASH, "ami-us-west-1", true, false);
    app.add_instance("busy", "us-east-1", HASH, 8, 3);
    app.add_instance("idle", "us-east-1", HASH, 4, 0);
    app.add_instance_in("booting", "us-east-1", HASH, 0, "PRE_CONNECTION", -1);
    app.add_instance("stray", "eu-west-1", HASH, 2, 1);
    app.db.execute(
        "UPDATE hardware.mandelbox_info SET status = 'ALLOCATED'
         WHERE mandelbox_id IN (SELECT mandelbox_id FROM hardware.mandelbox_info
                                WHERE instance_name = 'busy' LIMIT 1)",
    );
    app
}

fn admin(app: &TestApp) -> String {
    app.identity.admin_token("operator")
}

async fn fleet(app: &TestApp) -> Value {
    let answer = app.get_with_token("/fleet", &admin(app)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    json(answer).await
}

fn region<'a>(fleet: &'a Value, name: &str) -> &'a Value {
    fleet["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == name)
        .unwrap_or_else(|| panic!("no {name} in {fleet}"))
}

#[tokio::test]
async fn the_fleet_is_for_admins_only() {
    let app = seeded().await;
    assert_eq!(app.get("/fleet").await.status(), StatusCode::UNAUTHORIZED);
    let user = app.identity.token("alice");
    let answer = app.get_with_token("/fleet", &user).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let drain = app
        .client
        .post(app.url("/fleet/instances/idle/drain"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(drain.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.instance_column("idle", "status"), "ACTIVE");
}

#[tokio::test]
async fn the_fleet_document_shows_every_region_and_instance() {
    let app = seeded().await;
    let fleet = fleet(&app).await;
    assert!(fleet["generated_at_ms"].as_i64().unwrap() > 1_700_000_000_000);
    let names: Vec<&str> = fleet["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eu-west-1", "us-east-1", "us-west-1"]);

    let east = region(&fleet, "us-east-1");
    assert_eq!(east["enabled"], true);
    assert_eq!(
        east["active_image"],
        json!({"ami_id": "ami-us-east-1", "client_commit_hash": HASH})
    );
    // ACTIVE instances only: 8 + 4 slots, 5 + 4 free; the booting one adds nothing.
    assert_eq!(
        (east["capacity"].as_i64(), east["free_slots"].as_i64()),
        (Some(12), Some(9))
    );
    assert_eq!(east["waiting"], 0);
    let instances = east["instances"].as_array().unwrap();
    let names: Vec<&str> = instances
        .iter()
        .map(|i| i["instance_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["booting", "busy", "idle"]);
    let busy = &instances[1];
    assert_eq!(busy["status"], "ACTIVE");
    assert_eq!(busy["capacity"], 8);
    assert_eq!(busy["mandelboxes"], json!({"ALLOCATED": 1, "RUNNING": 2}));
    assert_eq!(busy["aws_ami_id"], "ami-us-east-1");
    assert_eq!(busy["commit_hash"], HASH);
    assert!(busy["last_heartbeat_ms_ago"].as_i64().unwrap() > 0);
    assert!(busy["age_ms"].as_i64().unwrap() >= 0);
    let booting = &instances[0];
    assert_eq!(booting["status"], "PRE_CONNECTION");
    assert_eq!(booting["last_heartbeat_ms_ago"], Value::Null);
    assert_eq!(booting["mandelboxes"], json!({}));

    let west = region(&fleet, "us-west-1");
    assert_eq!(west["enabled"], false);
    assert_eq!(west["active_image"], Value::Null);
    assert_eq!(west["instances"], json!([]));
    let stray = region(&fleet, "eu-west-1");
    assert_eq!(stray["enabled"], false);
    assert_eq!(
        (stray["capacity"].as_i64(), stray["free_slots"].as_i64()),
        (Some(2), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_waiting_for_a_slot_are_counted_in_their_region() {
    let app = TestApp::spawn().await;
    app.add_region("us-east-1", HASH, "ami-us-east-1", true, true);
    app.add_instance("full", "us-east-1", HASH, 1, 1);
    let mut body = assign_body("alice", "us-east-1", HASH);
    body["wait_secs"] = json!(30);
    let request = app
        .client
        .post(app.url("/mandelbox/assign"))
        .bearer_auth(app.paying_token("alice"))
        .json(&body);
    let waiter = tokio::spawn(request.send());
    let deadline = Instant::now() + Duration::from_secs(10);
    while region(&fleet(&app).await, "us-east-1")["waiting"] != 1 {
        assert!(Instant::now() < deadline, "the waiting user never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Served: no longer waiting.
    app.db.execute("DELETE FROM hardware.mandelbox_info");
    assert_eq!(
        waiter.await.unwrap().unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(region(&fleet(&app).await, "us-east-1")["waiting"], 0);
}

async fn drain(app: &TestApp, name: &str) -> (StatusCode, Value) {
    let answer = app
        .client
        .post(app.url(&format!("/fleet/instances/{name}/drain")))
        .bearer_auth(admin(app))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, json(answer).await)
}

#[tokio::test]
async fn an_operator_drains_a_busy_instance_and_its_sessions_go_on() {
    let app = seeded().await;
    // Its host cannot be reached (no address it could have): it stays draining, with
    // its sessions, and nothing new lands there.
    let (status, body) = drain(&app, "busy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"instance_name": "busy", "outcome": "host_unreachable"})
    );
    assert_eq!(app.instance_column("busy", "status"), "DRAINING");
    assert_eq!(
        app.db.number(
            "SELECT count(*) AS n FROM hardware.mandelbox_info WHERE instance_name = 'busy'"
        ),
        3
    );
    // Again: 200, nothing changes.
    let (status, body) = drain(&app, "busy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outcome"], "already_draining");
    assert_eq!(app.instance_column("busy", "status"), "DRAINING");

    // Nothing new lands there: the next user goes to the other instance.
    let answer = app.assign("carol", "us-east-1", HASH).await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert_eq!(json(answer).await["ip"], "ip-of-idle");
}

#[tokio::test]
async fn drains_of_unknown_malformed_or_undrainable_instances_change_nothing() {
    let app = seeded().await;
    let (status, body) = drain(&app, "nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = drain(&app, "not%20a%20name").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.db.execute(
        "UPDATE hardware.instance_info SET status = 'HOST_SERVICE_UNRESPONSIVE'
         WHERE instance_name = 'stray'",
    );
    let (status, body) = drain(&app, "stray").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("HOST_SERVICE_UNRESPONSIVE")
    );
    assert_eq!(
        app.instance_column("stray", "status"),
        "HOST_SERVICE_UNRESPONSIVE"
    );
    assert_eq!(
        app.db
            .number("SELECT count(*) AS n FROM hardware.instance_info WHERE status = 'DRAINING'"),
        0
    );
}

#[tokio::test]
async fn the_cli_prints_the_fleet_from_the_database() {
    let app = seeded().await;
    let dir = TempDir::new();
    let vars = [("DATABASE_URL", app.db.url())];
    let text = stdout(&run(&dir, &vars, &["fleet"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(
            &"us-east-1  capacity 12  free 9  waiting 0  ami-us-east-1 (abc1234)  3 instance(s)"
        ),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("busy")
            && l.contains("ACTIVE")
            && l.contains("3/8 (1 ALLOCATED, 2 RUNNING)")),
        "{text}"
    );
    assert!(
        lines.contains(
            &"us-west-1 (disabled)  capacity 0  free 0  waiting 0  no active image  0 instance(s)"
        ),
        "{text}"
    );

    let printed: Value =
        serde_json::from_str(&stdout(&run(&dir, &vars, &["fleet", "--json"]))).unwrap();
    let served = fleet(&app).await;
    // The same document as GET /fleet, but for when it was read.
    let without_time = |mut doc: Value| {
        doc["generated_at_ms"] = Value::Null;
        for region in doc["regions"].as_array_mut().unwrap() {
            for instance in region["instances"].as_array_mut().unwrap() {
                instance["age_ms"] = Value::Null;
                instance["last_heartbeat_ms_ago"] = Value::Null;
            }
        }
        doc
    };
    assert_eq!(without_time(printed), without_time(served));
}

/// Loads `url` in headless Chromium (Debian's; `scripts/test.sh` installs it) and
/// returns the DOM after its scripts ran; with `screenshot`, also saves the page there.
async fn browse(url: String, screenshot: Option<std::path::PathBuf>) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no {chromium}: scripts/test.sh installs Debian's chromium (or set CHROMIUM)"
    );
    tokio::task::spawn_blocking(move || {
        let profile = TempDir::new();
        let mut command = std::process::Command::new(&chromium);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,800",
            "--virtual-time-budget=3000",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display()));
        if let Some(path) = &screenshot {
            command.arg(format!("--screenshot={}", path.display()));
        } else {
            command.arg("--dump-dom");
        }
        let output = command.arg(&url).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_the_fleet_in_a_real_browser() {
    let app = seeded().await;
    let page = app.get("/dashboard").await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an external URL"
    );

    let url = format!("{}#token={}", app.url("/dashboard"), admin(&app));
    let dom = browse(url.clone(), None).await;
    for expected in [
        "data-region=\"us-east-1\"",
        "data-region=\"us-west-1\"",
        "data-region=\"eu-west-1\"",
        "data-instance=\"busy\"",
        "data-instance=\"booting\"",
        "s-PRE_CONNECTION",
        ">ACTIVE<",
        "3/8 (1 allocated, 2 running)",
        "ami-us-east-1 (abc1234)",
        ">disabled<",
    ] {
        assert!(
            dom.contains(expected),
            "no {expected} in the rendered page:\n{dom}"
        );
    }
    assert!(!dom.contains("class=\"error\""), "{dom}");
    // For people to look at: the build directory keeps it.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browse(url, Some(shot.clone())).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // A user's token: the page says so plainly.
    let url = format!(
        "{}#token={}",
        app.url("/dashboard"),
        app.identity.token("alice")
    );
    let dom = browse(url, None).await;
    assert!(dom.contains("not an admin's (403)"), "{dom}");
    assert!(!dom.contains("data-instance="), "{dom}");
    // A token the server refuses, and no token at all.
    let url = format!("{}#token=not-a-token", app.url("/dashboard"));
    let dom = browse(url, None).await;
    assert!(dom.contains("refused the token (401)"), "{dom}");
    let dom = browse(app.url("/dashboard"), None).await;
    assert!(dom.contains("Paste an admin token above"), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_shows_whole_first_sentences_with_code_rendered() {
    let app = TestApp::spawn().await;
    let dom = browse(app.url("/docs"), None).await;
    // The doc comment wraps three times inside its first sentence, which holds a
    // parenthesis, a colon and inline code: the summary is still the whole sentence.
    let readyz = "<span class=\"muted first-sentence\"><code>GET /readyz</code>: 200 only \
                  when the request pool, and the lock pool, can hand out a working \
                  connection now (one answered within the last second, or a probe: a \
                  connection within half a second and <code>SELECT 1</code>); 503 with the \
                  reason otherwise, or once shutdown began.</span>";
    assert!(dom.contains(readyz), "{dom}");
    // The rest is there on demand, unwrapped into one paragraph.
    assert!(
        dom.contains("so a flood of probes costs the database almost nothing. Use it for"),
        "{dom}"
    );
    // No markdown backticks left in what the page shows.
    let shown: String =
        dom.split("<script").next().unwrap().to_owned() + dom.rsplit("</script>").next().unwrap();
    assert!(!shown.contains('`'), "raw backticks in:\n{shown}");
}

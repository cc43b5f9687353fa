//! `POST /mail` through the server: templates from the database, Jinja with escaped
//! arguments, admin only, every refusal a 400 `verified: false`; and one mail all the
//! way to a real SMTP server.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{TestApp, json};
use reqwest::StatusCode;
use serde_json::{Value, json as body};
use test_support::{SmtpServer, TempDir};

fn add_template(app: &TestApp, id: &str, title: &str, url: &str, text: Option<&str>) {
    let text = text.map_or("NULL".to_owned(), |t| {
        format!("'{}'", t.replace('\'', "''"))
    });
    app.db.execute(&format!(
        "INSERT INTO sales.email_templates (id, title, url, body)
         VALUES ('{id}', '{title}', '{url}', {text})"
    ));
}

async fn send(app: &TestApp, token: &str, payload: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/mail"))
        .bearer_auth(token)
        .json(payload)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_sends_a_rendered_template() {
    let app = TestApp::spawn().await;
    add_template(
        &app,
        "WELCOME",
        "Welcome to Fractal",
        "",
        Some("<p>Hi {{ name }}!</p>{% for app in apps %}<li>{{ app }}</li>{% endfor %}"),
    );
    let admin = app.identity.admin_token("ops");
    let response = send(
        &app,
        &admin,
        &body!({
            "email_id": "WELCOME",
            "to_email": "ada@example.com",
            "email_args": {"name": "<b>Ada</b>", "apps": ["Chrome", "Figma"]},
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await,
        body!({"verified": true, "status": 200})
    );
    let sent = app.outbox.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.as_str(), "ada@example.com");
    assert_eq!(sent[0].from.as_str(), "noreply@fractal.co");
    assert_eq!(sent[0].subject, "Welcome to Fractal");
    assert_eq!(
        sent[0].html,
        "<p>Hi &lt;b&gt;Ada&lt;&#x2f;b&gt;!</p><li>Chrome</li><li>Figma</li>"
    );

    // from_email overrides the default sender.
    let response = send(
        &app,
        &admin,
        &body!({
            "email_id": "WELCOME",
            "to_email": "bob@example.com",
            "from_email": "support@fractal.co",
            "email_args": {"name": "Bob", "apps": []},
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.outbox.sent()[1].from.as_str(), "support@fractal.co");
}

#[tokio::test]
async fn a_template_at_a_file_url_is_read_from_there() {
    let dir = TempDir::new();
    let template_dir = dir.path().display().to_string();
    let app = TestApp::spawn_with(&[("MAIL_TEMPLATE_DIR", &template_dir)]).await;
    let path = dir.path().join("reset.html");
    std::fs::write(&path, "Reset at {{ link }}").unwrap();
    add_template(
        &app,
        "RESET",
        "Reset your password",
        &format!("file://{}", path.display()),
        None,
    );
    let admin = app.identity.admin_token("ops");
    let response = send(
        &app,
        &admin,
        &body!({"email_id": "RESET", "to_email": "ada@example.com", "email_args": {"link": "https://x.co/r?a=1&b=2"}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.outbox.sent()[0].html,
        "Reset at https:&#x2f;&#x2f;x.co&#x2f;r?a=1&amp;b=2"
    );
}

#[tokio::test]
async fn every_refusal_is_a_400_that_sends_nothing() {
    let app = TestApp::spawn().await;
    add_template(
        &app,
        "HELLO",
        "Hello",
        "",
        Some("Hello {{ name }} from {{ team }}"),
    );
    add_template(
        &app,
        "GONE",
        "Gone",
        "file:///nonexistent/template.html",
        None,
    );
    let admin = app.identity.admin_token("ops");
    let cases = [
        (
            body!({"email_id": "HELLO", "to_email": "ada@example.com", "email_args": {"name": "Ada"}}),
            "the template uses team that email_args lacks",
        ),
        (
            body!({"email_id": "NOPE", "to_email": "ada@example.com", "email_args": {}}),
            "unknown email_id \"NOPE\"",
        ),
        (
            body!({"email_id": "HELLO", "to_email": "not-an-address", "email_args": {}}),
            "to_email: invalid e-mail address",
        ),
        (
            body!({"email_id": "HELLO", "to_email": "a@b.co\r\nBcc: x@y.co", "email_args": {}}),
            "to_email: invalid e-mail address",
        ),
        (body!({"to_email": "ada@example.com"}), "email_id: required"),
        (
            body!({"email_id": "HELLO", "to_email": "ada@example.com", "email_args": [1]}),
            "email_args: expected an object",
        ),
        (
            body!({"email_id": "GONE", "to_email": "ada@example.com", "email_args": {}}),
            "the template's text could not be fetched",
        ),
    ];
    for (payload, expected) in cases {
        let response = send(&app, &admin, &payload).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{payload}");
        let answer = json(response).await;
        assert_eq!(answer["verified"], false, "{payload}");
        assert_eq!(answer["status"], 400, "{payload}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expected), "{payload}: {error}");
    }
    assert!(app.outbox.sent().is_empty());

    // Not an admin: 403; no token: 401.
    let user = app.identity.token("ada");
    let payload = body!({"email_id": "HELLO", "to_email": "ada@example.com", "email_args": {"name": "A", "team": "B"}});
    assert_eq!(
        send(&app, &user, &payload).await.status(),
        StatusCode::FORBIDDEN
    );
    let anonymous = app
        .client
        .post(app.url("/mail"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(app.outbox.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_goes_through_a_real_smtp_server_and_its_refusals_are_400() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = TestApp::spawn_with(&[("SMTP_URL", url.as_str())]).await;
    add_template(
        &app,
        "HELLO",
        "Hello there",
        "",
        Some("<p>Hello {{ name }}</p>"),
    );
    let admin = app.identity.admin_token("ops");
    let response = send(
        &app,
        &admin,
        &body!({"email_id": "HELLO", "to_email": "ada@example.com", "email_args": {"name": "Ada"}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let received = smtp.wait_for(1);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["ada@example.com"]);
    assert!(
        received[0].data.contains("Subject: Hello there"),
        "{}",
        received[0].data
    );
    assert!(
        received[0].data.contains("<p>Hello Ada</p>"),
        "{}",
        received[0].data
    );

    // The server refuses the recipient: 400, verified false.
    let response = send(
        &app,
        &admin,
        &body!({"email_id": "HELLO", "to_email": "reject@example.com", "email_args": {"name": "Ada"}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["verified"], false);
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn a_database_outage_is_a_503_and_sends_nothing() {
    let app = TestApp::spawn().await;
    add_template(&app, "WELCOME", "Welcome", "", Some("Hi {{ name }}"));
    let admin = app.identity.admin_token("ops");
    app.db.drop_now();
    let response = send(
        &app,
        &admin,
        &body!({"email_id": "WELCOME", "to_email": "ada@example.com", "email_args": {"name": "Ada"}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(response).await["error"], "database unavailable");
    assert!(app.outbox.sent().is_empty());
}

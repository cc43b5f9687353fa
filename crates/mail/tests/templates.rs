//! Templates whose text lives behind a URL: fetched once per TTL, the copy fetched before
//! used while the URL fails, and a size limit that holds whatever the server sends.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mail::{Address, MailError, MailRequest, Mailer, Outbox, TemplateSource};
use models::{Db, PoolOptions};
use serde_json::{Value, json};
use test_support::{StubServer, TestDatabase};

/// A template server that answers `text` at every path, or 500 while `down`.
fn template_server(text: Value, down: Arc<AtomicBool>) -> StubServer {
    StubServer::start(move |_| {
        if down.load(Ordering::SeqCst) {
            (500, json!({"error": "down"}))
        } else {
            (200, text.clone())
        }
    })
}

fn mailer(db: &TestDatabase, url: &str, ttl: Duration) -> (Mailer, Arc<Outbox>) {
    db.execute(&format!(
        "INSERT INTO sales.email_templates (id, title, url, body)
         VALUES ('WELCOME', 'Welcome', '{url}', NULL)"
    ));
    let outbox = Arc::new(Outbox::default());
    let templates = TemplateSource::new(Db::new(db.url(), PoolOptions::default())).with_ttl(ttl);
    let mailer = Mailer::new(
        templates,
        outbox.clone(),
        Address::parse("noreply@example.com").unwrap(),
    );
    (mailer, outbox)
}

fn welcome(name: &str) -> MailRequest {
    MailRequest::try_from(&json!({
        "email_id": "WELCOME",
        "to_email": "ada@example.com",
        "email_args": {"name": name},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn text_behind_a_url_is_fetched_once_per_ttl() {
    let db = TestDatabase::new();
    let server = template_server(json!("Hello {{ name }}"), Arc::default());
    let url = format!("{}/welcome.html", server.base_url());
    let (mailer, outbox) = mailer(&db, &url, Duration::from_secs(300));
    for name in ["Ada", "Grace", "Edsger"] {
        mailer.send(&welcome(name)).await.unwrap();
    }
    assert_eq!(server.hits(), 1);
    let sent: Vec<String> = outbox.sent().into_iter().map(|m| m.html).collect();
    assert_eq!(
        sent,
        ["\"Hello Ada\"", "\"Hello Grace\"", "\"Hello Edsger\""]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_url_fails_the_copy_fetched_before_is_used() {
    let db = TestDatabase::new();
    let down = Arc::new(AtomicBool::new(false));
    let server = template_server(json!("Hello {{ name }}"), down.clone());
    let url = format!("{}/welcome.html", server.base_url());
    // A zero TTL: every send fetches again.
    let (mailer, outbox) = mailer(&db, &url, Duration::ZERO);
    mailer.send(&welcome("Ada")).await.unwrap();
    down.store(true, Ordering::SeqCst);
    mailer.send(&welcome("Grace")).await.unwrap();
    assert_eq!(server.hits(), 2, "the second send tried the URL");
    assert_eq!(outbox.sent()[1].html, "\"Hello Grace\"");

    // Without a copy, the failure is the answer.
    let fresh = Mailer::new(
        TemplateSource::new(Db::new(db.url(), PoolOptions::default())),
        outbox.clone(),
        Address::parse("noreply@example.com").unwrap(),
    );
    let err = fresh.send(&welcome("Edsger")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::TemplateUnavailable(why) if why.contains("500")),
        "{err:?}"
    );
    assert_eq!(outbox.sent().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_over_a_mebibyte_is_refused() {
    let db = TestDatabase::new();
    let server = template_server(Value::String("x".repeat(2 << 20)), Arc::default());
    let url = format!("{}/huge.html", server.base_url());
    let (mailer, outbox) = mailer(&db, &url, Duration::from_secs(300));
    let err = mailer.send(&welcome("Ada")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::TemplateUnavailable(why) if why.contains("larger than")),
        "{err:?}"
    );
    assert!(outbox.sent().is_empty());

    let dir = test_support::TempDir::new();
    let path = dir.path().join("huge.html");
    std::fs::write(&path, "y".repeat(2 << 20)).unwrap();
    db.execute(&format!(
        "UPDATE sales.email_templates SET url = 'file://{}'",
        path.display()
    ));
    let err = mailer.send(&welcome("Ada")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::TemplateUnavailable(why) if why.contains("larger than")),
        "{err:?}"
    );
}

/// A server that answers 200 and then sends template text forever, in chunks, declaring
/// no length: only a limit on what is read ends the fetch before the client's timeout.
fn endless_server() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n";
                let chunk = format!("10000\r\n{}\r\n", "z".repeat(0x10000));
                let _ = stream.write_all(head.as_bytes());
                while stream.write_all(chunk.as_bytes()).is_ok() {}
            });
        }
    });
    format!("http://{address}/endless.html")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_answer_is_cut_at_the_limit() {
    let db = TestDatabase::new();
    let (mailer, outbox) = mailer(&db, &endless_server(), Duration::from_secs(300));
    let err = mailer.send(&welcome("Ada")).await.unwrap_err();
    // Not the client's 10 s timeout: the read stopped at 1 MiB.
    assert!(
        matches!(&err, MailError::TemplateUnavailable(why) if why.contains("larger than")),
        "{err:?}"
    );
    assert!(outbox.sent().is_empty());
}

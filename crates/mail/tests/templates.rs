//! Templates whose text lives behind a URL: fetched once per TTL, the copy fetched before
//! used while the URL fails, and a size limit that holds whatever the server sends.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mail::{
    Address, FetchError, FetchRules, MailError, MailRequest, Mailer, Outbox, TemplateSource,
};
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

/// The rules outside production: `http://` allowed; files only under `dir`.
fn rules(dir: Option<&std::path::Path>) -> FetchRules {
    FetchRules {
        allow_http: true,
        file_dir: dir.map(std::path::Path::to_path_buf),
    }
}

fn source(db: &TestDatabase, rules: FetchRules) -> TemplateSource {
    TemplateSource::new(Db::new(db.url(), PoolOptions::default()), rules).unwrap()
}

fn mailer(db: &TestDatabase, url: &str, ttl: Duration) -> (Mailer, Arc<Outbox>) {
    mailer_with(db, url, ttl, rules(None))
}

fn mailer_with(
    db: &TestDatabase,
    url: &str,
    ttl: Duration,
    rules: FetchRules,
) -> (Mailer, Arc<Outbox>) {
    db.execute(&format!(
        "INSERT INTO sales.email_templates (id, title, url, body)
         VALUES ('WELCOME', 'Welcome', '{url}', NULL)"
    ));
    let outbox = Arc::new(Outbox::default());
    let templates = source(db, rules).with_ttl(ttl);
    let mailer = Mailer::new(
        templates,
        outbox.clone(),
        Address::parse("noreply@example.com").unwrap(),
    );
    (mailer, outbox)
}

fn welcome(name: &str) -> MailRequest {
    serde_json::from_value(json!({
        "email_id": "WELCOME",
        "to_email": "ada@example.com",
        "email_args": {"name": name},
    }))
    .unwrap()
}

/// The fetch failure behind `err`, as the log tells it.
fn why(err: &MailError) -> String {
    match err {
        MailError::TemplateUnavailable(why) => why.to_string(),
        other => panic!("not a fetch failure: {other:?}"),
    }
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
        source(&db, rules(None)),
        outbox.clone(),
        Address::parse("noreply@example.com").unwrap(),
    );
    let err = fresh.send(&welcome("Edsger")).await.unwrap_err();
    assert!(why(&err).contains("500"), "{err:?}");
    assert_eq!(outbox.sent().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_over_a_mebibyte_is_refused() {
    let db = TestDatabase::new();
    let server = template_server(Value::String("x".repeat(2 << 20)), Arc::default());
    let url = format!("{}/huge.html", server.base_url());
    let dir = test_support::TempDir::new();
    let (mailer, outbox) =
        mailer_with(&db, &url, Duration::from_secs(300), rules(Some(dir.path())));
    let err = mailer.send(&welcome("Ada")).await.unwrap_err();
    assert!(why(&err).contains("larger than"), "{err:?}");
    assert!(outbox.sent().is_empty());

    let path = dir.path().join("huge.html");
    std::fs::write(&path, "y".repeat(2 << 20)).unwrap();
    db.execute(&format!(
        "UPDATE sales.email_templates SET url = 'file://{}'",
        path.display()
    ));
    let err = mailer.send(&welcome("Ada")).await.unwrap_err();
    assert!(why(&err).contains("larger than"), "{err:?}");
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
    assert!(why(&err).contains("larger than"), "{err:?}");
    assert!(outbox.sent().is_empty());
}

/// A server whose every answer redirects to `location`.
fn redirecting_server(location: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let location = location.to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{address}/template.html")
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_to_private_addresses_are_not_followed() {
    let db = TestDatabase::new();
    let target = template_server(json!("Hello {{ name }}"), Arc::default());
    for location in [
        format!("{}/welcome.html", target.base_url()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[::1]:9/".to_owned(),
        "file:///proc/self/environ".to_owned(),
    ] {
        let db_fresh = TestDatabase::new();
        let (mailer, outbox) = mailer(&db_fresh, &redirecting_server(&location), Duration::ZERO);
        let err = mailer.send(&welcome("Ada")).await.unwrap_err();
        let why = why(&err);
        assert!(
            why.contains("not a public address") || why.contains("not allowed"),
            "{location}: {why}"
        );
        // The client reads only that the template could not be fetched.
        assert_eq!(err.to_string(), "the template's text could not be fetched");
        assert!(outbox.sent().is_empty());
    }
    assert_eq!(target.hits(), 0, "the loopback target was never fetched");
    drop(db);
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_read_only_under_the_template_dir() {
    let db = TestDatabase::new();
    let dir = test_support::TempDir::new();
    let inside = dir.path().join("welcome.html");
    std::fs::write(&inside, "Hi {{ name }}").unwrap();
    let (mailer, outbox) = mailer_with(
        &db,
        &format!("file://{}", inside.display()),
        Duration::ZERO,
        rules(Some(dir.path())),
    );
    mailer.send(&welcome("Ada")).await.unwrap();
    assert_eq!(outbox.sent()[0].html, "Hi Ada");

    for outside in [
        "file:///proc/self/environ".to_owned(),
        format!("file://{}/../../../etc/passwd", dir.path().display()),
    ] {
        db.execute(&format!(
            "UPDATE sales.email_templates SET url = '{outside}'"
        ));
        let err = mailer.send(&welcome("Ada")).await.unwrap_err();
        assert!(
            matches!(
                &err,
                MailError::TemplateUnavailable(FetchError::OutsideDir(_) | FetchError::Read { .. })
            ),
            "{outside}: {err:?}"
        );
        assert!(!err.to_string().contains("environ") && !err.to_string().contains("passwd"));
    }

    // Without MAIL_TEMPLATE_DIR, no file is read; https only where http is not allowed.
    let strict = Mailer::new(
        source(&db, FetchRules::default()),
        outbox.clone(),
        Address::parse("noreply@example.com").unwrap(),
    );
    db.execute(&format!(
        "UPDATE sales.email_templates SET url = 'file://{}'",
        inside.display()
    ));
    let err = strict.send(&welcome("Ada")).await.unwrap_err();
    assert!(
        matches!(
            &err,
            MailError::TemplateUnavailable(FetchError::NoTemplateDir)
        ),
        "{err:?}"
    );
    db.execute("UPDATE sales.email_templates SET url = 'http://127.0.0.1:9/x.html'");
    let err = strict.send(&welcome("Ada")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::TemplateUnavailable(FetchError::Scheme(_))),
        "{err:?}"
    );
    assert_eq!(outbox.sent().len(), 1);
}

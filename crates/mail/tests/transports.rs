//! The transports against real peers: SMTP through aiosmtpd, SendGrid through a local
//! stand-in of its v3 API.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Mutex};

use mail::{Address, Message, SendError, SendGrid, SmtpTransport, TlsMode, Transport};
use secrecy::SecretString;
use serde_json::{Value, json};
use test_support::{SmtpServer, StubRequest, StubServer};

fn message(to: &str) -> Message {
    Message {
        from: Address::parse("noreply@fractal.co").unwrap(),
        to: Address::parse(to).unwrap(),
        subject: "Welcome aboard".to_owned(),
        html: "<p>Hello &lt;b&gt;Ada&lt;/b&gt;</p>".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_delivers_to_a_real_server() {
    let server = SmtpServer::start();
    let smtp = SmtpTransport::from_url(&server.url()).unwrap();
    assert_eq!(smtp.tls(), TlsMode::None);
    smtp.send(&message("ada@example.com")).await.unwrap();
    let received = server.wait_for(1);
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.from, "noreply@fractal.co");
    assert_eq!(mail.to, ["ada@example.com"]);
    assert!(
        mail.data.contains("Subject: Welcome aboard"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("Content-Type: text/html"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("Hello &lt;b&gt;Ada&lt;/b&gt;"),
        "{}",
        mail.data
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_refusals_and_outages_are_told_apart() {
    let server = SmtpServer::start();
    let smtp = SmtpTransport::from_url(&server.url()).unwrap();
    let refused = smtp
        .send(&message("reject-me@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(refused, SendError::Rejected(_)), "{refused:?}");
    assert!(server.received().is_empty());

    // Nothing listens on port 9: unavailable, quickly.
    let nowhere = SmtpTransport::from_url("smtp://127.0.0.1:9").unwrap();
    let down = nowhere.send(&message("ada@example.com")).await.unwrap_err();
    assert!(matches!(down, SendError::Unavailable(_)), "{down:?}");
}

#[test]
fn smtp_urls_choose_the_tls_mode() {
    for (url, mode) in [
        ("smtp://127.0.0.1:2525", TlsMode::None),
        (
            "smtp://mail.example.com:587?tls=required",
            TlsMode::StartTls,
        ),
        (
            "smtp://u:p@mail.example.com:587?tls=opportunistic",
            TlsMode::Opportunistic,
        ),
        ("smtps://u:p@mail.example.com", TlsMode::Implicit),
    ] {
        assert_eq!(SmtpTransport::from_url(url).unwrap().tls(), mode, "{url}");
    }
    for bad in ["http://x", "smtp://x?tls=maybe", "not a url"] {
        assert!(SmtpTransport::from_url(bad).is_err(), "{bad}");
    }
    // The URL's password never shows in Debug output.
    let shown = format!(
        "{:?}",
        SmtpTransport::from_url("smtps://u:hunter2@x").unwrap()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

fn sendgrid_stub(requests: Arc<Mutex<Vec<StubRequest>>>) -> StubServer {
    StubServer::start(move |request| {
        requests.lock().unwrap().push(request.clone());
        if request.headers.get("authorization").map(String::as_str) != Some("Bearer SG.test") {
            return (
                401,
                json!({"errors": [{"message": "authorization required"}]}),
            );
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let to = body["personalizations"][0]["to"][0]["email"]
            .as_str()
            .unwrap_or_default();
        if to.starts_with("reject") {
            return (
                400,
                json!({"errors": [{"message": "Does not contain a valid address."}]}),
            );
        }
        if to.starts_with("down") {
            return (503, json!({"errors": [{"message": "try later"}]}));
        }
        (202, Value::Null)
    })
}

#[tokio::test]
async fn sendgrid_posts_its_v3_mail_body() {
    let requests = Arc::default();
    let stub = sendgrid_stub(Arc::clone(&requests));
    let sendgrid = SendGrid::new(
        url::Url::parse(stub.base_url()).unwrap(),
        SecretString::from("SG.test".to_owned()),
    )
    .unwrap();
    sendgrid.send(&message("ada@example.com")).await.unwrap();
    let sent = requests.lock().unwrap()[0].clone();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v3/mail/send")
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body,
        json!({
            "personalizations": [{"to": [{"email": "ada@example.com"}]}],
            "from": {"email": "noreply@fractal.co"},
            "subject": "Welcome aboard",
            "content": [{"type": "text/html", "value": "<p>Hello &lt;b&gt;Ada&lt;/b&gt;</p>"}],
        })
    );

    let refused = sendgrid
        .send(&message("reject@example.com"))
        .await
        .unwrap_err();
    let SendError::Rejected(cause) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(
        cause.to_string(),
        "the mail API answered 400: Does not contain a valid address."
    );
    let down = sendgrid
        .send(&message("down@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(down, SendError::Unavailable(_)), "{down:?}");

    let wrong_key = SendGrid::new(
        url::Url::parse(stub.base_url()).unwrap(),
        SecretString::from("SG.wrong".to_owned()),
    )
    .unwrap();
    let unauthorized = wrong_key
        .send(&message("ada@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(unauthorized, SendError::Unavailable(_)),
        "{unauthorized:?}"
    );
}

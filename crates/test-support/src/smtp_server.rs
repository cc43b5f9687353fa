//! A real SMTP server (aiosmtpd) on a free port of 127.0.0.1, for the mail tests. It
//! accepts every recipient except those starting with `reject`, which get 550, and
//! keeps what it receives. It stops when the test process exits (see `crate::python`).

use std::process::ChildStdin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const WRAPPER: &str = r#"
import json, sys
from aiosmtpd.controller import Controller

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }), flush=True)
        return "250 Message accepted for delivery"

controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// One mail the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent.
    pub data: String,
}

pub struct SmtpServer {
    port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
    _stdin: ChildStdin,
}

impl SmtpServer {
    pub fn start() -> Self {
        let server = crate::python::start("aiosmtpd", "aiosmtpd", WRAPPER, &[])
            .unwrap_or_else(|err| panic!("{err}"));
        let received: Arc<Mutex<Vec<ReceivedMail>>> = Arc::default();
        let sink = received.clone();
        let lines = server.lines;
        std::thread::spawn(move || {
            for line in lines {
                let Ok(mail) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                sink.lock().unwrap().push(ReceivedMail {
                    from: mail["from"].as_str().unwrap_or_default().to_owned(),
                    to: mail["to"]
                        .as_array()
                        .map(|to| {
                            to.iter()
                                .filter_map(|a| a.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    data: mail["data"].as_str().unwrap_or_default().to_owned(),
                });
            }
        });
        Self {
            port: server.port,
            received,
            _stdin: server.stdin,
        }
    }

    /// `smtp://127.0.0.1:<port>` (no TLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `count` mails arrived, and returns them.
    pub fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() >= deadline {
                return received;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

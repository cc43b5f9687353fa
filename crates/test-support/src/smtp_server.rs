//! A real SMTP server (aiosmtpd) on a free port of 127.0.0.1, for the mail tests. It
//! accepts every recipient except those starting with `reject`, which get 550, and
//! keeps what it receives. It stops when the test process exits (see [`crate::Moto`]).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{ChildStdin, Command, Stdio};
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
        let python = crate::python();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(WRAPPER)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {python} for aiosmtpd: {err}"));
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "aiosmtpd did not start with {python}: run the tests through scripts/test.sh, \
             which installs it, or `pip install aiosmtpd` and set TEST_PYTHON"
        );
        let received: Arc<Mutex<Vec<ReceivedMail>>> = Arc::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
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
            let _ = child.wait();
        });
        Self {
            port,
            received,
            _stdin: stdin,
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

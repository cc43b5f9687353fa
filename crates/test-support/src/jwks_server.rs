use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

struct State {
    status: u16,
    body: Value,
}

/// A JWKS endpoint on 127.0.0.1, standing in for the identity provider. It counts the
/// fetches it answers, and can change its keys or fail on demand.
#[derive(Clone)]
pub struct JwksServer {
    url: String,
    state: Arc<Mutex<State>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub fn start(keys: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the JWKS server");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let state = Arc::new(Mutex::new(State {
            status: 200,
            body: keys,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let (thread_state, thread_hits) = (state.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head; the body (none for GET) is ignored.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                thread_hits.fetch_add(1, Ordering::SeqCst);
                let (status, body) = {
                    let state = thread_state.lock().unwrap();
                    (state.status, state.body.to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, state, hits }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests it has answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Serves `keys` (a whole JWKS document) from now on.
    pub fn set_keys(&self, keys: Value) {
        self.state.lock().unwrap().body = keys;
    }

    /// Answers every request with `status` from now on (500 for an outage).
    pub fn set_status(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }
}

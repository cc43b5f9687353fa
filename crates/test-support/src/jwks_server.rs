use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::StubServer;

/// A JWKS endpoint standing in for the identity provider. It can change its keys or fail
/// on demand.
#[derive(Clone)]
pub struct JwksServer {
    url: String,
    answer: Arc<Mutex<(u16, Value)>>,
    server: StubServer,
}

impl JwksServer {
    pub fn start(keys: Value) -> Self {
        let answer = Arc::new(Mutex::new((200, keys)));
        let served = answer.clone();
        let server = StubServer::start(move |_| served.lock().unwrap().clone());
        Self {
            url: format!("{}/.well-known/jwks.json", server.base_url()),
            answer,
            server,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests it has answered.
    pub fn hits(&self) -> usize {
        self.server.hits()
    }

    /// Serves `keys` (a whole JWKS document) from now on.
    pub fn set_keys(&self, keys: Value) {
        self.answer.lock().unwrap().1 = keys;
    }

    /// Answers every request with `status` from now on (500 for an outage).
    pub fn set_status(&self, status: u16) {
        self.answer.lock().unwrap().0 = status;
    }
}

//! The application under test: the real server on port 0, a database of its own, and a
//! local identity provider, driven over HTTP.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use api::Lifecycle;
use test_support::{TEST_ISSUER, TempDir, TestDatabase, TestIdentity};
use webserver::{Application, Settings, Stopper, Vars};

pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub identity: TestIdentity,
    pub client: reqwest::Client,
    pub lifecycle: Lifecycle,
    pub stopper: Stopper,
    _data_dir: TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the server with the test defaults overridden by `overrides`.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let db = TestDatabase::new();
        let identity = TestIdentity::new();
        let data_dir = TempDir::new();
        let data_dir_path = data_dir.path().display().to_string();
        let mut vars: Vec<(&str, &str)> = vec![
            ("ENVIRONMENT", "testing"),
            ("DATABASE_URL", db.url()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("JWKS_URL", identity.jwks.url()),
            ("JWT_ISSUER", TEST_ISSUER),
            ("HTTP_WORKERS", "2"),
            ("LOCAL_DATA_DIR", &data_dir_path),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "2"),
        ];
        vars.extend_from_slice(overrides);
        let settings = Settings::from_vars(&vars.into_iter().collect::<Vars>()).unwrap();
        let app = Application::build(&settings).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let lifecycle = app.lifecycle();
        let stopper = app.stopper();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            db,
            identity,
            client: reqwest::Client::new(),
            lifecycle,
            stopper,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Adds a region's image row, as an operator would.
    pub fn add_region(
        &self,
        region: &str,
        commit_hash: &str,
        ami: &str,
        active: bool,
        enabled: bool,
    ) {
        self.db.execute(&format!(
            "INSERT INTO hardware.region_to_ami
                 (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
             VALUES ('{region}', '{commit_hash}', '{ami}', {active}, {enabled})"
        ));
    }
}

/// The JSON body of an answer, asserting that it is JSON.
pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "expected JSON, got {content_type:?}: {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("{err}: {body}"))
}

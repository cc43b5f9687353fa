//! What the benchmark binaries share: the real server, started in-process on a scratch
//! database, and latency percentiles; the fleet simulator ([`sim`]) and the fleet model
//! ([`model`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops loudly at the first thing that goes wrong"
)]

use std::time::Duration;

pub mod model;
pub mod sim;

use test_support::{TempDir, TestDatabase};
use webserver::{Application, Settings, Stopper, Vars};

/// The server under measurement, in the `local` environment, with the rate limit off.
pub struct BenchServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub settings: Settings,
    pub data_dir: TempDir,
    stopper: Stopper,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BenchServer {
    /// The server on `db`; with `autoscale`, every assignment is followed by a capacity
    /// check, as in production.
    pub async fn start(db: &TestDatabase, autoscale: bool) -> Self {
        Self::start_placing(db, autoscale, "packed").await
    }

    /// The server on `db` with `PLACEMENT=placement` (`packed` or `lifetime`).
    pub async fn start_placing(db: &TestDatabase, autoscale: bool, placement: &str) -> Self {
        let data_dir = TempDir::new();
        let data_dir_path = data_dir.path().display().to_string();
        let settings = Settings::from_vars(
            &[
                ("ENVIRONMENT", "local"),
                ("DATABASE_URL", db.url()),
                ("BIND_ADDR", "127.0.0.1:0"),
                ("LOCAL_DATA_DIR", data_dir_path.as_str()),
                ("RATE_LIMIT_PER_MINUTE", "0"),
                ("DATABASE_POOL_SIZE", "32"),
                // By default the assignment path alone: the seeded fleet is not resized.
                ("AUTOSCALE", if autoscale { "true" } else { "false" }),
                ("PLACEMENT", placement),
            ]
            .into_iter()
            .collect::<Vars>(),
        )
        .unwrap();
        let app = Application::build(&settings).await.unwrap();
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let stopper = app.stopper();
        let running = tokio::spawn(app.run_until_stopped());
        Self {
            base_url,
            settings,
            data_dir,
            stopper,
            running,
        }
    }

    /// A token with the admin scope, signed with the server's development key.
    pub fn admin_token(&self) -> String {
        admin_token(&self.settings, self.data_dir.path())
    }

    pub async fn stop(self) {
        self.stopper.stop().await;
        let _ = self.running.await;
    }
}

/// A token with the admin scope for a server of `settings` whose development key is in
/// `data_dir`, valid for a day.
pub fn admin_token(settings: &Settings, data_dir: &std::path::Path) -> String {
    let key = auth::load_or_create_dev_key(data_dir).unwrap();
    key.mint(&auth::NewToken {
        subject: "bench".to_owned(),
        audience: settings.auth.audience.clone(),
        issuer: None,
        lifetime: Duration::from_secs(86_400),
        scopes: vec![auth::ADMIN_SCOPE.to_owned()],
        extra: serde_json::Map::new(),
    })
    .unwrap()
}

/// Runs a benchmark's `future` to completion on a multi-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The `p` quantile (0 to 1) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}

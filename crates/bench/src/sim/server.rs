//! The server under simulation: the real application on a scratch database, with the
//! local cloud provider (kept at hand to see what it runs) and every interval and
//! timeout divided by the speed-up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cloud_interface::CloudProvider;
use local_cloud::{LocalOptions, LocalProvider};
use models::{Region, UnixMillis, UserId};
use test_support::{TempDir, TestDatabase};
use webserver::{Application, Overrides, Settings, Stopper, Vars};

use super::{Arrival, Past, Placement, Policy, SimOptions};

/// The commit hash the simulated clients and images share.
pub const COMMIT_HASH: &str = "sim";

/// Timeouts that judge hosts silent are not shortened below this much wall time: a
/// loaded machine must not take its own delays for dead hosts.
const LEAST_TIMEOUT: Duration = Duration::from_secs(2);

/// Capacity checks after assignments fold at least this much wall time apart.
const LEAST_CHECK_INTERVAL: Duration = Duration::from_millis(25);

pub struct SimServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// An admin token: assigns for any user, no payment check.
    pub token: String,
    pub provider: Arc<LocalProvider>,
    pub host_port: u16,
    /// The regions of the trace.
    regions: Vec<Region>,
    db: TestDatabase,
    _data_dir: TempDir,
    stopper: Stopper,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn settings(
    db: &TestDatabase,
    data_dir: &TempDir,
    policy: Policy,
    options: &SimOptions,
) -> Settings {
    let data_dir_path = data_dir.path().display().to_string();
    let desired = options.desired_free.to_string();
    let (min, max) = (
        options.adaptive_min.to_string(),
        options.adaptive_max.to_string(),
    );
    let sigmas = options.safety_sigmas.to_string();
    let mut settings = Settings::from_vars(
        &[
            ("ENVIRONMENT", "local"),
            ("CLOUD_PROVIDER", "local"),
            ("DATABASE_URL", db.url()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("LOCAL_DATA_DIR", data_dir_path.as_str()),
            ("RATE_LIMIT_PER_MINUTE", "0"),
            ("DATABASE_POOL_SIZE", "16"),
            ("SCALING_POLICY", policy.name()),
            ("DESIRED_FREE_MANDELBOXES", desired.as_str()),
            ("DESIRED_FREE_MANDELBOXES_MIN", min.as_str()),
            ("DESIRED_FREE_MANDELBOXES_MAX", max.as_str()),
            ("ADAPTIVE_SAFETY_SIGMAS", sigmas.as_str()),
            (
                "PLACEMENT",
                match options.placement {
                    Placement::Lifetime => "lifetime",
                    Placement::Packed | Placement::KnownLengths | Placement::KnownHabits => {
                        "packed"
                    }
                },
            ),
        ]
        .into_iter()
        .collect::<Vars>(),
    )
    .unwrap();
    let wall = |secs: u64| options.wall(Duration::from_secs(secs));
    let scaling = &mut settings.scaling;
    scaling.scale_down_interval = wall(300);
    scaling.lifecycle_interval = wall(30);
    scaling.heartbeat_timeout = wall(120).max(LEAST_TIMEOUT);
    scaling.pre_connection_timeout = wall(900).max(LEAST_TIMEOUT);
    scaling.lingering_timeout = wall(600).max(LEAST_TIMEOUT);
    scaling.allocation_timeout = wall(90).max(LEAST_TIMEOUT);
    scaling.drain_max_age = wall(12 * 3600);
    scaling.orphan_grace = wall(600).max(LEAST_TIMEOUT);
    scaling.check_interval = wall(1).max(LEAST_CHECK_INTERVAL);
    scaling.refusal_counts_for = wall(60);
    scaling.prediction_interval = wall(60).max(Duration::from_millis(50));
    scaling.learning = scaling::Learning {
        short_span: wall(300),
        long_span: wall(1800),
        default_boot_time: wall(120),
    };
    settings.http.shutdown_timeout = Duration::from_secs(1);
    settings
}

impl SimServer {
    /// The server, with every region of `arrivals` enabled and its image active, and
    /// `history` in the database (ended a second apart, the last one now; its lengths in
    /// wall time, as the server will record the sessions of the replay).
    pub async fn start(
        arrivals: &[Arrival],
        history: &[Past],
        policy: Policy,
        options: &SimOptions,
    ) -> Self {
        let db = TestDatabase::new();
        let now = UnixMillis::now().as_millis();
        let count = i64::try_from(history.len()).unwrap_or(i64::MAX);
        let past: Vec<_> = history
            .iter()
            .zip(0..)
            .map(|(p, n)| {
                (
                    UserId::parse(&p.user).expect("history users are valid user ids"),
                    Region::parse(&p.region).expect("history regions are valid regions"),
                    // The server lives in wall time: a session of the trace lasts
                    // `speed` times less, and so did those it remembers.
                    p.session_secs / options.speed,
                    UnixMillis::from_millis(now - 1000 * (count - n)),
                )
            })
            .collect();
        let mut conn = db.connect();
        for chunk in past.chunks(10_000) {
            models::history::import(&mut conn, chunk).unwrap();
        }
        drop(conn);
        let regions: BTreeSet<&str> = arrivals.iter().map(|a| a.region.as_str()).collect();
        for region in &regions {
            db.execute(&format!(
                "INSERT INTO hardware.region_to_ami
                     (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
                 VALUES ('{region}', '{COMMIT_HASH}', 'ami-sim-{region}', true, true)"
            ));
        }
        let data_dir = TempDir::new();
        let settings = settings(&db, &data_dir, policy, options);
        let host_port = settings.scaling.host_service_port;
        let provider = Arc::new(LocalProvider::new(LocalOptions {
            host_port,
            boot_delay: options.wall(options.boot),
            heartbeat_interval: options
                .wall(Duration::from_secs(10))
                .max(Duration::from_millis(50)),
            mandelbox_capacity: options.capacity,
            ..LocalOptions::default()
        }));
        let overrides = Overrides {
            cloud: Some(provider.clone() as Arc<dyn CloudProvider>),
            ..Overrides::default()
        };
        let app = Application::build_with(&settings, overrides).await.unwrap();
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let stopper = app.stopper();
        let running = tokio::spawn(app.run_until_stopped());
        let token = crate::admin_token(&settings, data_dir.path());
        Self {
            base_url,
            token,
            provider,
            host_port,
            regions: regions
                .into_iter()
                .map(|r| Region::parse(r).expect("trace regions are valid regions"))
                .collect(),
            db,
            _data_dir: data_dir,
            stopper,
            running,
        }
    }

    /// The rows of `table` now.
    pub fn count(&self, table: &str) -> i64 {
        self.db
            .number(&format!("SELECT count(*) AS n FROM {table}"))
    }

    /// The boot the adaptive buffer learned (`models::learning::boot_time`, the median
    /// of the latest boots), in wall time: the longest of the trace's regions, `None`
    /// before any booted.
    pub fn learned_boot(&self) -> Option<Duration> {
        let mut conn = self.db.connect();
        self.regions
            .iter()
            .filter_map(|region| models::learning::boot_time(&mut conn, region).unwrap())
            .max()
    }

    pub async fn stop(self) {
        self.provider.terminate_all();
        self.stopper.stop().await;
        let _ = self.running.await;
    }
}

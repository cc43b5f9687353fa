//! The system under test: `webserver serve` processes on a PostgreSQL of their own, an
//! identity provider of their own, and a seeded fleet.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use test_support::{OwnPostgres, TEST_ISSUER, TempDir, TestIdentity};

pub const REGION: &str = "us-east-1";
pub const COMMIT: &str = "chaos-commit";
pub const AMI: &str = "ami-chaos";

/// The database, the identity provider and what every server shares.
pub struct Cluster {
    pub binary: PathBuf,
    pub postgres: OwnPostgres,
    /// The harness's own way in: straight to PostgreSQL, as its superuser.
    pub database_url: String,
    /// What servers are given as `DATABASE_URL` (by default the same).
    pub server_database_url: String,
    pub identity: TestIdentity,
    data: TempDir,
    /// Settings every server gets, besides the cluster's own.
    pub vars: Vec<(String, String)>,
}

impl Cluster {
    /// A fresh PostgreSQL with one database, migrated by the first server started.
    pub fn new(binary: PathBuf, vars: &[(&str, &str)]) -> Self {
        let postgres = OwnPostgres::start();
        let database_url = postgres.create_database("chaos");
        Self {
            binary,
            server_database_url: database_url.clone(),
            database_url,
            postgres,
            identity: TestIdentity::new(),
            data: TempDir::new(),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Starts a server, migrating the database first if needed.
    pub fn start_server(&self) -> Server {
        Server::start(self)
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.database_url).unwrap_or_else(|err| panic!("connect: {err}"))
    }

    pub fn execute(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        self.connect()
            .batch_execute(sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// The single number a query answers, as a column named `n`.
    pub fn number(&self, sql: &str) -> i64 {
        test_support::number(&mut self.connect(), sql)
    }

    /// The region with its active image, and `instances` ACTIVE instances of `capacity`.
    pub fn seed(&self, instances: u32, capacity: i64) {
        self.execute(&format!(
            "INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
             VALUES ('{REGION}', '{COMMIT}', '{AMI}', true) ON CONFLICT DO NOTHING;
             INSERT INTO hardware.instance_info
                 (instance_name, cloud_provider_id, aws_ami_id, location, status, commit_hash,
                  aws_instance_type, mandelbox_capacity, last_updated_utc_unix_ms, ip)
             SELECT 'chaos-' || n, 'none-' || n, '{AMI}', '{REGION}', 'ACTIVE', '{COMMIT}',
                    'g4dn.xlarge', {capacity},
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                    '10.0.' || (n / 256) || '.' || (n % 256)
             FROM generate_series(1, {instances}) AS n"
        ));
    }

    /// An admin token: admins pass the payment gate.
    pub fn admin_token(&self, user: &str) -> String {
        self.identity.admin_token(user)
    }
}

/// A `webserver serve` process, with its log.
pub struct Server {
    child: Child,
    pub address: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(cluster: &Cluster) -> Self {
        let mut command = Command::new(&cluster.binary);
        command
            .arg("serve")
            .arg("--migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("ENVIRONMENT", "testing")
            .env("DATABASE_URL", &cluster.server_database_url)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("JWKS_URL", cluster.identity.jwks.url())
            .env("JWT_ISSUER", TEST_ISSUER)
            .env("LOCAL_DATA_DIR", cluster.data.path())
            .env("RATE_LIMIT_PER_MINUTE", "0")
            .env("AUTOSCALE", "false")
            .env("DATABASE_CONNECT_TIMEOUT_SECS", "1")
            .env("HTTP_WORKERS", "2")
            .envs(cluster.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("{}: {err}", cluster.binary.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(port) = port_of(&line) {
                        let _ = port_tx.send(port);
                    }
                    let mut log = log
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        match port_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => Self {
                child,
                address: format!("http://127.0.0.1:{port}"),
                log,
            },
            Err(_) => {
                let _ = child.kill();
                let log = log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                panic!("the server did not start:\n{log}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its resident memory, in kB.
    pub fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// SIGKILL: no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The port in the server's "listening" line.
fn port_of(line: &str) -> Option<u16> {
    if !line.contains(" listening ") {
        return None;
    }
    let rest = &line[line.find("port=")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

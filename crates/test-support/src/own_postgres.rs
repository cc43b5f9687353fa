use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::TempDir;

/// A PostgreSQL server of its own (`initdb` in a temporary directory, its own port), for
/// tests that stop or restart the database: never the server other tests share while
/// they run in parallel. Stopped and removed when dropped.
pub struct OwnPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
}

/// The newest installed PostgreSQL's programs.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql (scripts/test.sh installs it)")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("bin/initdb").exists())
        .collect();
    versions.sort_by_key(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("an installed PostgreSQL").join("bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl OwnPostgres {
    /// Creates and starts the server (a few seconds).
    pub fn start() -> Self {
        let server = Self::empty();
        server.run(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
            ],
        );
        server.ctl(&["start", "-w", "-t", "30"]);
        server.wait_ready(Duration::from_secs(30));
        server
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`, asynchronous replication),
    /// started on a port of its own; it answers read-only queries until promoted.
    pub fn standby_of(primary: &OwnPostgres) -> Self {
        let server = Self::empty();
        server.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &server.data().display().to_string(),
                "-R",
                "-X",
                "stream",
                // At once, not spread over minutes.
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        server.ctl(&["start", "-w", "-t", "30"]);
        server.wait_ready(Duration::from_secs(30));
        server
    }

    /// A directory and a port, nothing started.
    fn empty() -> Self {
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = Self {
            dir,
            bin: bin_dir(),
            port,
        };
        if is_root() {
            // PostgreSQL refuses to run as root: its files belong to its own user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data directory");
        }
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` of the installed PostgreSQL, run as its own user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("{program}: {err}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn ctl(&self, action: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        let data = self.data().display().to_string();
        let log = self.dir.path().join("log").display().to_string();
        let mut args = vec![
            "-D",
            data.as_str(),
            "-o",
            options.as_str(),
            "-l",
            log.as_str(),
        ];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args);
    }

    fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while PgConnection::establish(&self.admin_url()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the own PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` database, as its superuser (trust authentication on loopback).
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The single number a query answers, as a column named `n`, asked of the `postgres`
    /// database.
    pub fn number(&self, sql: &str) -> i64 {
        let mut admin = PgConnection::establish(&self.admin_url()).expect("connect");
        crate::number(&mut admin, sql)
    }

    /// A new database on this server.
    pub fn create_database(&self, name: &str) -> String {
        let mut admin = PgConnection::establish(&self.admin_url()).expect("connect");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create a database");
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// Stops the server (fast shutdown: connections are ended).
    pub fn stop(&self) {
        self.ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts it again after [`OwnPostgres::stop`].
    pub fn resume(&self) {
        self.ctl(&["start", "-w", "-t", "30"]);
        self.wait_ready(Duration::from_secs(30));
    }

    /// Restarts it, as `pg_ctlcluster … restart` does.
    pub fn restart(&self) {
        self.restart_with("fast");
    }

    /// Restarts it with a shutdown mode of `pg_ctl`: `smart`, `fast` or `immediate`
    /// (no checkpoint: the start recovers from the write-ahead log).
    pub fn restart_with(&self, mode: &str) {
        self.ctl(&["restart", "-m", mode, "-w", "-t", "60"]);
        self.wait_ready(Duration::from_secs(60));
    }

    /// Stops it with a shutdown mode of `pg_ctl`.
    pub fn stop_with(&self, mode: &str) {
        self.ctl(&["stop", "-m", mode, "-w"]);
    }

    /// Promotes a standby to a primary, and waits until it takes writes.
    pub fn promote(&self) {
        self.ctl(&["promote", "-w", "-t", "60"]);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.as_str(), "stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

//! Running the `webserver` binary as an operator would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::TempDir;

pub fn webserver(dir: &TempDir, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webserver"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        // `serve` needs an explicit environment; tests that check so remove it.
        .env("ENVIRONMENT", "local")
        .current_dir(dir.path())
        .envs(vars.iter().copied());
    command
}

pub fn run(dir: &TempDir, vars: &[(&str, &str)], args: &[&str]) -> Output {
    webserver(dir, vars).args(args).output().unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `webserver serve` process, with its log collected.
pub struct Server {
    pub child: Child,
    log: Arc<Mutex<String>>,
    pub address: String,
}

impl Server {
    pub fn start(dir: &TempDir, vars: &[(&str, &str)], args: &[&str]) -> Self {
        let mut child = webserver(dir, vars)
            .arg("serve")
            .args(args)
            .env("BIND_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let thread_log = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(port) = port_of(&line) {
                    let _ = port_tx.send(port);
                }
                let mut log = thread_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match port_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => Self {
                child,
                log,
                address: format!("http://127.0.0.1:{port}"),
            },
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not start:\n{}", log.lock().unwrap());
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(20));
        // Give the reader thread a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in the server's "listening" line, text or JSON.
fn port_of(line: &str) -> Option<u16> {
    if let Ok(value) = serde_json::from_str::<Value>(line) {
        if value["message"] != "listening" {
            return None;
        }
        return value["port"]
            .as_u64()
            .and_then(|port| u16::try_from(port).ok());
    }
    if !line.contains(" listening ") {
        return None;
    }
    let rest = &line[line.find("port=")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

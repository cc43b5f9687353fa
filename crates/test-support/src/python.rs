//! The Python test tools (moto, aiosmtpd) run as local servers: a wrapper script gets a
//! free port, prints `ready` once it listens, and stops when its standard input closes,
//! which happens when the test process exits, however it exits.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// The Python interpreter that has the test tools: `TEST_PYTHON`, as `scripts/test.sh`
/// sets it, else `python3`.
pub(crate) fn interpreter() -> String {
    std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A running wrapper.
pub(crate) struct PythonServer {
    pub port: u16,
    /// What it printed after `ready`, line by line.
    pub lines: Receiver<String>,
    /// Closing it stops the server.
    pub stdin: ChildStdin,
}

/// Runs `wrapper` with the port and `args`; `tool` and `install` name it in the error
/// when it does not come up within 60 s.
pub(crate) fn start(
    tool: &str,
    install: &str,
    wrapper: &str,
    args: &[&str],
) -> Result<PythonServer, String> {
    let python = interpreter();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|err| format!("no free port for {tool}: {err}"))?
        .port();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(wrapper)
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run {python} for {tool}: {err}"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tell, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tell.send(line).is_err() {
                break;
            }
        }
    });
    match lines.recv_timeout(Duration::from_secs(60)) {
        Ok(line) if line.trim() == "ready" => Ok(PythonServer { port, lines, stdin }),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "{tool} did not start with {python}. Run the tests through scripts/test.sh, \
                 which installs it, or `pip install {install}` and set TEST_PYTHON to that \
                 interpreter"
            ))
        }
    }
}

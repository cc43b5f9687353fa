//! moto's server, the local AWS emulator the AWS tests run against: one per test
//! process, on a free port of 127.0.0.1, started on first use.
//!
//! It runs under a small Python wrapper that stops it when its standard input closes,
//! which happens when the test process exits, however it exits. The interpreter is
//! `TEST_PYTHON` (set by `scripts/test.sh` to its virtualenv), else `python3`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The access key the tests sign with; moto accepts any.
pub const MOTO_ACCESS_KEY_ID: &str = "testing";
pub const MOTO_SECRET_ACCESS_KEY: &str = "testing";
/// The instance profile the tests launch with; the wrapper creates it in moto's IAM.
pub const MOTO_INSTANCE_PROFILE: &str = "auto_scaling_instance_profile";

const WRAPPER: &str = r#"
import sys
from moto.server import ThreadedMotoServer
import boto3

port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
iam = boto3.client(
    "iam",
    endpoint_url=f"http://127.0.0.1:{port}",
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
for profile in sys.argv[2:]:
    iam.create_instance_profile(InstanceProfileName=profile)
print("ready", flush=True)
sys.stdin.read()
server.stop()
"#;

/// A running moto server.
pub struct Moto {
    endpoint: String,
    /// Closing it (at process exit) stops the server.
    _stdin: Mutex<ChildStdin>,
}

impl Moto {
    /// The server of this test process, started on first use. Panics with what to do
    /// when moto is not installed.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| {
            let mut last = String::new();
            for _ in 0..3 {
                match Self::start() {
                    Ok(moto) => return moto,
                    Err(err) => last = err,
                }
            }
            panic!("{last}")
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn start() -> Result<Self, String> {
        let python = crate::python();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|err| format!("no free port for moto: {err}"))?
            .port();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(WRAPPER)
            .arg(port.to_string())
            .arg(MOTO_INSTANCE_PROFILE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run {python} for moto: {err}"))?;
        let stdin = child.stdin.take().ok_or("moto: no stdin")?;
        let stdout = child.stdout.take().ok_or("moto: no stdout")?;
        let (tell, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tell.send(line);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        match ready.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.trim() == "ready" => Ok(Self {
                endpoint: format!("http://127.0.0.1:{port}"),
                _stdin: Mutex::new(stdin),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "moto's server did not start with {python}. Run the tests through \
                     scripts/test.sh, which installs it, or `pip install 'moto[server]'` \
                     and set TEST_PYTHON to that interpreter"
                ))
            }
        }
    }
}

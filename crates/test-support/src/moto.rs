//! moto's server, the local AWS emulator the AWS tests run against: one per test
//! process, on a free port of 127.0.0.1, started on first use.
//!
//! It runs under a small Python wrapper that stops it when the test process exits (see
//! `crate::python`).

use std::process::ChildStdin;
use std::sync::{Mutex, OnceLock};

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

    /// An EC2 query-API call asked of moto directly (unsigned; moto reads the region from
    /// the credential scope), for what a test must see or set up behind the code under
    /// test: its XML answer.
    pub async fn ec2_query(&self, region: &str, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.endpoint).expect("moto's endpoint is a URL");
        url.query_pairs_mut()
            .extend_pairs(params)
            .append_pair("Version", "2016-11-15");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={MOTO_ACCESS_KEY_ID}/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
        let answer = reqwest::Client::new()
            .get(url)
            .header("Authorization", auth)
            .send()
            .await
            .expect("moto answers");
        answer.text().await.expect("moto's answer is text")
    }

    fn start() -> Result<Self, String> {
        let server = crate::python::start(
            "moto's server",
            "'moto[server]'",
            WRAPPER,
            &[MOTO_INSTANCE_PROFILE],
        )?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{}", server.port),
            _stdin: Mutex::new(server.stdin),
        })
    }
}

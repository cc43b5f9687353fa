//! The local provider: the shared behaviour suite, and its simulated hosts speaking the
//! host protocol to a webserver.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use cloud_interface::conformance::{self, Subject};
use cloud_interface::{BootConfig, CloudInstanceId, LocalOptions, LocalProvider};
use secrecy::SecretString;
use url::Url;

fn options() -> LocalOptions {
    LocalOptions {
        // Port 0: every simulated host listens on a port of its own.
        host_port: 0,
        boot_delay: Duration::from_millis(50),
        register_for: Duration::from_millis(500),
        ..LocalOptions::default()
    }
}

fn user_data(webserver: &str) -> SecretString {
    BootConfig {
        instance_name: "local-test-0000000-uid-conformanc".to_owned(),
        webserver_url: Url::parse(webserver).unwrap(),
        bootstrap_secret: SecretString::from("not-a-real-secret".to_owned()),
    }
    .to_user_data()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_provider_passes_the_behaviour_suite() {
    let provider = LocalProvider::new(options());
    conformance::run(
        &provider,
        &Subject {
            region: "us-east-1".to_owned(),
            image: "ami-local".to_owned(),
            instance_type: "g4dn.xlarge".to_owned(),
            name: "local-conformance".to_owned(),
            // Nothing listens there: the hosts retry registering until terminated.
            user_data: user_data("http://127.0.0.1:9/"),
            unknown_id: CloudInstanceId("local-0000000000000000".to_owned()),
            timeout: Duration::from_secs(10),
        },
    )
    .await;
}

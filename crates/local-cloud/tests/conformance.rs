//! The local provider passes the behaviour suite every backend passes.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use cloud_interface::conformance::{self, Subject};
use cloud_interface::{BootConfig, CloudInstanceId};
use domain::{AmiId, InstanceName, Region};
use local_cloud::{ID_PREFIX, LocalOptions, LocalProvider};
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

fn user_data(name: &InstanceName, webserver: &str) -> SecretString {
    BootConfig {
        instance_name: name.clone(),
        webserver_url: Url::parse(webserver).unwrap(),
        bootstrap_secret: SecretString::from("not-a-real-secret".to_owned()),
    }
    .to_user_data()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_provider_passes_the_behaviour_suite() {
    let provider = LocalProvider::new(options());
    let name = InstanceName::parse("local-conformance").unwrap();
    conformance::run(
        &provider,
        &Subject {
            region: Region::parse("us-east-1").unwrap(),
            image: AmiId::parse("ami-local").unwrap(),
            instance_type: "g4dn.xlarge".to_owned(),
            // Nothing listens there: the hosts retry registering until terminated.
            user_data: user_data(&name, "http://127.0.0.1:9/"),
            name,
            unknown_id: CloudInstanceId::new(ID_PREFIX, "0000000000000000"),
            foreign_id: CloudInstanceId::stored("aws-i-0123456789abcdef0"),
        },
    )
    .await;
}

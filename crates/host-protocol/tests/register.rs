//! Registration against PostgreSQL and a mocked cloud: a host's address is checked
//! against what the cloud says its instance has, and a refusal consumes nothing.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::IpAddr;
use std::sync::Arc;

use cloud_interface::CloudError;
use cloud_interface::provider::MockCloudProvider;
use host_protocol::{AddressRule, HostError, HostService, RegisterRequest};
use models::instance::{self, NewInstance};
use models::{
    AmiId, CommitHash, Db, InstanceName, InstanceStatus, PoolOptions, Region, UnixMillis,
};
use secrecy::ExposeSecret;
use serde_json::json;
use test_support::TestDatabase;

const NAME: &str = "us-east-1-main-abc1234-uid-0000000042";

/// A launched instance waiting for its host; returns its bootstrap secret.
fn launched(db: &TestDatabase) -> String {
    let (secret, hash) = auth::host::new_bootstrap_secret().unwrap();
    instance::insert(
        &mut db.connect(),
        &NewInstance {
            instance_name: InstanceName::parse(NAME).unwrap(),
            cloud_provider_id: "aws-i-0123".to_owned(),
            creation_time_utc_unix_ms: UnixMillis::now(),
            aws_ami_id: AmiId::parse("ami-1").unwrap(),
            location: Region::parse("us-east-1").unwrap(),
            status: InstanceStatus::PreConnection,
            commit_hash: CommitHash::parse("abc1234").unwrap(),
            aws_instance_type: "g4dn.xlarge".to_owned(),
            bootstrap_secret_hash: Some(hash),
        },
    )
    .unwrap();
    secret.expose_secret().to_owned()
}

fn request(secret: &str, ip: Option<&str>) -> RegisterRequest {
    serde_json::from_value(json!({
        "instance_name": NAME,
        "bootstrap_secret": secret,
        "ip": ip,
        "mandelbox_capacity": 4,
        "memory_remaining_kb": 1,
        "nanocpus_remaining": 1,
        "gpu_vram_remaining_kb": 1,
    }))
    .unwrap()
}

/// A cloud that says the instance has `addresses` (or fails, for `None`).
fn cloud(addresses: Option<Vec<&str>>) -> Arc<MockCloudProvider> {
    let addresses: Option<Vec<IpAddr>> =
        addresses.map(|list| list.iter().map(|ip| ip.parse().unwrap()).collect());
    let mut cloud = MockCloudProvider::new();
    cloud
        .expect_instance_addresses()
        .withf(|region, id| region.as_str() == "us-east-1" && id.as_str() == "aws-i-0123")
        .returning(move |_, _| match &addresses {
            Some(list) => Ok(Some(list.clone())),
            None => Err(CloudError::temporary("throttled", None)),
        });
    Arc::new(cloud)
}

fn service(db: &TestDatabase, cloud: Arc<MockCloudProvider>) -> HostService {
    let pool = Db::new(db.url(), PoolOptions::default());
    HostService::new(pool.clone(), pool)
        .with_address_rule(AddressRule::default())
        .with_cloud(cloud)
}

fn column(db: &TestDatabase, column: &str) -> String {
    let mut conn = db.connect();
    let row = instance::find(&mut conn, &InstanceName::parse(NAME).unwrap())
        .unwrap()
        .unwrap();
    match column {
        "status" => row.status.as_str().to_owned(),
        "ip" => row.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn an_address_the_cloud_does_not_give_the_instance_is_refused_and_consumes_nothing() {
    let db = TestDatabase::new();
    let secret = launched(&db);
    let hosts = service(&db, cloud(Some(vec!["3.80.1.2", "172.31.0.9"])));
    let peer = Some("3.80.9.9".parse().unwrap());

    let err = hosts
        .register(request(&secret, Some("3.80.7.7")), peer)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HostError::Address(why) if why.contains("3.80.1.2")),
        "{err}"
    );
    assert_eq!(column(&db, "status"), "PRE_CONNECTION");
    // The cloud's private address is the instance's, but clients could not reach it.
    let err = hosts
        .register(request(&secret, Some("172.31.0.9")), peer)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HostError::Address(why) if why.contains("not a public")),
        "{err}"
    );
    assert_eq!(column(&db, "status"), "PRE_CONNECTION");

    hosts
        .register(request(&secret, Some("3.80.1.2")), peer)
        .await
        .unwrap();
    assert_eq!(column(&db, "status"), "ACTIVE");
    assert_eq!(column(&db, "ip"), "3.80.1.2");
}

#[tokio::test]
async fn without_an_ip_the_cloud_s_address_is_taken_not_the_peer() {
    let db = TestDatabase::new();
    let secret = launched(&db);
    let hosts = service(&db, cloud(Some(vec!["3.80.1.2"])));
    // The peer is the ingress in front of the server.
    let ingress = Some("3.90.0.1".parse().unwrap());
    hosts
        .register(request(&secret, None), ingress)
        .await
        .unwrap();
    assert_eq!(column(&db, "ip"), "3.80.1.2");
}

#[tokio::test]
async fn when_the_cloud_cannot_say_the_host_is_told_to_try_again() {
    let db = TestDatabase::new();
    let secret = launched(&db);
    let hosts = service(&db, cloud(None));
    let err = hosts
        .register(request(&secret, Some("3.80.1.2")), None)
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::Cloud(_)), "{err}");
    assert_eq!(column(&db, "status"), "PRE_CONNECTION");
    // A wrong secret is refused before the cloud is asked.
    let err = hosts
        .register(request("wrong", Some("3.80.1.2")), None)
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::Unauthorized), "{err}");
}

fn beat() -> host_protocol::HeartbeatRequest {
    serde_json::from_value(json!({
        "memory_remaining_kb": 5,
        "nanocpus_remaining": 5,
        "gpu_vram_remaining_kb": 5,
    }))
    .unwrap()
}

/// The heartbeats' writer started with the service on a runtime that then stopped (as
/// an HTTP worker's may): the next heartbeat starts another, it is not refused forever.
#[test]
fn heartbeats_outlive_the_runtime_their_writer_started_on() {
    let db = TestDatabase::new();
    let secret = launched(&db);
    let first = tokio::runtime::Runtime::new().unwrap();
    let (hosts, token) = first.block_on(async {
        let pool = Db::new(db.url(), PoolOptions::default());
        let hosts = HostService::new(pool.clone(), pool).with_address_rule(AddressRule {
            allow_private: true,
        });
        let token = hosts
            .register(request(&secret, Some("10.0.0.7")), None)
            .await
            .unwrap();
        let digest = auth::host::host_token_digest(token.expose_secret()).unwrap();
        hosts.heartbeat(digest.clone(), beat()).await.unwrap();
        (hosts, digest)
    });
    drop(first);
    let second = tokio::runtime::Runtime::new().unwrap();
    let heard = second.block_on(hosts.heartbeat(token, beat())).unwrap();
    assert_eq!(heard.as_str(), NAME);
}

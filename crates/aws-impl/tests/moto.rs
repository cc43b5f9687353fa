//! The AWS backend against moto's server on 127.0.0.1: the shared behaviour suite, what
//! RunInstances sends, Auto Scaling groups, and failures that must not hang.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use aws_impl::{
    AutoScalingGroups, AwsOptions, AwsProvider, GroupSpec, ID_PREFIX, StaticCredentials,
};
use cloud_interface::conformance::{self, Subject};
use cloud_interface::{
    BootConfig, CloudInstanceId, CloudProvider, LaunchRequest, LaunchToken, OWNER_TAG,
};
use domain::{AmiId, InstanceName, Region};
use secrecy::{ExposeSecret, SecretString};
use test_support::{MOTO_ACCESS_KEY_ID, MOTO_INSTANCE_PROFILE, MOTO_SECRET_ACCESS_KEY, Moto};

fn options(endpoint: &str) -> AwsOptions {
    AwsOptions {
        endpoint_url: Some(endpoint.to_owned()),
        credentials: Some(StaticCredentials {
            access_key_id: MOTO_ACCESS_KEY_ID.to_owned(),
            secret_access_key: MOTO_SECRET_ACCESS_KEY.to_owned(),
        }),
        instance_profile: MOTO_INSTANCE_PROFILE.to_owned(),
        operation_timeout: Duration::from_secs(20),
        ..AwsOptions::default()
    }
}

fn moto_options() -> AwsOptions {
    options(Moto::shared().endpoint())
}

fn unique(prefix: &str) -> InstanceName {
    InstanceName::parse(&format!("{prefix}-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn image(id: &str) -> AmiId {
    AmiId::parse(id).unwrap()
}

fn request(region_name: &str, name: &InstanceName, owner: &str) -> LaunchRequest {
    LaunchRequest {
        region: region(region_name),
        image: image("ami-0123456789abcdef0"),
        name: name.clone(),
        instance_type: "g4dn.xlarge".to_owned(),
        user_data: user_data(name),
        owner: owner.to_owned(),
        launch_token: LaunchToken::new(),
    }
}

fn user_data(name: &InstanceName) -> SecretString {
    BootConfig {
        instance_name: name.clone(),
        webserver_url: url::Url::parse("http://127.0.0.1:7730/").unwrap(),
        bootstrap_secret: SecretString::from("moto-test-secret".to_owned()),
    }
    .to_user_data()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_passes_the_behaviour_suite() {
    let provider = AwsProvider::new(moto_options());
    let name = unique("conformance");
    conformance::run(
        &provider,
        &Subject {
            region: region("us-east-1"),
            image: image("ami-0123456789abcdef0"),
            instance_type: "g4dn.xlarge".to_owned(),
            user_data: user_data(&name),
            name,
            unknown_id: CloudInstanceId::new(ID_PREFIX, "i-0000000000000000f"),
            foreign_id: CloudInstanceId::stored("local-00000000000000ff"),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_instances_sends_the_name_tag_user_data_type_and_profile() {
    let provider = AwsProvider::new(moto_options());
    let name = unique("us-west-1-main-abcdef0-uid");
    let launch = LaunchRequest {
        image: image("ami-0fedcba9876543210"),
        instance_type: "g4dn.2xlarge".to_owned(),
        ..request("us-west-1", &name, &format!("http://{name}.test/"))
    };
    let started = provider.start_instance(&launch).await.unwrap();
    let id = started.native(ID_PREFIX).unwrap();
    assert!(id.starts_with("i-"), "{started}");

    let described = Moto::shared()
        .ec2_query(
            "us-west-1",
            &[("Action", "DescribeInstances"), ("InstanceId.1", id)],
        )
        .await;
    assert!(
        described.contains(&format!("<value>{name}</value>")),
        "{described}"
    );
    assert!(described.contains("<key>Name</key>"), "{described}");
    assert!(
        described.contains(&format!("<key>{OWNER_TAG}</key>")),
        "{described}"
    );
    assert!(
        described.contains(&format!("<value>http://{name}.test/</value>")),
        "{described}"
    );
    assert!(described.contains("g4dn.2xlarge"), "{described}");
    assert!(described.contains("ami-0fedcba9876543210"), "{described}");
    assert!(described.contains(MOTO_INSTANCE_PROFILE), "{described}");
    assert!(
        described.contains(launch.launch_token.as_str()),
        "the launch token travels with the instance: {described}"
    );
    // IMDSv2 only, one hop.
    assert!(
        described.contains("<httpTokens>required</httpTokens>"),
        "{described}"
    );
    assert!(
        described.contains("<httpPutResponseHopLimit>1</httpPutResponseHopLimit>"),
        "{described}"
    );

    let attribute = Moto::shared()
        .ec2_query(
            "us-west-1",
            &[
                ("Action", "DescribeInstanceAttribute"),
                ("InstanceId", id),
                ("Attribute", "userData"),
            ],
        )
        .await;
    let encoded = attribute
        .split("<value>")
        .nth(1)
        .and_then(|rest| rest.split("</value>").next())
        .unwrap_or_else(|| panic!("no user data in {attribute}"));
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    let boot = BootConfig::from_user_data(std::str::from_utf8(&decoded).unwrap()).unwrap();
    assert_eq!(boot.instance_name, name);
    assert_eq!(boot.webserver_url.as_str(), "http://127.0.0.1:7730/");
    assert_eq!(boot.bootstrap_secret.expose_secret(), "moto-test-secret");

    // The addresses EC2 gives it, for checking its host's registration.
    let addresses = provider
        .instance_addresses(&region("us-west-1"), &started)
        .await
        .unwrap()
        .unwrap();
    assert!(!addresses.is_empty(), "{described}");
    assert!(
        addresses
            .iter()
            .all(|ip| described.contains(&format!(">{ip}<"))),
        "{addresses:?} not in {described}"
    );
    let unknown = cloud_interface::CloudInstanceId::new(ID_PREFIX, "i-0000000000000dead");
    assert_eq!(
        provider
            .instance_addresses(&region("us-west-1"), &unknown)
            .await
            .unwrap(),
        None
    );
    let foreign = cloud_interface::CloudInstanceId::stored("local-1");
    assert_eq!(
        provider
            .instance_addresses(&region("us-west-1"), &foreign)
            .await
            .unwrap(),
        None
    );

    // The region is the request's: the instance is not in another one.
    let owner = launch.owner.as_str();
    assert!(
        provider
            .list_instances(&region("eu-west-1"), owner)
            .await
            .unwrap()
            .is_empty()
    );
    provider
        .terminate_instances(&region("us-west-1"), &[started])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_launch_starts_one_instance() {
    let provider = AwsProvider::new(moto_options());
    let name = unique("retried");
    let owner = format!("retry-{name}");
    let launch = request("us-east-1", &name, &owner);
    // A first try whose answer was lost, then the retry with the same token.
    let first = provider.start_instance(&launch).await.unwrap();
    let retried = provider.start_instance(&launch).await.unwrap();
    assert_eq!(first, retried);
    let running = provider
        .list_instances(&region("us-east-1"), &owner)
        .await
        .unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    // Another launch (a new token) is another instance.
    let other = provider
        .start_instance(&request("us-east-1", &name, &owner))
        .await
        .unwrap();
    assert_ne!(first, other);
    provider
        .terminate_instances(&region("us-east-1"), &[first, other])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_instance_profile_is_a_permanent_failure() {
    let provider = AwsProvider::new(AwsOptions {
        instance_profile: unique("no-such-profile").to_string(),
        ..moto_options()
    });
    let name = unique("profile");
    let err = provider
        .start_instance(&request("us-east-1", &name, "moto-test"))
        .await
        .unwrap_err();
    assert!(!err.is_temporary(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_fails_fast_as_temporary() {
    // Nothing listens on port 9 of loopback: connection refused, no metadata probing.
    let provider = AwsProvider::new(AwsOptions {
        max_attempts: 1,
        ..options("http://127.0.0.1:9")
    });
    let started = std::time::Instant::now();
    let err = provider
        .list_instances(&region("us-east-1"), "nobody")
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_scaling_groups_are_sized_per_region_and_image() {
    let groups = AutoScalingGroups::new(moto_options());
    let image = image(&format!(
        "ami-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..17]
    ));
    let east2 = region("us-east-2");
    assert_eq!(groups.describe(&east2, &image).await.unwrap(), None);

    let spec = GroupSpec {
        region: east2.clone(),
        image: image.clone(),
        instance_type: "g4dn.xlarge".to_owned(),
        user_data: user_data(&unique("asg")),
        max_size: 5,
    };
    let name = groups.ensure(&spec).await.unwrap();
    assert_eq!(name, AutoScalingGroups::group_name(&image));
    // Ensuring again finds what is there.
    groups.ensure(&spec).await.unwrap();
    let (desired, instances) = groups.describe(&east2, &image).await.unwrap().unwrap();
    assert_eq!((desired, instances.len()), (0, 0));

    groups
        .set_desired_capacity(&east2, &image, 3)
        .await
        .unwrap();
    let (desired, instances) = groups.describe(&east2, &image).await.unwrap().unwrap();
    assert_eq!(desired, 3);
    assert_eq!(instances.len(), 3, "{instances:?}");
    // The group's instances are EC2 instances.
    assert!(
        instances
            .iter()
            .all(|id| id.native(ID_PREFIX).is_some_and(|id| id.starts_with("i-"))),
        "{instances:?}"
    );

    groups
        .set_desired_capacity(&east2, &image, 1)
        .await
        .unwrap();
    let (desired, instances) = groups.describe(&east2, &image).await.unwrap().unwrap();
    assert_eq!((desired, instances.len()), (1, 1));

    groups.delete(&east2, &image).await.unwrap();
    assert_eq!(groups.describe(&east2, &image).await.unwrap(), None);
    groups.delete(&east2, &image).await.unwrap();
}

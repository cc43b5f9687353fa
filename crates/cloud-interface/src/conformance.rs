//! One suite of behaviour checks that every [`CloudProvider`] backend must pass (the
//! local simulation, AWS against a local emulator, and any backend an internal tool
//! adds). Each backend's tests call [`run`] with a provider set up for it; a failed check
//! panics with its name.

use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::provider::{CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest};

/// What the suite launches, and where.
#[derive(Debug, Clone)]
pub struct Subject {
    pub region: String,
    pub image: String,
    pub instance_type: String,
    /// A name unique to this run: the `Name` tag of what it starts, and its owner.
    pub name: String,
    /// User data the backend accepts (the local provider parses it).
    pub user_data: SecretString,
    /// A well-formed id of an instance that never existed.
    pub unknown_id: CloudInstanceId,
    /// How long instances may take to start or stop.
    pub timeout: Duration,
}

fn request(subject: &Subject, count: u32) -> LaunchRequest {
    LaunchRequest {
        region: subject.region.clone(),
        image: subject.image.clone(),
        name: subject.name.clone(),
        count,
        instance_type: subject.instance_type.clone(),
        user_data: subject.user_data.clone(),
        owner: subject.name.clone(),
    }
}

/// The ids `owner` has in the subject's region, sorted.
async fn listed(
    provider: &dyn CloudProvider,
    subject: &Subject,
    owner: &str,
) -> Vec<CloudInstance> {
    let mut listed = check(
        "list instances",
        provider.list_instances(&subject.region, owner).await,
    );
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    listed
}

fn ids_of(instances: &[CloudInstance]) -> Vec<CloudInstanceId> {
    instances.iter().map(|i| i.id.clone()).collect()
}

fn check<T: std::fmt::Debug>(name: &str, result: Result<T, CloudError>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("conformance check {name:?} failed: {err}"),
    }
}

/// Runs every check against `provider`. It starts at most three instances and
/// terminates all of them.
pub async fn run(provider: &dyn CloudProvider, subject: &Subject) {
    let region = subject.region.as_str();

    // Starting several returns one distinct id each, and they come up.
    let ids = check(
        "start two",
        provider.start_instances(&request(subject, 2)).await,
    );
    assert_eq!(ids.len(), 2, "start two: {ids:?}");
    assert_ne!(ids[0], ids[1], "start two: ids must differ");
    check(
        "wait until running",
        provider
            .wait_until_running(region, &ids, subject.timeout)
            .await,
    );
    let ips = check("instance ips", provider.instance_ips(region, &ids).await);
    assert_eq!(ips.len(), 2, "instance ips: one entry per id: {ips:?}");
    for id in &ids {
        assert!(ips.contains_key(id), "instance ips: {id} missing: {ips:?}");
    }

    // Listing by owner finds both, with their name and launch time; another owner has none.
    let started_by_us = listed(provider, subject, &subject.name).await;
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        ids_of(&started_by_us),
        sorted,
        "list instances: {started_by_us:?}"
    );
    for instance in &started_by_us {
        assert_eq!(instance.name, subject.name, "list instances: {instance:?}");
        let age = SystemTime::now().duration_since(instance.launched_at);
        assert!(
            age.is_ok_and(|age| age < Duration::from_secs(3600)),
            "list instances: launch time {instance:?}"
        );
    }
    let other_owner = format!("{}-other", subject.name);
    let others = listed(provider, subject, &other_owner).await;
    assert!(
        others.iter().all(|i| !ids.contains(&i.id)),
        "list instances of another owner: {others:?}"
    );

    // Terminating one leaves the other; terminating again, or an unknown id, is fine.
    let (gone, kept) = (ids[0].clone(), ids[1].clone());
    check(
        "terminate one",
        provider
            .terminate_instances(region, std::slice::from_ref(&gone))
            .await,
    );
    check(
        "wait until terminated",
        provider
            .wait_until_terminated(region, std::slice::from_ref(&gone), subject.timeout)
            .await,
    );
    check(
        "terminate again",
        provider
            .terminate_instances(region, std::slice::from_ref(&gone))
            .await,
    );
    check(
        "terminate unknown",
        provider
            .terminate_instances(region, std::slice::from_ref(&subject.unknown_id))
            .await,
    );
    check(
        "the other still runs",
        provider
            .wait_until_running(region, std::slice::from_ref(&kept), subject.timeout)
            .await,
    );

    assert_eq!(
        ids_of(&listed(provider, subject, &subject.name).await),
        std::slice::from_ref(&kept),
        "list instances after terminating one"
    );

    // A terminated instance never becomes running: the wait fails instead of hanging.
    let waited = provider
        .wait_until_running(region, std::slice::from_ref(&gone), Duration::from_secs(5))
        .await;
    assert!(
        waited.is_err(),
        "waiting for a terminated instance to run must fail"
    );

    // Unknown ids and empty launches are permanent errors.
    match provider
        .instance_ips(region, std::slice::from_ref(&subject.unknown_id))
        .await
    {
        Err(CloudError::Permanent(_)) => {}
        other => panic!("instance ips of an unknown id: expected a permanent error, got {other:?}"),
    }
    match provider.start_instances(&request(subject, 0)).await {
        Err(CloudError::Permanent(_)) => {}
        other => panic!("starting zero instances: expected a permanent error, got {other:?}"),
    }

    // A single start, then everything goes.
    let one = check(
        "start one",
        provider.start_instances(&request(subject, 1)).await,
    );
    assert_eq!(one.len(), 1, "start one: {one:?}");
    let all = [kept, one[0].clone()];
    check(
        "terminate all",
        provider.terminate_instances(region, &all).await,
    );
    check(
        "wait until all terminated",
        provider
            .wait_until_terminated(region, &all, subject.timeout)
            .await,
    );
    let left = listed(provider, subject, &subject.name).await;
    assert!(
        left.is_empty(),
        "list instances after terminating all: {left:?}"
    );
}

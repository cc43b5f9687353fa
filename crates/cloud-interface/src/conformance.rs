//! One suite of behaviour checks that every [`CloudProvider`] backend must pass (the
//! local simulation, AWS against a local emulator, and any backend an internal tool
//! adds). Each backend's tests call [`run`] with a provider set up for it; a failed check
//! panics with its name.

use std::time::{Duration, SystemTime};

use domain::{AmiId, InstanceName, Region};
use secrecy::SecretString;

use crate::provider::{
    CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest, LaunchToken,
};

/// What the suite launches, and where.
#[derive(Debug, Clone)]
pub struct Subject {
    pub region: Region,
    pub image: AmiId,
    pub instance_type: String,
    /// A name unique to this run: the `Name` tag of what it starts, and its owner.
    pub name: InstanceName,
    /// User data the backend accepts (the local provider parses it).
    pub user_data: SecretString,
    /// A well-formed id of this backend's for an instance that never existed.
    pub unknown_id: CloudInstanceId,
    /// An id another backend made.
    pub foreign_id: CloudInstanceId,
}

fn request(subject: &Subject, token: &LaunchToken) -> LaunchRequest {
    LaunchRequest {
        region: subject.region.clone(),
        image: subject.image.clone(),
        name: subject.name.clone(),
        instance_type: subject.instance_type.clone(),
        user_data: subject.user_data.clone(),
        owner: subject.name.to_string(),
        launch_token: token.clone(),
    }
}

/// What `owner` has in the subject's region, sorted by id.
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

/// Runs every check against `provider`. It starts two instances and terminates both.
pub async fn run(provider: &dyn CloudProvider, subject: &Subject) {
    let (first, second) = starting_twice_with_one_token_starts_one(provider, subject).await;
    listing_finds_what_an_owner_started(provider, subject, &first, &second).await;
    terminating_is_idempotent_and_ignores_others_ids(provider, subject, &first, &second).await;
}

/// Starting with a token twice starts one instance: a retried launch is idempotent.
/// Returns the two instances started.
async fn starting_twice_with_one_token_starts_one(
    provider: &dyn CloudProvider,
    subject: &Subject,
) -> (CloudInstanceId, CloudInstanceId) {
    let first_token = LaunchToken::new();
    let first = check(
        "start one",
        provider
            .start_instance(&request(subject, &first_token))
            .await,
    );
    let again = check(
        "start again with the same token",
        provider
            .start_instance(&request(subject, &first_token))
            .await,
    );
    assert_eq!(
        first, again,
        "the same launch token must give the same instance"
    );
    let second = check(
        "start another",
        provider
            .start_instance(&request(subject, &LaunchToken::new()))
            .await,
    );
    assert_ne!(
        first, second,
        "another launch token must start another instance"
    );
    (first, second)
}

/// Listing by owner finds both, with their name and launch time; another owner has none.
async fn listing_finds_what_an_owner_started(
    provider: &dyn CloudProvider,
    subject: &Subject,
    first: &CloudInstanceId,
    second: &CloudInstanceId,
) {
    let owner = subject.name.as_str();
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    let started_by_us = listed(provider, subject, owner).await;
    assert_eq!(
        ids_of(&started_by_us),
        both,
        "list instances: {started_by_us:?}"
    );
    for instance in &started_by_us {
        assert_eq!(instance.name, owner, "list instances: {instance:?}");
        let age = SystemTime::now().duration_since(instance.launched_at);
        assert!(
            age.is_ok_and(|age| age < Duration::from_secs(3600)),
            "list instances: launch time {instance:?}"
        );
    }
    let others = listed(provider, subject, &format!("{owner}-other")).await;
    assert!(
        others.iter().all(|i| !both.contains(&i.id)),
        "list instances of another owner: {others:?}"
    );
}

/// Terminating one leaves the other; terminating again, an unknown id or another
/// backend's id is fine; terminating the rest leaves nothing listed.
async fn terminating_is_idempotent_and_ignores_others_ids(
    provider: &dyn CloudProvider,
    subject: &Subject,
    first: &CloudInstanceId,
    second: &CloudInstanceId,
) {
    let (region, owner) = (&subject.region, subject.name.as_str());
    check(
        "terminate one",
        provider
            .terminate_instances(region, std::slice::from_ref(first))
            .await,
    );
    for (name, id) in [
        ("terminate again", first),
        ("terminate unknown", &subject.unknown_id),
        ("terminate another backend's id", &subject.foreign_id),
    ] {
        check(
            name,
            provider
                .terminate_instances(region, std::slice::from_ref(id))
                .await,
        );
    }
    assert_eq!(
        ids_of(&listed(provider, subject, owner).await),
        std::slice::from_ref(second),
        "list instances after terminating one"
    );
    check(
        "terminate the rest",
        provider
            .terminate_instances(region, std::slice::from_ref(second))
            .await,
    );
    let left = listed(provider, subject, owner).await;
    assert!(
        left.is_empty(),
        "list instances after terminating all: {left:?}"
    );
}

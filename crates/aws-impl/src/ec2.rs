//! [`CloudProvider`] on EC2.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, InstanceStateName, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use base64::Engine;
use cloud_interface::{
    CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest, OWNER_TAG,
};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::config::{AwsOptions, Regional};
use crate::errors::{classify, code};

/// EC2 as a [`CloudProvider`]; one client per region, made on first use.
pub struct AwsProvider {
    clients: Regional<Client>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("options", self.clients.options())
            .finish_non_exhaustive()
    }
}

/// What DescribeInstances says of one instance.
#[derive(Debug, Clone)]
struct Seen {
    state: Option<InstanceStateName>,
    ip: Option<IpAddr>,
}

impl AwsProvider {
    pub fn new(options: AwsOptions) -> Self {
        Self {
            clients: Regional::new(options, Client::new),
        }
    }

    /// The instances EC2 knows among `ids`; ids it does not know are left out.
    async fn describe(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<HashMap<CloudInstanceId, Seen>, CloudError> {
        let client = self.clients.client(region).await;
        let mut seen = HashMap::new();
        // DescribeInstances fails as a whole on one unknown id; ask one at a time then.
        let batch = client
            .describe_instances()
            .set_instance_ids(Some(ids.iter().map(|id| id.0.clone()).collect()))
            .send()
            .await;
        let outputs = match batch {
            Ok(output) => vec![output],
            Err(err) if is_not_found(code(&err)) && ids.len() > 1 => {
                let mut outputs = Vec::new();
                for id in ids {
                    match client.describe_instances().instance_ids(&id.0).send().await {
                        Ok(output) => outputs.push(output),
                        Err(err) if is_not_found(code(&err)) => {}
                        Err(err) => return Err(classify("DescribeInstances", &err)),
                    }
                }
                outputs
            }
            Err(err) if is_not_found(code(&err)) => Vec::new(),
            Err(err) => return Err(classify("DescribeInstances", &err)),
        };
        for output in outputs {
            for instance in output.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                seen.insert(
                    CloudInstanceId(id.to_owned()),
                    Seen {
                        state: instance.state().and_then(|s| s.name()).cloned(),
                        ip: instance.public_ip_address().and_then(|ip| ip.parse().ok()),
                    },
                );
            }
        }
        Ok(seen)
    }

    /// Polls until `done` holds for every instance, or `timeout` passes.
    async fn wait_for(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
        done: impl Fn(Option<&Seen>) -> Result<bool, CloudError>,
    ) -> Result<(), CloudError> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.describe(region, ids).await?;
            let mut all = true;
            for id in ids {
                all &= done(seen.get(id))?;
            }
            if all {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CloudError::Temporary(format!(
                    "instances not there after {timeout:?}"
                )));
            }
            let poll = self.clients.options().poll_interval;
            tokio::time::sleep(poll.min(deadline - now)).await;
        }
    }
}

fn is_not_found(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
    )
}

#[async_trait]
impl CloudProvider for AwsProvider {
    async fn start_instances(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<CloudInstanceId>, CloudError> {
        let count = i32::try_from(request.count)
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(|| {
                CloudError::Permanent(format!(
                    "cannot start {} instances: expected 1 to {}",
                    request.count,
                    i32::MAX
                ))
            })?;
        let client = self.clients.client(&request.region).await;
        let user_data = base64::engine::general_purpose::STANDARD
            .encode(request.user_data.expose_secret().as_bytes());
        let mut call = client
            .run_instances()
            .image_id(&request.image)
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(count)
            .max_count(count)
            .user_data(user_data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("Name").value(&request.name).build())
                    .tags(Tag::builder().key(OWNER_TAG).value(&request.owner).build())
                    .build(),
            );
        let profile = &self.clients.options().instance_profile;
        if !profile.is_empty() {
            call = call.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build(),
            );
        }
        let output = call
            .send()
            .await
            .map_err(|err| classify("RunInstances", &err))?;
        let ids: Vec<CloudInstanceId> = output
            .instances()
            .iter()
            .filter_map(|i| i.instance_id())
            .map(|id| CloudInstanceId(id.to_owned()))
            .collect();
        tracing::info!(
            region = %request.region,
            name = %request.name,
            image = %request.image,
            ids = ?ids,
            "EC2 instances started"
        );
        Ok(ids)
    }

    async fn terminate_instances(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<(), CloudError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Only the ids EC2 still knows: terminating one it forgot fails the whole call.
        let known: Vec<String> = self
            .describe(region, ids)
            .await?
            .into_keys()
            .map(|id| id.0)
            .collect();
        if known.is_empty() {
            return Ok(());
        }
        let client = self.clients.client(region).await;
        match client
            .terminate_instances()
            .set_instance_ids(Some(known))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(code(&err)) => Ok(()),
            Err(err) => Err(classify("TerminateInstances", &err)),
        }
    }

    async fn instance_ips(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
    ) -> Result<HashMap<CloudInstanceId, Option<IpAddr>>, CloudError> {
        let seen = self.describe(region, ids).await?;
        ids.iter()
            .map(|id| match seen.get(id) {
                Some(instance) => Ok((id.clone(), instance.ip)),
                None => Err(CloudError::Permanent(format!("unknown instance {id}"))),
            })
            .collect()
    }

    async fn list_instances(
        &self,
        region: &str,
        owner: &str,
    ) -> Result<Vec<CloudInstance>, CloudError> {
        let client = self.clients.client(region).await;
        let filter = |name: &str, values: &[&str]| {
            Filter::builder()
                .name(name)
                .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
                .build()
        };
        let mut found = Vec::new();
        let mut next_token = None;
        loop {
            let output = client
                .describe_instances()
                .filters(filter(&format!("tag:{OWNER_TAG}"), &[owner]))
                .filters(filter(
                    "instance-state-name",
                    &["pending", "running", "stopping", "stopped"],
                ))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|err| classify("DescribeInstances", &err))?;
            for instance in output.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                let name = instance
                    .tags()
                    .iter()
                    .find(|tag| tag.key() == Some("Name"))
                    .and_then(|tag| tag.value())
                    .unwrap_or_default();
                // An instance without a launch time counts as just launched.
                let launched_at = instance
                    .launch_time()
                    .and_then(|at| SystemTime::try_from(*at).ok())
                    .unwrap_or_else(SystemTime::now);
                found.push(CloudInstance {
                    id: CloudInstanceId(id.to_owned()),
                    name: name.to_owned(),
                    launched_at,
                });
            }
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    async fn wait_until_running(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
    ) -> Result<(), CloudError> {
        self.wait_for(region, ids, timeout, |seen| {
            match seen.and_then(|s| s.state.as_ref()) {
                Some(InstanceStateName::Running) => Ok(true),
                Some(InstanceStateName::Pending) => Ok(false),
                Some(other) => Err(CloudError::Permanent(format!(
                    "an instance is {} and will not run",
                    other.as_str()
                ))),
                None => Err(CloudError::Permanent("unknown instance".to_owned())),
            }
        })
        .await
    }

    async fn wait_until_terminated(
        &self,
        region: &str,
        ids: &[CloudInstanceId],
        timeout: Duration,
    ) -> Result<(), CloudError> {
        self.wait_for(region, ids, timeout, |seen| {
            Ok(match seen {
                // EC2 forgets terminated instances after a while.
                None => true,
                Some(seen) => matches!(seen.state, Some(InstanceStateName::Terminated)),
            })
        })
        .await
    }
}

//! [`CloudProvider`] on EC2.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, Instance,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use base64::Engine;
use cloud_interface::{
    CloudError, CloudInstance, CloudInstanceId, CloudProvider, LaunchRequest, LaunchToken,
    OWNER_TAG,
};
use domain::Region;
use secrecy::ExposeSecret;

use crate::config::{AwsOptions, Regional};
use crate::errors::{classify, code};

/// What this backend's ids start with: `aws-i-0abc…`, as the original system stored them.
pub const ID_PREFIX: &str = "aws-";

/// The tag that carries a launch's [`LaunchToken`], so a retried launch finds the
/// instance its first try started (EC2's client token gives the same on AWS itself).
const LAUNCH_TOKEN_TAG: &str = "webserver-launch-token";

/// The states of an instance that is not terminated or on its way there.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

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

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn is_not_found(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
    )
}

fn listed(instance: &Instance) -> Option<CloudInstance> {
    let id = instance.instance_id()?;
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
    Some(CloudInstance {
        id: CloudInstanceId::new(ID_PREFIX, id),
        name: name.to_owned(),
        launched_at,
    })
}

impl AwsProvider {
    pub fn new(options: AwsOptions) -> Self {
        Self {
            clients: Regional::new(options, Client::new),
        }
    }

    /// The live instances matching `filters`, every page of them.
    async fn live(
        &self,
        region: &Region,
        filters: Vec<Filter>,
    ) -> Result<Vec<CloudInstance>, CloudError> {
        let client = self.clients.client(region).await;
        let mut found = Vec::new();
        let mut next_token = None;
        loop {
            let output = client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .filters(filter("instance-state-name", &LIVE_STATES))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|err| classify("DescribeInstances", err))?;
            found.extend(
                output
                    .reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(listed),
            );
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// The instance an earlier try of this launch started, if any.
    async fn started_for(
        &self,
        region: &Region,
        token: &LaunchToken,
    ) -> Result<Option<CloudInstanceId>, CloudError> {
        let tagged = filter(&format!("tag:{LAUNCH_TOKEN_TAG}"), &[token.as_str()]);
        Ok(self
            .live(region, vec![tagged])
            .await?
            .into_iter()
            .next()
            .map(|instance| instance.id))
    }

    /// The ids among `native` that EC2 still knows; ids it does not know are left out.
    async fn known(&self, region: &Region, native: Vec<String>) -> Result<Vec<String>, CloudError> {
        let client = self.clients.client(region).await;
        // DescribeInstances fails as a whole on one unknown id; ask one at a time then.
        let batch = client
            .describe_instances()
            .set_instance_ids(Some(native.clone()))
            .send()
            .await;
        let outputs = match batch {
            Ok(output) => vec![output],
            Err(err) if is_not_found(code(&err)) => {
                let mut outputs = Vec::new();
                for id in &native {
                    match client.describe_instances().instance_ids(id).send().await {
                        Ok(output) => outputs.push(output),
                        Err(err) if is_not_found(code(&err)) => {}
                        Err(err) => return Err(classify("DescribeInstances", err)),
                    }
                }
                outputs
            }
            Err(err) => return Err(classify("DescribeInstances", err)),
        };
        Ok(outputs
            .iter()
            .flat_map(|output| output.reservations())
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id())
            .map(str::to_owned)
            .collect())
    }
}

#[async_trait]
impl CloudProvider for AwsProvider {
    fn mandelbox_capacity(&self, instance_type: &str) -> Option<i64> {
        let options = self.clients.options();
        options
            .mandelboxes_per_instance
            .or_else(|| crate::capacity::mandelboxes_of(instance_type, options.mandelboxes_per_gpu))
    }

    async fn start_instance(&self, request: &LaunchRequest) -> Result<CloudInstanceId, CloudError> {
        if let Some(id) = self
            .started_for(&request.region, &request.launch_token)
            .await?
        {
            tracing::info!(region = %request.region, name = %request.name, %id, "this launch had already started its instance");
            return Ok(id);
        }
        let client = self.clients.client(&request.region).await;
        let user_data = base64::engine::general_purpose::STANDARD
            .encode(request.user_data.expose_secret().as_bytes());
        let mut call = client
            .run_instances()
            .image_id(request.image.as_str())
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(request.launch_token.as_str())
            .user_data(user_data)
            // IMDSv2 only, one hop: the user data holds the bootstrap secret, and a
            // container or a proxied request on the host must not read it.
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag("Name", request.name.as_str()))
                    .tags(tag(OWNER_TAG, &request.owner))
                    .tags(tag(LAUNCH_TOKEN_TAG, request.launch_token.as_str()))
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
            .map_err(|err| classify("RunInstances", err))?;
        let id = output
            .instances()
            .iter()
            .find_map(|i| i.instance_id())
            .map(|id| CloudInstanceId::new(ID_PREFIX, id))
            .ok_or_else(|| CloudError::permanent("RunInstances started no instance", None))?;
        tracing::info!(
            region = %request.region,
            name = %request.name,
            image = %request.image,
            %id,
            "EC2 instance started"
        );
        Ok(id)
    }

    async fn terminate_instances(
        &self,
        region: &Region,
        ids: &[CloudInstanceId],
    ) -> Result<(), CloudError> {
        let native: Vec<String> = ids
            .iter()
            .filter_map(|id| id.native(ID_PREFIX))
            .map(str::to_owned)
            .collect();
        if native.is_empty() {
            return Ok(());
        }
        // Only the ids EC2 still knows: terminating one it forgot fails the whole call.
        let known = self.known(region, native).await?;
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
            Err(err) => Err(classify("TerminateInstances", err)),
        }
    }

    async fn list_instances(
        &self,
        region: &Region,
        owner: &str,
    ) -> Result<Vec<CloudInstance>, CloudError> {
        self.live(region, vec![filter(&format!("tag:{OWNER_TAG}"), &[owner])])
            .await
    }

    /// The instance's public IPv4 address, its IPv6 addresses and its private address,
    /// in that order; `None` for an id EC2 does not know (or another backend's).
    async fn instance_addresses(
        &self,
        region: &Region,
        id: &CloudInstanceId,
    ) -> Result<Option<Vec<std::net::IpAddr>>, CloudError> {
        let Some(native) = id.native(ID_PREFIX) else {
            return Ok(None);
        };
        let client = self.clients.client(region).await;
        let output = match client
            .describe_instances()
            .instance_ids(native)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if is_not_found(code(&err)) => return Ok(None),
            Err(err) => return Err(classify("DescribeInstances", err)),
        };
        let Some(instance) = output
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(native))
        else {
            return Ok(None);
        };
        let ipv6 = instance
            .network_interfaces()
            .iter()
            .flat_map(|interface| interface.ipv6_addresses())
            .filter_map(|address| address.ipv6_address());
        let addresses = instance
            .public_ip_address()
            .into_iter()
            .chain(ipv6)
            .chain(instance.private_ip_address())
            .filter_map(|text| text.parse().ok())
            .collect();
        Ok(Some(addresses))
    }
}

//! Building the SDK configuration without probing the network at start-up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;

/// An access key pair, for callers that do not use the standard chain.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// `AWS_ENDPOINT_URL`: one endpoint for EC2 and Auto Scaling (a local emulator).
    pub endpoint_url: Option<String>,
    /// `None`: the standard chain (environment, profile files, instance role).
    pub credentials: Option<StaticCredentials>,
    /// `AWS_INSTANCE_PROFILE`: the IAM instance profile launched instances get; empty
    /// for none.
    pub instance_profile: String,
    pub connect_timeout: Duration,
    /// The most one API call may take, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call, with the SDK's exponential backoff between them.
    pub max_attempts: u32,
    /// `MANDELBOXES_PER_GPU`: what an instance type holds per GPU.
    pub mandelboxes_per_gpu: i64,
    /// `MANDELBOXES_PER_INSTANCE`: what every instance launched holds, whatever its
    /// type (`None`: from the type).
    pub mandelboxes_per_instance: Option<i64>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            credentials: None,
            instance_profile: "auto_scaling_instance_profile".to_owned(),
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(60),
            max_attempts: 3,
            mandelboxes_per_gpu: 3,
            mandelboxes_per_instance: None,
        }
    }
}

/// One SDK configuration per region, built on first use and kept.
pub(crate) struct Regional<C> {
    options: AwsOptions,
    build: fn(&SdkConfig) -> C,
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> Regional<C> {
    pub(crate) fn new(options: AwsOptions, build: fn(&SdkConfig) -> C) -> Self {
        Self {
            options,
            build,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn options(&self) -> &AwsOptions {
        &self.options
    }

    /// The client for `region`. Loading is explicit (region, endpoint, credentials), so
    /// it neither probes the instance metadata service nor touches the network.
    pub(crate) async fn client(&self, region: &domain::Region) -> C {
        let region = region.as_str();
        if let Some(client) = self.lock().get(region) {
            return client.clone();
        }
        let options = &self.options;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(options.connect_timeout)
                    .operation_timeout(options.operation_timeout)
                    .build(),
            );
        if let Some(endpoint) = &options.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(keys) = &options.credentials {
            loader = loader.credentials_provider(Credentials::new(
                keys.access_key_id.clone(),
                keys.secret_access_key.clone(),
                None,
                None,
                "webserver-settings",
            ));
        }
        let client = (self.build)(&loader.load().await);
        self.lock()
            .entry(region.to_owned())
            .or_insert(client)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, C>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

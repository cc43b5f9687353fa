//! The cloud provider and the fleet the settings call for.

use std::sync::Arc;
use std::time::Duration;

use cloud_interface::CloudProvider;
use local_cloud::{LocalOptions, LocalProvider};
use models::Db;
use scaling::{Fleet, FleetMetrics, FleetSettings};

use crate::settings::{CloudProviderKind, Settings};
use crate::startup::StartupError;

/// The provider of `CLOUD_PROVIDER`. Fails only for `aws` in a binary built without the
/// `aws` feature.
pub fn provider(settings: &Settings) -> Result<Arc<dyn CloudProvider>, StartupError> {
    let cloud = &settings.cloud;
    Ok(match cloud.provider {
        #[cfg(not(feature = "aws"))]
        CloudProviderKind::Aws => {
            return Err(StartupError::Cloud(
                "CLOUD_PROVIDER: \"aws\" needs a binary built with the `aws` feature",
            ));
        }
        #[cfg(feature = "aws")]
        CloudProviderKind::Aws => Arc::new(aws_impl::AwsProvider::new(aws_impl::AwsOptions {
            endpoint_url: cloud.aws_endpoint_url.as_ref().map(|url| {
                // The SDK wants no trailing slash.
                url.as_str().trim_end_matches('/').to_owned()
            }),
            // The standard chain: environment, profile files, the instance's role.
            credentials: None,
            instance_profile: cloud.aws_instance_profile.clone(),
            mandelboxes_per_gpu: cloud.mandelboxes_per_gpu,
            mandelboxes_per_instance: cloud.mandelboxes_per_instance,
            ..aws_impl::AwsOptions::default()
        })),
        CloudProviderKind::Local => Arc::new(LocalProvider::new(LocalOptions {
            host_port: settings.scaling.host_service_port,
            boot_delay: cloud.local_boot_delay,
            heartbeat_interval: cloud.local_heartbeat_interval,
            mandelbox_capacity: cloud.local_mandelbox_capacity,
            ..LocalOptions::default()
        })),
    })
}

/// The scaling settings of `settings`, telling hosts to register at `webserver_url`,
/// counting each launch as `launch_capacity` mandelboxes until its host registers.
pub fn fleet_settings(
    settings: &Settings,
    webserver_url: url::Url,
    launch_capacity: Option<i64>,
) -> FleetSettings {
    let scaling = &settings.scaling;
    FleetSettings {
        policy: scaling.policy,
        learning: scaling.learning,
        check_interval: scaling.check_interval,
        desired_free: i64::from(scaling.desired_free_mandelboxes),
        buffer: scaling.default_instance_buffer,
        max_instances_per_region: scaling.max_instances_per_region,
        autoscale: scaling.autoscale,
        instance_type: settings.cloud.aws_instance_type.clone(),
        launch_capacity,
        branch: settings.cloud.branch.clone(),
        host_service_port: scaling.host_service_port,
        lock_wait: Duration::from_secs(30),
        orphan_grace: scaling.orphan_grace,
        ..FleetSettings::new(webserver_url)
    }
}

/// The fleet of `settings` on `db`, through `cloud` if given, else the configured one.
pub fn fleet(
    settings: &Settings,
    db: Db,
    cloud: Option<Arc<dyn CloudProvider>>,
    webserver_url: url::Url,
    metrics: FleetMetrics,
) -> Result<Fleet, StartupError> {
    let cloud = match cloud {
        Some(cloud) => cloud,
        None => provider(settings)?,
    };
    let instance_type = &settings.cloud.aws_instance_type;
    let Some(capacity) = cloud.mandelbox_capacity(instance_type) else {
        return Err(StartupError::LaunchCapacity(instance_type.clone()));
    };
    let settings = fleet_settings(settings, webserver_url, Some(capacity));
    Fleet::new(db, cloud, settings, metrics).map_err(StartupError::HttpClient)
}

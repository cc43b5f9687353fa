//! The cloud provider and the fleet the settings call for.

use std::sync::Arc;
use std::time::Duration;

use cloud_interface::{CloudProvider, LocalOptions, LocalProvider};
use models::Db;
use scaling::{Fleet, FleetSettings};

use crate::settings::{CloudProviderKind, Settings};

/// The provider of `CLOUD_PROVIDER`, and the prefix its ids get in `cloud_provider_id`.
/// Fails only for `aws` in a binary built without the `aws` feature.
pub fn provider(settings: &Settings) -> Result<(Arc<dyn CloudProvider>, &'static str), String> {
    let cloud = &settings.cloud;
    Ok(match cloud.provider {
        #[cfg(not(feature = "aws"))]
        CloudProviderKind::Aws => {
            return Err(
                "CLOUD_PROVIDER: \"aws\" needs a binary built with the `aws` feature".to_owned(),
            );
        }
        #[cfg(feature = "aws")]
        CloudProviderKind::Aws => (
            Arc::new(aws_impl::AwsProvider::new(aws_impl::AwsOptions {
                endpoint_url: cloud.aws_endpoint_url.as_ref().map(|url| {
                    // The SDK wants no trailing slash.
                    url.as_str().trim_end_matches('/').to_owned()
                }),
                // The standard chain: environment, profile files, the instance's role.
                credentials: None,
                instance_profile: cloud.aws_instance_profile.clone(),
                ..aws_impl::AwsOptions::default()
            })),
            "aws-",
        ),
        CloudProviderKind::Local => (
            Arc::new(LocalProvider::new(LocalOptions {
                host_port: settings.scaling.host_service_port,
                boot_delay: cloud.local_boot_delay,
                heartbeat_interval: cloud.local_heartbeat_interval,
                mandelbox_capacity: cloud.local_mandelbox_capacity,
                ..LocalOptions::default()
            })),
            "",
        ),
    })
}

/// The scaling settings of `settings`, for a provider whose ids get `prefix`, telling
/// hosts to register at `webserver_url`.
pub fn fleet_settings(settings: &Settings, prefix: &str, webserver_url: url::Url) -> FleetSettings {
    let scaling = &settings.scaling;
    FleetSettings {
        desired_free: i64::from(scaling.desired_free_mandelboxes),
        buffer: scaling.default_instance_buffer,
        max_instances_per_region: scaling.max_instances_per_region,
        autoscale: scaling.autoscale,
        instance_type: settings.cloud.aws_instance_type.clone(),
        branch: settings.cloud.branch.clone(),
        host_service_port: scaling.host_service_port,
        lock_wait: Duration::from_secs(30),
        orphan_grace: scaling.orphan_grace,
        ..FleetSettings::new(webserver_url, prefix)
    }
}

/// The fleet of `settings` on `db`, through `cloud` if given, else the configured one.
pub fn fleet(
    settings: &Settings,
    db: Db,
    cloud: Option<(Arc<dyn CloudProvider>, String)>,
    webserver_url: url::Url,
) -> Result<Fleet, String> {
    let (cloud, prefix) = match cloud {
        Some((cloud, prefix)) => (cloud, prefix),
        None => {
            let (cloud, prefix) = provider(settings)?;
            (cloud, prefix.to_owned())
        }
    };
    Ok(Fleet::new(
        db,
        cloud,
        fleet_settings(settings, &prefix, webserver_url),
    ))
}

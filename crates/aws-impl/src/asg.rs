//! Fleets kept as Auto Scaling groups: one group per (region, image), launched from a
//! launch template of that image, sized by setting its desired capacity.
//!
//! Instances of a group share the template's user data, so they cannot carry
//! per-instance bootstrap secrets; the webserver's own scaling launches instances
//! one by one through [`crate::AwsProvider`]. This is for fleets an operator runs as
//! groups.

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{
    Filter, InstanceType, LaunchTemplateIamInstanceProfileSpecificationRequest,
    RequestLaunchTemplateData,
};
use base64::Engine;
use cloud_interface::{CloudError, CloudInstanceId};
use domain::{AmiId, Region};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{AwsOptions, Regional};
use crate::errors::{classify, code};

/// A group to create.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub region: Region,
    pub image: AmiId,
    pub instance_type: String,
    pub user_data: SecretString,
    /// The group never grows past this.
    pub max_size: u32,
}

pub struct AutoScalingGroups {
    ec2: Regional<aws_sdk_ec2::Client>,
    groups: Regional<aws_sdk_autoscaling::Client>,
}

impl std::fmt::Debug for AutoScalingGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoScalingGroups")
            .field("options", self.ec2.options())
            .finish_non_exhaustive()
    }
}

fn count(value: u32) -> Result<i32, CloudError> {
    i32::try_from(value)
        .map_err(|err| CloudError::permanent(format!("{value} is too many"), Some(Box::new(err))))
}

impl AutoScalingGroups {
    pub fn new(options: AwsOptions) -> Self {
        Self {
            ec2: Regional::new(options.clone(), aws_sdk_ec2::Client::new),
            groups: Regional::new(options, aws_sdk_autoscaling::Client::new),
        }
    }

    /// The name of the group (and of its launch template) for `image`.
    pub fn group_name(image: &AmiId) -> String {
        format!("fractal-{image}")
    }

    /// Creates the launch template and the group (empty) unless they exist; returns the
    /// group's name.
    pub async fn ensure(&self, spec: &GroupSpec) -> Result<String, CloudError> {
        let name = Self::group_name(&spec.image);
        let mut data = RequestLaunchTemplateData::builder()
            .image_id(spec.image.as_str())
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .user_data(
                base64::engine::general_purpose::STANDARD
                    .encode(spec.user_data.expose_secret().as_bytes()),
            );
        let profile = &self.ec2.options().instance_profile;
        if !profile.is_empty() {
            data = data.iam_instance_profile(
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(profile)
                    .build(),
            );
        }
        let ec2 = self.ec2.client(&spec.region).await;
        match ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(data.build())
            .send()
            .await
        {
            Ok(_) => {}
            Err(err) if code(&err) == Some("InvalidLaunchTemplateName.AlreadyExistsException") => {}
            Err(err) => return Err(classify("CreateLaunchTemplate", err)),
        }
        let groups = self.groups.client(&spec.region).await;
        match groups
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(&name)
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size(count(spec.max_size)?)
            .desired_capacity(0)
            .availability_zones(format!("{}a", spec.region))
            .send()
            .await
        {
            Ok(_) => Ok(name),
            Err(err) if code(&err) == Some("AlreadyExists") => Ok(name),
            Err(err) => Err(classify("CreateAutoScalingGroup", err)),
        }
    }

    /// The group's desired capacity and its instances; `None` if there is no group.
    pub async fn describe(
        &self,
        region: &Region,
        image: &AmiId,
    ) -> Result<Option<(u32, Vec<CloudInstanceId>)>, CloudError> {
        let output = self
            .groups
            .client(region)
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(Self::group_name(image))
            .send()
            .await
            .map_err(|err| classify("DescribeAutoScalingGroups", err))?;
        Ok(output.auto_scaling_groups().first().map(|group| {
            let desired = group
                .desired_capacity()
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(0);
            let instances = group
                .instances()
                .iter()
                .filter_map(|i| i.instance_id())
                .map(|id| CloudInstanceId::new(crate::ec2::ID_PREFIX, id))
                .collect();
            (desired, instances)
        }))
    }

    /// Sets how many instances the group of (region, image) runs.
    pub async fn set_desired_capacity(
        &self,
        region: &Region,
        image: &AmiId,
        desired: u32,
    ) -> Result<(), CloudError> {
        self.groups
            .client(region)
            .await
            .set_desired_capacity()
            .auto_scaling_group_name(Self::group_name(image))
            .desired_capacity(count(desired)?)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|err| classify("SetDesiredCapacity", err))?;
        Ok(())
    }

    /// Deletes the group (terminating its instances) and its launch template. Deleting
    /// what is not there is not an error.
    pub async fn delete(&self, region: &Region, image: &AmiId) -> Result<(), CloudError> {
        let name = Self::group_name(image);
        match self
            .groups
            .client(region)
            .await
            .delete_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .force_delete(true)
            .send()
            .await
        {
            Ok(_) => {}
            Err(err) if code(&err) == Some("ValidationError") => {}
            Err(err) => return Err(classify("DeleteAutoScalingGroup", err)),
        }
        // Only a template that is there: deleting a missing one is an error whose code
        // differs between AWS and emulators.
        let ec2 = self.ec2.client(region).await;
        let existing = ec2
            .describe_launch_templates()
            .filters(
                Filter::builder()
                    .name("launch-template-name")
                    .values(&name)
                    .build(),
            )
            .send()
            .await
            .map_err(|err| classify("DescribeLaunchTemplates", err))?;
        if existing.launch_templates().is_empty() {
            return Ok(());
        }
        ec2.delete_launch_template()
            .launch_template_name(&name)
            .send()
            .await
            .map_err(|err| classify("DeleteLaunchTemplate", err))?;
        Ok(())
    }
}

//! How many mandelboxes an EC2 instance type holds: min(GPUs × mandelboxes per GPU,
//! vCPUs / 4), as the original service sized its hosts, for the GPU types it launches.

/// `(type, GPUs, vCPUs)` of the g4dn, g5 and g6 families.
const GPU_TYPES: [(&str, i64, i64); 23] = [
    ("g4dn.xlarge", 1, 4),
    ("g4dn.2xlarge", 1, 8),
    ("g4dn.4xlarge", 1, 16),
    ("g4dn.8xlarge", 1, 32),
    ("g4dn.12xlarge", 4, 48),
    ("g4dn.16xlarge", 1, 64),
    ("g4dn.metal", 8, 96),
    ("g5.xlarge", 1, 4),
    ("g5.2xlarge", 1, 8),
    ("g5.4xlarge", 1, 16),
    ("g5.8xlarge", 1, 32),
    ("g5.12xlarge", 4, 48),
    ("g5.16xlarge", 1, 64),
    ("g5.24xlarge", 4, 96),
    ("g5.48xlarge", 8, 192),
    ("g6.xlarge", 1, 4),
    ("g6.2xlarge", 1, 8),
    ("g6.4xlarge", 1, 16),
    ("g6.8xlarge", 1, 32),
    ("g6.12xlarge", 4, 48),
    ("g6.16xlarge", 1, 64),
    ("g6.24xlarge", 4, 96),
    ("g6.48xlarge", 8, 192),
];

/// The vCPUs one mandelbox needs.
const VCPUS_PER_MANDELBOX: i64 = 4;

/// The mandelboxes an instance of `instance_type` holds with `per_gpu` per GPU; `None`
/// for a type not in the table.
pub fn mandelboxes_of(instance_type: &str, per_gpu: i64) -> Option<i64> {
    GPU_TYPES
        .iter()
        .find(|(name, _, _)| *name == instance_type)
        .map(|(_, gpus, vcpus)| (gpus * per_gpu).min(vcpus / VCPUS_PER_MANDELBOX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpus_or_the_vcpus_run_out_first() {
        // Four vCPUs: one mandelbox, whatever the GPU could hold.
        assert_eq!(mandelboxes_of("g4dn.xlarge", 3), Some(1));
        assert_eq!(mandelboxes_of("g5.2xlarge", 3), Some(2));
        // One GPU: three, however many vCPUs.
        assert_eq!(mandelboxes_of("g4dn.16xlarge", 3), Some(3));
        assert_eq!(mandelboxes_of("g6.8xlarge", 3), Some(3));
        assert_eq!(mandelboxes_of("g5.48xlarge", 3), Some(24));
        assert_eq!(mandelboxes_of("g4dn.12xlarge", 2), Some(8));
        assert_eq!(mandelboxes_of("m5.large", 3), None);
    }

    #[test]
    fn the_provider_says_what_its_launches_hold_and_an_override_wins() {
        use cloud_interface::CloudProvider;
        let by_type = crate::AwsProvider::new(crate::AwsOptions::default());
        assert_eq!(by_type.mandelbox_capacity("g4dn.12xlarge"), Some(12));
        assert_eq!(by_type.mandelbox_capacity("m5.large"), None);
        let per_gpu = crate::AwsProvider::new(crate::AwsOptions {
            mandelboxes_per_gpu: 2,
            ..crate::AwsOptions::default()
        });
        assert_eq!(per_gpu.mandelbox_capacity("g4dn.12xlarge"), Some(8));
        let fixed = crate::AwsProvider::new(crate::AwsOptions {
            mandelboxes_per_instance: Some(6),
            ..crate::AwsOptions::default()
        });
        assert_eq!(fixed.mandelbox_capacity("m5.large"), Some(6));
        assert_eq!(fixed.mandelbox_capacity("g4dn.xlarge"), Some(6));
    }
}

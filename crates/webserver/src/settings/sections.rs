//! Reading each section of the settings.

use std::time::Duration;

use api::CorsOrigins;
use scaling::settings::defaults;
use url::Url;

use super::vars::{ConfigError, Vars, problem};
use super::{
    CloudProviderKind, CloudSettings, Environment, HttpSettings, ScalingSettings, StripeSettings,
};

impl StripeSettings {
    pub(super) fn from_vars(vars: &Vars, environment: Environment) -> Result<Self, ConfigError> {
        let secret = vars.secret("STRIPE_SECRET");
        if secret.is_none() && environment.is_deployed() {
            return Err(problem(
                "STRIPE_SECRET",
                format!("required in {}", environment.as_str()),
            ));
        }
        Ok(Self {
            secret,
            api_base: vars
                .url("STRIPE_API_BASE")?
                .map_or_else(|| Url::parse("https://api.stripe.com"), Ok)
                .map_err(|err| problem("STRIPE_API_BASE", err.to_string()))?,
            cache_ttl: vars.secs("STRIPE_CACHE_SECS", 30, 0..=3600)?,
        })
    }
}

impl HttpSettings {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let bind_addr = vars
            .get("BIND_ADDR")
            .unwrap_or("127.0.0.1:7730")
            .parse()
            .map_err(|_| {
                problem(
                    "BIND_ADDR",
                    format!(
                        "invalid value {:?}: expected an address and port such as 127.0.0.1:7730",
                        vars.get("BIND_ADDR").unwrap_or_default()
                    ),
                )
            })?;
        let cors_origins = match vars.get("CORS_ALLOWED_ORIGINS").unwrap_or("*") {
            "*" => CorsOrigins::Any,
            list => CorsOrigins::List(
                list.split(',')
                    .map(|origin| origin.trim().to_owned())
                    .filter(|origin| !origin.is_empty())
                    .collect(),
            ),
        };
        Ok(Self {
            bind_addr,
            max_body_bytes: vars.ranged("MAX_BODY_BYTES", 64 * 1024, 1..=16 << 20)?,
            cors_origins,
            workers: vars.ranged("HTTP_WORKERS", 0, 0..=256)?,
            shutdown_timeout: vars.secs("SHUTDOWN_TIMEOUT_SECS", 30, 0..=3600)?,
        })
    }
}

impl CloudSettings {
    pub(super) fn from_vars(
        vars: &Vars,
        environment: Environment,
        http: &HttpSettings,
    ) -> Result<Self, ConfigError> {
        let default = match environment {
            Environment::Local | Environment::Testing => "local",
            _ => "aws",
        };
        let provider = match vars.get("CLOUD_PROVIDER").unwrap_or(default) {
            "aws" => CloudProviderKind::Aws,
            "local" if environment.is_deployed() => {
                return Err(problem(
                    "CLOUD_PROVIDER",
                    format!("\"local\" is refused in {}", environment.as_str()),
                ));
            }
            "local" => CloudProviderKind::Local,
            other => {
                return Err(problem(
                    "CLOUD_PROVIDER",
                    format!("invalid value {other:?}: expected aws or local"),
                ));
            }
        };
        let webserver_url = match vars.url("WEBSERVER_URL")? {
            Some(url) => url,
            None => Url::parse(&format!("http://{}", http.bind_addr))
                .map_err(|err| problem("WEBSERVER_URL", err.to_string()))?,
        };
        // Hosts send their bootstrap secret and then their credential to this address.
        if environment.is_deployed() && webserver_url.scheme() != "https" {
            return Err(problem(
                "WEBSERVER_URL",
                format!(
                    "must be https in {} (hosts send their secrets to it), not {}",
                    environment.as_str(),
                    webserver_url.as_str()
                ),
            ));
        }
        Ok(Self {
            provider,
            aws_endpoint_url: vars.url("AWS_ENDPOINT_URL")?,
            aws_instance_type: vars
                .get("AWS_INSTANCE_TYPE_TO_LAUNCH")
                .unwrap_or(defaults::INSTANCE_TYPE)
                .to_owned(),
            aws_instance_profile: vars
                .get("AWS_INSTANCE_PROFILE")
                .unwrap_or("auto_scaling_instance_profile")
                .to_owned(),
            webserver_url,
            branch: vars
                .get("APP_GIT_BRANCH")
                .unwrap_or(environment.as_str())
                .to_owned(),
            local_boot_delay: Duration::from_millis(vars.ranged(
                "LOCAL_BOOT_DELAY_MS",
                1000,
                0..=600_000,
            )?),
            local_mandelbox_capacity: vars.ranged("LOCAL_MANDELBOX_CAPACITY", 8, 0..=1024)?,
            mandelboxes_per_gpu: vars.ranged("MANDELBOXES_PER_GPU", 3, 1..=64)?,
            mandelboxes_per_instance: vars
                .number_in("MANDELBOXES_PER_INSTANCE", 1..=1024)?
                .and_then(|n| i64::try_from(n).ok()),
            local_heartbeat_interval: vars.secs("LOCAL_HEARTBEAT_SECS", 10, 1..=3600)?,
        })
    }
}

/// The least `ORPHAN_GRACE_SECS` in production and staging: a launch in flight (cloud
/// call done, row not yet written) must never look like an orphan, whatever the clock
/// difference with the cloud.
const MIN_DEPLOYED_ORPHAN_GRACE: Duration = Duration::from_secs(60);

impl ScalingSettings {
    pub(super) fn from_vars(vars: &Vars, environment: Environment) -> Result<Self, ConfigError> {
        let orphan_grace =
            vars.secs("ORPHAN_GRACE_SECS", defaults::ORPHAN_GRACE_SECS, 0..=86_400)?;
        if environment.is_deployed() && orphan_grace < MIN_DEPLOYED_ORPHAN_GRACE {
            return Err(problem(
                "ORPHAN_GRACE_SECS",
                format!(
                    "must be at least {} in {}",
                    MIN_DEPLOYED_ORPHAN_GRACE.as_secs(),
                    environment.as_str()
                ),
            ));
        }
        let heartbeat_timeout = vars.secs("HEARTBEAT_TIMEOUT_SECS", 120, 1..=86_400)?;
        let lifecycle_interval = vars.secs("LIFECYCLE_INTERVAL_SECS", 30, 1..=3600)?;
        if lifecycle_interval > heartbeat_timeout {
            return Err(problem(
                "LIFECYCLE_INTERVAL_SECS",
                "must be at most HEARTBEAT_TIMEOUT_SECS: silence is judged by the passes",
            ));
        }
        Ok(Self {
            policy: scaling_policy(vars)?,
            learning: scaling::Learning::default(),
            check_interval: Duration::from_secs(1),
            refusal_counts_for: models::demand::REFUSAL_COUNTS_FOR,
            default_instance_buffer: vars.ranged(
                "DEFAULT_INSTANCE_BUFFER",
                defaults::BUFFER,
                0..=100,
            )?,
            desired_free_mandelboxes: vars.ranged(
                "DESIRED_FREE_MANDELBOXES",
                defaults::DESIRED_FREE,
                0..=100_000,
            )?,
            host_service_port: vars.ranged(
                "HOST_SERVICE_PORT",
                defaults::HOST_SERVICE_PORT,
                1..=65_535,
            )?,
            max_instances_per_region: vars
                .number_in("MAX_INSTANCES_PER_REGION", 0..=100_000)?
                .and_then(|max| u32::try_from(max).ok()),
            autoscale: vars.flag("AUTOSCALE", defaults::AUTOSCALE)?,
            scale_down_interval: vars.secs("SCALE_DOWN_INTERVAL_SECS", 300, 1..=86_400)?,
            lifecycle_interval,
            heartbeat_timeout,
            pre_connection_timeout: vars.secs("PRE_CONNECTION_TIMEOUT_SECS", 900, 1..=86_400)?,
            lingering_timeout: vars.secs("LINGERING_TIMEOUT_SECS", 600, 1..=604_800)?,
            allocation_timeout: vars.secs("ALLOCATION_TIMEOUT_SECS", 90, 1..=86_400)?,
            drain_max_age: vars.secs("DRAIN_MAX_AGE_SECS", 43_200, 1..=2_592_000)?,
            orphan_grace,
            host_private_addresses: vars
                .flag("HOST_PRIVATE_ADDRESSES", !environment.is_deployed())?,
            placement: match vars.get("PLACEMENT").unwrap_or("packed") {
                "packed" => models::instance::PlacementRule::Packed,
                "lifetime" => models::instance::PlacementRule::Lifetime,
                other => {
                    return Err(problem(
                        "PLACEMENT",
                        format!("invalid value {other:?}: expected packed or lifetime"),
                    ));
                }
            },
            session_history_kept: Duration::from_secs(
                86_400 * vars.ranged::<u64>("SESSION_HISTORY_DAYS", 90, 1..=3650)?,
            ),
            prediction_interval: vars.secs("PREDICTION_INTERVAL_SECS", 60, 1..=3600)?,
        })
    }
}

/// `SCALING_POLICY` (`fixed` or `adaptive`) and, for `adaptive`,
/// `DESIRED_FREE_MANDELBOXES_MIN` and `_MAX`, and `ADAPTIVE_SAFETY_SIGMAS`.
fn scaling_policy(vars: &Vars) -> Result<scaling::ScalingPolicy, ConfigError> {
    let min: i64 = vars.ranged("DESIRED_FREE_MANDELBOXES_MIN", 2, 0..=100_000)?;
    let max: i64 = vars.ranged("DESIRED_FREE_MANDELBOXES_MAX", 100, 0..=100_000)?;
    let margin = vars.parsed("ADAPTIVE_SAFETY_SIGMAS", scaling::adaptive::Sigmas::DEFAULT)?;
    match vars.get("SCALING_POLICY").unwrap_or("fixed") {
        "fixed" => Ok(scaling::ScalingPolicy::Fixed),
        "adaptive" if min > max => Err(problem(
            "DESIRED_FREE_MANDELBOXES_MIN",
            format!("must be at most DESIRED_FREE_MANDELBOXES_MAX ({max})"),
        )),
        "adaptive" => Ok(scaling::ScalingPolicy::Adaptive { min, max, margin }),
        other => Err(problem(
            "SCALING_POLICY",
            format!("invalid value {other:?}: expected fixed or adaptive"),
        )),
    }
}

//! Settings: one typed struct, loaded once from the environment (and `.env`), passed
//! down. A missing or malformed value is a [`ConfigError`] naming the variable; the
//! values of secrets are never echoed, and secrets cannot be printed.

mod sections;
mod vars;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use api::CorsOrigins;
use assignment::RegionNeighbours;
use auth::AdminClaim;
use secrecy::SecretString;
use url::Url;

use vars::problem;
pub use vars::{ConfigError, Vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Staging,
    Development,
    Testing,
    Local,
}

impl Environment {
    /// `ENVIRONMENT`, which must be set: a forgotten variable in production must not
    /// mean `local`, which trusts the development key and the simulated cloud.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        if vars.get("ENVIRONMENT").is_none() {
            return Err(problem(
                "ENVIRONMENT",
                "required: production, staging, development, testing or local",
            ));
        }
        Self::from_vars_or_local(vars)
    }

    /// `ENVIRONMENT`, `local` when unset: for commands that serve nothing and launch
    /// nothing (`dev-token`).
    pub fn from_vars_or_local(vars: &Vars) -> Result<Self, ConfigError> {
        match vars.get("ENVIRONMENT").unwrap_or("local") {
            "production" => Ok(Self::Production),
            "staging" => Ok(Self::Staging),
            "development" => Ok(Self::Development),
            "testing" => Ok(Self::Testing),
            "local" => Ok(Self::Local),
            other => Err(problem(
                "ENVIRONMENT",
                format!(
                    "invalid value {other:?}: expected production, staging, development, \
                     testing or local"
                ),
            )),
        }
    }

    /// Production and staging serve real users: no local conveniences there.
    pub fn is_deployed(self) -> bool {
        matches!(self, Self::Production | Self::Staging)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Staging => "staging",
            Self::Development => "development",
            Self::Testing => "testing",
            Self::Local => "local",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_SECS`: the server cancels a statement after this.
    pub statement_timeout: Duration,
}

impl DatabaseSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let url = vars.get("DATABASE_URL").ok_or_else(|| {
            problem(
                "DATABASE_URL",
                "required, e.g. postgres://user:password@host/db",
            )
        })?;
        // The URL may hold a password: never echo it.
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(problem(
                "DATABASE_URL",
                "expected a postgres:// or postgresql:// URL",
            ));
        }
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            pool_size: vars.ranged("DATABASE_POOL_SIZE", 16, 1..=1000)?,
            connect_timeout: vars.secs("DATABASE_CONNECT_TIMEOUT_SECS", 5, 1..=300)?,
            statement_timeout: vars.secs("DATABASE_STATEMENT_TIMEOUT_SECS", 10, 1..=3600)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The identity provider's key set: `JWKS_URL`, or derived from `AUTH0_DOMAIN`.
    pub jwks_url: Option<Url>,
    pub audience: String,
    pub issuer: Option<String>,
    pub stripe_customer_id_claim: String,
    /// `ADMIN_CLAIM`: the claim whose `admin` makes a caller an admin.
    pub admin_claim: AdminClaim,
    pub jwks_min_refresh: Duration,
    /// Whether tokens signed by the local development key are accepted.
    pub accept_dev_tokens: bool,
    /// Where the development key lives.
    pub local_data_dir: PathBuf,
}

impl AuthSettings {
    pub fn from_vars(vars: &Vars, environment: Environment) -> Result<Self, ConfigError> {
        let domain = vars.get("AUTH0_DOMAIN");
        let jwks_url = match (vars.url("JWKS_URL")?, domain) {
            (Some(url), _) => Some(url),
            (None, Some(domain)) => {
                let url = format!("https://{domain}/.well-known/jwks.json");
                Some(Url::parse(&url).map_err(|err| {
                    problem("AUTH0_DOMAIN", format!("invalid domain {domain:?}: {err}"))
                })?)
            }
            (None, None) => None,
        };
        let accept_dev_tokens = match environment {
            Environment::Local => true,
            Environment::Testing => jwks_url.is_none(),
            _ => false,
        };
        if jwks_url.is_none() && !accept_dev_tokens {
            return Err(problem(
                "JWKS_URL",
                format!("required in {} (or set AUTH0_DOMAIN)", environment.as_str()),
            ));
        }
        let admin_claim = match vars.get("ADMIN_CLAIM") {
            None => AdminClaim::default(),
            Some(value) => AdminClaim::parse(value).ok_or_else(|| {
                problem(
                    "ADMIN_CLAIM",
                    format!("{value:?} is neither \"scope\" nor \"permissions\""),
                )
            })?,
        };
        let issuer = vars
            .get("JWT_ISSUER")
            .map(str::to_owned)
            .or_else(|| domain.map(|domain| format!("https://{domain}/")));
        Ok(Self {
            jwks_url,
            audience: vars
                .get("JWT_AUDIENCE")
                .unwrap_or("https://api.fractal.co")
                .to_owned(),
            issuer,
            stripe_customer_id_claim: vars
                .get("STRIPE_CUSTOMER_ID_CLAIM")
                .unwrap_or("https://api.fractal.co/stripe_customer_id")
                .to_owned(),
            admin_claim,
            jwks_min_refresh: vars.secs("JWKS_MIN_REFRESH_SECS", 30, 0..=86_400)?,
            accept_dev_tokens,
            local_data_dir: PathBuf::from(vars.get("LOCAL_DATA_DIR").unwrap_or(".local")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub bind_addr: SocketAddr,
    pub max_body_bytes: usize,
    pub cors_origins: CorsOrigins,
    pub workers: usize,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudProviderKind {
    Aws,
    Local,
}

#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub provider: CloudProviderKind,
    pub aws_endpoint_url: Option<Url>,
    pub aws_instance_type: String,
    pub aws_instance_profile: String,
    /// `APP_GIT_BRANCH`: the branch part of instance names (default: the environment).
    pub branch: String,
    /// `LOCAL_BOOT_DELAY_MS`: how long a simulated instance takes to boot (local only).
    pub local_boot_delay: Duration,
    /// `LOCAL_MANDELBOX_CAPACITY`: slots each simulated host registers (local only).
    pub local_mandelbox_capacity: i64,
    /// `MANDELBOXES_PER_GPU`: with AWS, an instance type's mandelboxes per GPU (fewer
    /// when its vCPUs run out first).
    pub mandelboxes_per_gpu: i64,
    /// `MANDELBOXES_PER_INSTANCE`: how many an instance launched holds, whatever its
    /// type (`None`: the provider says).
    pub mandelboxes_per_instance: Option<i64>,
    /// `LOCAL_HEARTBEAT_SECS`: how often simulated hosts heartbeat (local only).
    pub local_heartbeat_interval: Duration,
    /// What hosts are told to call back.
    pub webserver_url: Url,
}

#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// Required in production and staging.
    pub secret: Option<SecretString>,
    pub api_base: Url,
    /// How long a subscription answer is reused.
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub sendgrid_api_key: Option<SecretString>,
    /// `SENDGRID_API_BASE`: SendGrid's API (or a stand-in).
    pub sendgrid_api_base: Url,
    /// May carry a password.
    pub smtp_url: Option<SecretString>,
    pub default_from: String,
    /// `MAIL_TEMPLATE_DIR`: the only directory `file://` templates are read from.
    pub template_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ScalingSettings {
    /// `SCALING_POLICY`, with `DESIRED_FREE_MANDELBOXES_MIN`/`_MAX` for `adaptive`.
    pub policy: scaling::ScalingPolicy,
    /// The spans the adaptive policy learns over (not configurable; the fleet simulator
    /// shortens them with its time scale).
    pub learning: scaling::Learning,
    /// The least time between two capacity checks of one fleet asked for by assignments
    /// in one process (1 s; the fleet simulator shortens it).
    pub check_interval: Duration,
    /// How long a refusal for lack of capacity counts as unmet demand (a minute; the
    /// fleet simulator shortens it).
    pub refusal_counts_for: Duration,
    pub default_instance_buffer: u32,
    pub desired_free_mandelboxes: u32,
    pub host_service_port: u16,
    pub max_instances_per_region: Option<u32>,
    pub autoscale: bool,
    pub scale_down_interval: Duration,
    pub lifecycle_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub pre_connection_timeout: Duration,
    pub lingering_timeout: Duration,
    pub allocation_timeout: Duration,
    /// `DRAIN_MAX_AGE_SECS`: a draining instance is terminated after this, sessions or not.
    pub drain_max_age: Duration,
    /// How old an instance of this deployment that no row records must be before the
    /// periodic pass terminates it.
    pub orphan_grace: Duration,
    /// `HOST_PRIVATE_ADDRESSES`: whether hosts may register private or loopback
    /// addresses (default: outside production and staging).
    pub host_private_addresses: bool,
    /// `PLACEMENT`: which instance with room a mandelbox goes to.
    pub placement: models::instance::PlacementRule,
    /// `SESSION_HISTORY_DAYS`: how long past sessions are kept.
    pub session_history_kept: Duration,
    /// `PREDICTION_INTERVAL_SECS`: how often the prediction job runs
    /// (`PLACEMENT=lifetime`).
    pub prediction_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Assign calls per client address and minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    pub mandelbox_limit_per_user: u32,
    /// `TRUSTED_PROXY_HOPS`: the client is the n-th address from the right of
    /// `X-Forwarded-For` (0: the connection's peer).
    pub trusted_proxy_hops: u32,
}

/// Everything `webserver serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub log_format: LogFormat,
    pub auto_migrate: bool,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    pub cloud: CloudSettings,
    pub stripe: StripeSettings,
    pub mail: MailSettings,
    pub scaling: ScalingSettings,
    pub limits: LimitSettings,
    pub neighbours: RegionNeighbours,
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let environment = Environment::from_vars(vars)?;
        let http = HttpSettings::from_vars(vars)?;
        Ok(Self {
            environment,
            log_format: log_format(vars)?,
            auto_migrate: vars.flag("AUTO_MIGRATE", false)?,
            database: DatabaseSettings::from_vars(vars)?,
            auth: AuthSettings::from_vars(vars, environment)?,
            cloud: CloudSettings::from_vars(vars, environment, &http)?,
            http,
            stripe: StripeSettings::from_vars(vars, environment)?,
            mail: MailSettings {
                sendgrid_api_key: vars.secret("SENDGRID_API_KEY"),
                sendgrid_api_base: match vars.url("SENDGRID_API_BASE")? {
                    Some(url) => url,
                    None => Url::parse("https://api.sendgrid.com/")
                        .map_err(|err| problem("SENDGRID_API_BASE", err.to_string()))?,
                },
                smtp_url: vars.secret("SMTP_URL"),
                default_from: vars
                    .get("MAIL_DEFAULT_FROM")
                    .unwrap_or("noreply@fractal.co")
                    .to_owned(),
                template_dir: vars.get("MAIL_TEMPLATE_DIR").map(PathBuf::from),
            },
            scaling: ScalingSettings::from_vars(vars, environment)?,
            limits: LimitSettings {
                rate_limit_per_minute: vars.ranged("RATE_LIMIT_PER_MINUTE", 10, 0..=1_000_000)?,
                mandelbox_limit_per_user: vars.ranged("MANDELBOX_LIMIT_PER_USER", 1, 1..=1000)?,
                trusted_proxy_hops: trusted_proxy_hops(vars)?,
            },
            neighbours: match vars.get("REGION_NEIGHBOURS") {
                None => RegionNeighbours::default(),
                Some(json) => RegionNeighbours::from_json(json)
                    .map_err(|err| problem("REGION_NEIGHBOURS", error_chain(&err)))?,
            },
        })
    }
}

/// `TRUSTED_PROXY_HOPS` (0 to 10), or 1 for the older `TRUST_X_FORWARDED_FOR=true`.
fn trusted_proxy_hops(vars: &Vars) -> Result<u32, ConfigError> {
    let legacy = u32::from(vars.flag("TRUST_X_FORWARDED_FOR", false)?);
    vars.ranged("TRUSTED_PROXY_HOPS", legacy, 0..=10)
}

/// An error and its causes, on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        line.push_str(": ");
        line.push_str(&err.to_string());
        cause = err.source();
    }
    line
}

pub fn log_format(vars: &Vars) -> Result<LogFormat, ConfigError> {
    match vars.get("LOG_FORMAT").unwrap_or("text") {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(problem(
            "LOG_FORMAT",
            format!("invalid value {other:?}: expected text or json"),
        )),
    }
}

#[cfg(test)]
mod tests;

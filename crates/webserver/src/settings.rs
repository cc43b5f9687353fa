//! Settings: one typed struct, loaded once from the environment (and `.env`), passed
//! down. A missing or malformed value is a [`ConfigError`] naming the variable; the
//! values of secrets are never echoed, and secrets cannot be printed.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use api::CorsOrigins;
use scaling::RegionNeighbours;
use secrecy::SecretString;
use url::Url;

/// A variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn problem(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// The variables settings are read from. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    pub fn from_env() -> Self {
        Self(std::env::vars().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn parse<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|err| problem(name, format!("invalid value {value:?}: {err}")))
            })
            .transpose()
    }

    fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse(name)?.unwrap_or(default))
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(problem(
                name,
                format!("invalid value {other:?}: expected true or false"),
            )),
        }
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse_or::<u64>(name, default).map(Duration::from_secs)
    }

    fn url(&self, name: &'static str) -> Result<Option<Url>, ConfigError> {
        self.get(name)
            .map(|value| {
                let url = Url::parse(value)
                    .map_err(|err| problem(name, format!("invalid URL {value:?}: {err}")))?;
                match url.scheme() {
                    "http" | "https" => Ok(url),
                    other => Err(problem(
                        name,
                        format!("unsupported scheme {other:?}: expected http or https"),
                    )),
                }
            })
            .transpose()
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name)
            .map(|value| SecretString::from(value.to_owned()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Staging,
    Development,
    Testing,
    Local,
}

impl Environment {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
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
        let pool_size = vars.parse_or("DATABASE_POOL_SIZE", 16u32)?;
        if pool_size == 0 {
            return Err(problem("DATABASE_POOL_SIZE", "must be at least 1"));
        }
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            pool_size,
            connect_timeout: vars.secs("DATABASE_CONNECT_TIMEOUT_SECS", 5)?,
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
            jwks_min_refresh: vars.secs("JWKS_MIN_REFRESH_SECS", 30)?,
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
}

#[derive(Debug, Clone)]
pub struct ScalingSettings {
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
    /// How old an instance of this deployment that no row records must be before the
    /// periodic pass terminates it.
    pub orphan_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Assign calls per client address and minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    pub mandelbox_limit_per_user: u32,
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
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
            },
            scaling: ScalingSettings::from_vars(vars, environment)?,
            limits: LimitSettings {
                rate_limit_per_minute: vars.parse_or("RATE_LIMIT_PER_MINUTE", 10)?,
                mandelbox_limit_per_user: vars.parse_or("MANDELBOX_LIMIT_PER_USER", 1)?,
                trust_forwarded_for: vars.flag("TRUST_X_FORWARDED_FOR", false)?,
            },
            neighbours: match vars.get("REGION_NEIGHBOURS") {
                None => RegionNeighbours::default(),
                Some(json) => RegionNeighbours::from_json(json)
                    .map_err(|err| problem("REGION_NEIGHBOURS", err))?,
            },
        })
    }
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

impl StripeSettings {
    fn from_vars(vars: &Vars, environment: Environment) -> Result<Self, ConfigError> {
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
            cache_ttl: vars.secs("STRIPE_CACHE_SECS", 30)?,
        })
    }
}

impl HttpSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
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
        let max_body_bytes = vars.parse_or("MAX_BODY_BYTES", 64 * 1024usize)?;
        if max_body_bytes == 0 {
            return Err(problem("MAX_BODY_BYTES", "must be at least 1"));
        }
        Ok(Self {
            bind_addr,
            max_body_bytes,
            cors_origins,
            workers: vars.parse_or("HTTP_WORKERS", 0usize)?,
            shutdown_timeout: vars.secs("SHUTDOWN_TIMEOUT_SECS", 30)?,
        })
    }
}

impl CloudSettings {
    fn from_vars(
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
        Ok(Self {
            provider,
            aws_endpoint_url: vars.url("AWS_ENDPOINT_URL")?,
            aws_instance_type: vars
                .get("AWS_INSTANCE_TYPE_TO_LAUNCH")
                .unwrap_or("g4dn.xlarge")
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
            local_boot_delay: Duration::from_millis(vars.parse_or("LOCAL_BOOT_DELAY_MS", 1000)?),
            local_mandelbox_capacity: vars.parse_or("LOCAL_MANDELBOX_CAPACITY", 8)?,
            local_heartbeat_interval: match vars.secs("LOCAL_HEARTBEAT_SECS", 10)? {
                zero if zero.is_zero() => {
                    return Err(problem("LOCAL_HEARTBEAT_SECS", "must be at least 1"));
                }
                interval => interval,
            },
        })
    }
}

/// The least `ORPHAN_GRACE_SECS` in production and staging: a launch in flight (cloud
/// call done, row not yet written) must never look like an orphan, whatever the clock
/// difference with the cloud.
const MIN_DEPLOYED_ORPHAN_GRACE: Duration = Duration::from_secs(60);

impl ScalingSettings {
    fn from_vars(vars: &Vars, environment: Environment) -> Result<Self, ConfigError> {
        let orphan_grace = vars.secs("ORPHAN_GRACE_SECS", 600)?;
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
        Ok(Self {
            default_instance_buffer: vars.parse_or("DEFAULT_INSTANCE_BUFFER", 1)?,
            desired_free_mandelboxes: vars.parse_or("DESIRED_FREE_MANDELBOXES", 10)?,
            host_service_port: vars.parse_or("HOST_SERVICE_PORT", 4678)?,
            max_instances_per_region: vars.parse("MAX_INSTANCES_PER_REGION")?,
            autoscale: vars.flag("AUTOSCALE", true)?,
            scale_down_interval: vars.secs("SCALE_DOWN_INTERVAL_SECS", 300)?,
            lifecycle_interval: vars.secs("LIFECYCLE_INTERVAL_SECS", 30)?,
            heartbeat_timeout: vars.secs("HEARTBEAT_TIMEOUT_SECS", 120)?,
            pre_connection_timeout: vars.secs("PRE_CONNECTION_TIMEOUT_SECS", 900)?,
            lingering_timeout: vars.secs("LINGERING_TIMEOUT_SECS", 600)?,
            allocation_timeout: vars.secs("ALLOCATION_TIMEOUT_SECS", 90)?,
            orphan_grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().copied().collect()
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1/db");

    #[test]
    fn defaults_follow_the_spec() {
        let settings = Settings::from_vars(&vars(&[DB])).unwrap();
        assert_eq!(settings.environment, Environment::Local);
        assert_eq!(settings.http.bind_addr.to_string(), "127.0.0.1:7730");
        assert_eq!(settings.auth.audience, "https://api.fractal.co");
        assert!(settings.auth.accept_dev_tokens);
        assert_eq!(settings.cloud.provider, CloudProviderKind::Local);
        assert_eq!(settings.cloud.aws_instance_type, "g4dn.xlarge");
        assert_eq!(
            settings.cloud.webserver_url.as_str(),
            "http://127.0.0.1:7730/"
        );
        assert_eq!(settings.mail.default_from, "noreply@fractal.co");
        assert_eq!(settings.scaling.host_service_port, 4678);
        assert_eq!(settings.scaling.desired_free_mandelboxes, 10);
        assert_eq!(settings.scaling.default_instance_buffer, 1);
        assert_eq!(settings.scaling.heartbeat_timeout, Duration::from_secs(120));
        assert_eq!(settings.scaling.allocation_timeout, Duration::from_secs(90));
        assert_eq!(settings.scaling.orphan_grace, Duration::from_secs(600));
        assert!(settings.scaling.autoscale);
        assert_eq!(settings.limits.rate_limit_per_minute, 10);
        assert_eq!(settings.limits.mandelbox_limit_per_user, 1);
        assert_eq!(settings.stripe.api_base.as_str(), "https://api.stripe.com/");
    }

    #[test]
    fn missing_or_malformed_values_name_their_variable() {
        let err = Settings::from_vars(&vars(&[])).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        let err = Settings::from_vars(&vars(&[DB, ("BIND_ADDR", "nowhere")])).unwrap_err();
        assert_eq!(err.var, "BIND_ADDR");
        let err = Settings::from_vars(&vars(&[DB, ("ENVIRONMENT", "prod")])).unwrap_err();
        assert_eq!(err.var, "ENVIRONMENT");
        let err = Settings::from_vars(&vars(&[DB, ("AUTOSCALE", "maybe")])).unwrap_err();
        assert_eq!(err.var, "AUTOSCALE");
        let err = Settings::from_vars(&vars(&[DB, ("HEARTBEAT_TIMEOUT_SECS", "-1")])).unwrap_err();
        assert_eq!(err.var, "HEARTBEAT_TIMEOUT_SECS");
        let err = Settings::from_vars(&vars(&[DB, ("JWKS_URL", "ftp://x")])).unwrap_err();
        assert_eq!(err.var, "JWKS_URL");
        let err = Settings::from_vars(&vars(&[DB, ("REGION_NEIGHBOURS", "{\"us-east-1\": 1}")]))
            .unwrap_err();
        assert_eq!(err.var, "REGION_NEIGHBOURS");
    }

    #[test]
    fn a_malformed_database_url_is_not_echoed() {
        let err =
            Settings::from_vars(&vars(&[("DATABASE_URL", "mysql://u:hunter2@h/db")])).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_cannot_be_printed() {
        let settings = Settings::from_vars(&vars(&[
            DB,
            ("STRIPE_SECRET", "sk_live_abc"),
            ("SENDGRID_API_KEY", "SG.xyz"),
            ("SMTP_URL", "smtp://u:pw-smtp@h:25"),
        ]))
        .unwrap();
        let printed = format!("{settings:?}");
        for secret in ["hunter2", "sk_live_abc", "SG.xyz", "pw-smtp"] {
            assert!(!printed.contains(secret), "{secret} printed");
        }
        assert_eq!(
            settings.stripe.secret.unwrap().expose_secret(),
            "sk_live_abc"
        );
    }

    #[test]
    fn deployed_environments_refuse_local_conveniences() {
        for env in ["production", "staging"] {
            let err = Settings::from_vars(&vars(&[DB, ("ENVIRONMENT", env)])).unwrap_err();
            assert_eq!(err.var, "JWKS_URL", "{env} needs an identity provider");
            let err = Settings::from_vars(&vars(&[
                DB,
                ("ENVIRONMENT", env),
                ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
            ]))
            .unwrap_err();
            assert_eq!(err.var, "STRIPE_SECRET", "{env} needs Stripe");

            let err = Settings::from_vars(&vars(&[
                DB,
                ("ENVIRONMENT", env),
                ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
                ("STRIPE_SECRET", "sk_live_x"),
                ("CLOUD_PROVIDER", "local"),
            ]))
            .unwrap_err();
            assert_eq!(err.var, "CLOUD_PROVIDER");

            let err = Settings::from_vars(&vars(&[
                DB,
                ("ENVIRONMENT", env),
                ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
                ("STRIPE_SECRET", "sk_live_x"),
                ("ORPHAN_GRACE_SECS", "59"),
            ]))
            .unwrap_err();
            assert_eq!(err.var, "ORPHAN_GRACE_SECS");
            assert!(err.to_string().contains("at least 60"), "{err}");

            let settings = Settings::from_vars(&vars(&[
                DB,
                ("ENVIRONMENT", env),
                ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
                ("STRIPE_SECRET", "sk_live_x"),
            ]))
            .unwrap();
            assert!(!settings.auth.accept_dev_tokens);
            assert_eq!(settings.cloud.provider, CloudProviderKind::Aws);
            assert_eq!(
                settings.auth.jwks_url.unwrap().as_str(),
                "https://fractal.us.auth0.com/.well-known/jwks.json"
            );
            assert_eq!(
                settings.auth.issuer.as_deref(),
                Some("https://fractal.us.auth0.com/")
            );
        }
    }

    #[test]
    fn testing_accepts_dev_tokens_only_without_a_jwks() {
        let env = ("ENVIRONMENT", "testing");
        let without = Settings::from_vars(&vars(&[DB, env])).unwrap();
        assert!(without.auth.accept_dev_tokens);
        let with = Settings::from_vars(&vars(&[DB, env, ("JWKS_URL", "http://127.0.0.1:1/jwks")]))
            .unwrap();
        assert!(!with.auth.accept_dev_tokens);
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list() {
        let settings = Settings::from_vars(&vars(&[
            DB,
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
        ]))
        .unwrap();
        assert_eq!(
            settings.http.cors_origins,
            CorsOrigins::List(vec![
                "https://a.example".to_owned(),
                "https://b.example".to_owned()
            ])
        );
    }
}

//! Settings from variables.
use secrecy::ExposeSecret;

use super::*;

/// `pairs`, in the local environment unless they name one.
fn vars(pairs: &[(&str, &str)]) -> Vars {
    let named = pairs.iter().any(|(name, _)| *name == "ENVIRONMENT");
    let local = (!named).then_some(("ENVIRONMENT", "local"));
    pairs.iter().copied().chain(local).collect()
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
    let err =
        Settings::from_vars(&vars(&[DB, ("REGION_NEIGHBOURS", "{\"us-east-1\": 1}")])).unwrap_err();
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
            ("WEBSERVER_URL", "https://api.example.com"),
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
            ("WEBSERVER_URL", "https://api.example.com"),
            ("ORPHAN_GRACE_SECS", "59"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "ORPHAN_GRACE_SECS");
        assert!(err.to_string().contains("at least 60"), "{err}");

        // Hosts send their secrets to WEBSERVER_URL: https only.
        for url in [None, Some("http://api.example.com")] {
            let mut pairs = vec![
                DB,
                ("ENVIRONMENT", env),
                ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
                ("STRIPE_SECRET", "sk_live_x"),
            ];
            pairs.extend(url.map(|url| ("WEBSERVER_URL", url)));
            let err = Settings::from_vars(&vars(&pairs)).unwrap_err();
            assert_eq!(err.var, "WEBSERVER_URL", "{env} {url:?}");
            assert!(err.to_string().contains("must be https"), "{err}");
        }

        let settings = Settings::from_vars(&vars(&[
            DB,
            ("ENVIRONMENT", env),
            ("AUTH0_DOMAIN", "fractal.us.auth0.com"),
            ("STRIPE_SECRET", "sk_live_x"),
            ("WEBSERVER_URL", "https://api.example.com"),
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
    let with =
        Settings::from_vars(&vars(&[DB, env, ("JWKS_URL", "http://127.0.0.1:1/jwks")])).unwrap();
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

#[test]
fn serving_needs_an_explicit_environment() {
    let unset: Vars = [DB].into_iter().collect();
    let err = Settings::from_vars(&unset).unwrap_err();
    assert_eq!(err.var, "ENVIRONMENT");
    // Minting a development token does not: it serves nothing.
    assert_eq!(
        Environment::from_vars_or_local(&unset).unwrap(),
        Environment::Local
    );
}

#[test]
fn numbers_out_of_their_range_name_their_variable() {
    for (var, value) in [
        ("LIFECYCLE_INTERVAL_SECS", "0"),
        ("SCALE_DOWN_INTERVAL_SECS", "0"),
        ("DATABASE_CONNECT_TIMEOUT_SECS", "0"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_SIZE", "100000"),
        ("HOST_SERVICE_PORT", "70000"),
        ("TRUSTED_PROXY_HOPS", "11"),
        ("LOCAL_HEARTBEAT_SECS", "0"),
        ("MAX_BODY_BYTES", "0"),
        ("DRAIN_MAX_AGE_SECS", "0"),
        ("MANDELBOX_LIMIT_PER_USER", "0"),
    ] {
        let err = Settings::from_vars(&vars(&[DB, (var, value)])).unwrap_err();
        assert_eq!(err.var, var, "{var}={value}: {err}");
        assert!(err.to_string().contains("expected"), "{err}");
    }
    // The lifecycle must pass at least once per heartbeat timeout.
    let err = Settings::from_vars(&vars(&[
        DB,
        ("HEARTBEAT_TIMEOUT_SECS", "10"),
        ("LIFECYCLE_INTERVAL_SECS", "20"),
    ]))
    .unwrap_err();
    assert_eq!(err.var, "LIFECYCLE_INTERVAL_SECS");
}

#[test]
fn trusted_proxy_hops_default_to_none_and_follow_the_older_flag() {
    let none = Settings::from_vars(&vars(&[DB])).unwrap();
    assert_eq!(none.limits.trusted_proxy_hops, 0);
    let legacy = Settings::from_vars(&vars(&[DB, ("TRUST_X_FORWARDED_FOR", "true")])).unwrap();
    assert_eq!(legacy.limits.trusted_proxy_hops, 1);
    let two = Settings::from_vars(&vars(&[DB, ("TRUSTED_PROXY_HOPS", "2")])).unwrap();
    assert_eq!(two.limits.trusted_proxy_hops, 2);
}

#[test]
fn admin_comes_from_scope_unless_permissions_is_chosen() {
    let settings = Settings::from_vars(&vars(&[DB])).unwrap();
    assert_eq!(settings.auth.admin_claim, AdminClaim::Scope);
    let settings = Settings::from_vars(&vars(&[DB, ("ADMIN_CLAIM", "permissions")])).unwrap();
    assert_eq!(settings.auth.admin_claim, AdminClaim::Permissions);
    let err = Settings::from_vars(&vars(&[DB, ("ADMIN_CLAIM", "roles")])).unwrap_err();
    assert_eq!(err.var, "ADMIN_CLAIM");
}

#[test]
fn private_host_addresses_are_allowed_only_off_deployments_unless_set() {
    let settings = Settings::from_vars(&vars(&[DB])).unwrap();
    assert!(settings.scaling.host_private_addresses);
    let strict = Settings::from_vars(&vars(&[DB, ("HOST_PRIVATE_ADDRESSES", "false")])).unwrap();
    assert!(!strict.scaling.host_private_addresses);
    let err = Settings::from_vars(&vars(&[DB, ("HOST_PRIVATE_ADDRESSES", "x")])).unwrap_err();
    assert_eq!(err.var, "HOST_PRIVATE_ADDRESSES");
}

/// The operations guide's configuration table names every variable the settings read,
/// and only those, with the defaults the code has where the table gives a plain number
/// or flag.
#[test]
fn the_configuration_table_matches_the_settings_code() {
    const GUIDE: &str = include_str!("../../../../docs/operations.md");
    // Read by others than `Settings`: the log filter by the tracing subscriber.
    const READ_ELSEWHERE: [&str; 1] = ["RUST_LOG"];
    let asked = {
        let configurations: [&[(&str, &str)]; 3] = [
            &[DB],
            &[
                DB,
                ("CLOUD_PROVIDER", "aws"),
                ("ENVIRONMENT", "development"),
            ],
            &[
                DB,
                ("ENVIRONMENT", "production"),
                ("AUTH0_DOMAIN", "example.auth0.com"),
                ("STRIPE_SECRET", "sk_test"),
                ("WEBSERVER_URL", "https://api.example.com"),
                ("SENDGRID_API_KEY", "key"),
            ],
        ];
        let mut asked = std::collections::BTreeMap::new();
        for pairs in configurations {
            let vars = vars(pairs);
            let _ = Settings::from_vars(&vars);
            for (name, default) in vars.asked() {
                let known: &mut Option<String> = asked.entry(name).or_default();
                if default.is_some() {
                    *known = default;
                }
            }
        }
        asked
    };
    let table = GUIDE
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a configuration section");
    let mut documented = std::collections::BTreeSet::new();
    let mut compared = 0;
    for row in table.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let names: Vec<&str> = cells[0]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        documented.extend(names.iter().map(|name| (*name).to_owned()));
        let defaults: Vec<&str> = cells
            .get(1)
            .map_or(Vec::new(), |cell| cell.split(", ").collect());
        if defaults.len() != names.len() {
            continue;
        }
        for (name, default) in names.iter().zip(defaults) {
            let said = default.split_whitespace().next().unwrap_or_default();
            let plain = said.parse::<u64>().is_ok() || said == "true" || said == "false";
            if let (true, Some(Some(code))) = (plain, asked.get(*name)) {
                assert_eq!(said, code, "{name}: the table says {said}, the code {code}");
                compared += 1;
            }
        }
    }
    for name in asked.keys() {
        assert!(
            documented.contains(name),
            "{name} is read but not in docs/operations.md's configuration table"
        );
    }
    for name in &documented {
        assert!(
            asked.contains_key(name) || READ_ELSEWHERE.contains(&name.as_str()),
            "{name} is in the configuration table but no setting reads it"
        );
    }
    // The comparison of defaults must have compared something.
    assert!(compared >= 25, "only {compared} defaults compared");
}

//! What an instance is told at launch (SPEC §6): its name, the webserver to register
//! with, and a single-use bootstrap secret. On EC2 this travels as user data: a shell
//! script that writes an env file for the host service; the local provider reads the
//! same text back.

use domain::{InstanceName, InvalidValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Where the user-data script leaves the host service's settings.
pub const HOST_ENV_FILE: &str = "/etc/fractal/host-service.env";

const INSTANCE_NAME: &str = "INSTANCE_NAME";
const WEBSERVER_URL: &str = "WEBSERVER_URL";
const BOOTSTRAP_SECRET: &str = "BOOTSTRAP_SECRET";

/// The launch-time settings of one instance.
#[derive(Clone)]
pub struct BootConfig {
    pub instance_name: InstanceName,
    pub webserver_url: Url,
    pub bootstrap_secret: SecretString,
}

impl std::fmt::Debug for BootConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootConfig")
            .field("instance_name", &self.instance_name)
            .field("webserver_url", &self.webserver_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootConfigError {
    #[error("{0} must be printable ASCII without spaces or quotes")]
    Unprintable(&'static str),
    #[error("the user data has no {0}")]
    Missing(&'static str),
    #[error("the user data's WEBSERVER_URL is not a URL")]
    BadUrl(#[source] url::ParseError),
    #[error("the user data's INSTANCE_NAME is not an instance name")]
    BadName(#[source] InvalidValue),
}

/// Values go into a quoted heredoc and an env file: nothing that could end either.
fn plain(name: &'static str, value: &str) -> Result<(), BootConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(BootConfigError::Unprintable(name))
    }
}

impl BootConfig {
    /// The user-data script. It is secret: it carries the bootstrap secret.
    pub fn to_user_data(&self) -> Result<SecretString, BootConfigError> {
        plain(INSTANCE_NAME, self.instance_name.as_str())?;
        plain(WEBSERVER_URL, self.webserver_url.as_str())?;
        plain(BOOTSTRAP_SECRET, self.bootstrap_secret.expose_secret())?;
        let script = format!(
            "#!/bin/sh\n\
             # The host service reads this file to register with the webserver.\n\
             umask 077\n\
             mkdir -p /etc/fractal\n\
             cat > {HOST_ENV_FILE} <<'END_OF_HOST_ENV'\n\
             {INSTANCE_NAME}={}\n\
             {WEBSERVER_URL}={}\n\
             {BOOTSTRAP_SECRET}={}\n\
             END_OF_HOST_ENV\n",
            self.instance_name,
            self.webserver_url,
            self.bootstrap_secret.expose_secret(),
        );
        Ok(SecretString::from(script))
    }

    /// Reads back what [`BootConfig::to_user_data`] wrote.
    pub fn from_user_data(text: &str) -> Result<Self, BootConfigError> {
        let value = |key: &'static str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .filter(|value| !value.is_empty())
                .ok_or(BootConfigError::Missing(key))
        };
        let instance_name =
            InstanceName::parse(value(INSTANCE_NAME)?).map_err(BootConfigError::BadName)?;
        let webserver_url = Url::parse(value(WEBSERVER_URL)?).map_err(BootConfigError::BadUrl)?;
        let bootstrap_secret = SecretString::from(value(BOOTSTRAP_SECRET)?.to_owned());
        Ok(Self {
            instance_name,
            webserver_url,
            bootstrap_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn config(secret: &str) -> BootConfig {
        BootConfig {
            instance_name: InstanceName::parse("us-east-1-main-0123456-uid-abcdefghij").unwrap(),
            webserver_url: Url::parse("https://api.example.com/").unwrap(),
            bootstrap_secret: SecretString::from(secret.to_owned()),
        }
    }

    #[test]
    fn user_data_round_trips() {
        let user_data = config("s3cr3t-Value_1").to_user_data().unwrap();
        let text = user_data.expose_secret();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(text.contains("BOOTSTRAP_SECRET=s3cr3t-Value_1\n"));
        let back = BootConfig::from_user_data(text).unwrap();
        assert_eq!(
            back.instance_name.as_str(),
            "us-east-1-main-0123456-uid-abcdefghij"
        );
        assert_eq!(back.webserver_url.as_str(), "https://api.example.com/");
        assert_eq!(back.bootstrap_secret.expose_secret(), "s3cr3t-Value_1");
    }

    #[test]
    fn values_that_could_break_the_script_are_refused() {
        for secret in ["", "a b", "a'b", "a\nb", "a\"b"] {
            assert_eq!(
                config(secret).to_user_data().unwrap_err(),
                BootConfigError::Unprintable(BOOTSTRAP_SECRET),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn user_data_without_a_field_is_refused() {
        assert_eq!(
            BootConfig::from_user_data("INSTANCE_NAME=a\nWEBSERVER_URL=http://x/\n").unwrap_err(),
            BootConfigError::Missing(BOOTSTRAP_SECRET)
        );
    }

    #[test]
    fn debug_output_leaves_the_secret_out() {
        let shown = format!("{:?}", config("topsecretvalue"));
        assert!(!shown.contains("topsecretvalue"), "{shown}");
    }
}

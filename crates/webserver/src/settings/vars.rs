//! Reading variables: each numeric one within its documented range, every refusal one
//! line naming the variable.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// A variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

pub(super) fn problem(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// The variables settings are read from. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, String>,
    /// Every name the settings asked for, with the default they would take (when it
    /// is a plain value): the configuration table is checked against it.
    asked: Arc<Mutex<BTreeMap<String, Option<String>>>>,
}

impl Vars {
    pub fn from_env() -> Self {
        std::env::vars().collect()
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.asked_for(name, None);
        self.values
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn asked_for(&self, name: &str, default: Option<String>) {
        let mut asked = self
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = asked.entry(name.to_owned()).or_default();
        if default.is_some() {
            *entry = default;
        }
    }

    /// Every variable asked for so far (by these variables and their clones), with the
    /// default each would take where it is a plain number or flag.
    pub fn asked(&self) -> BTreeMap<String, Option<String>> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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

    /// A whole number in `range`, if set.
    pub(super) fn number_in(
        &self,
        name: &'static str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.parse::<u64>(name)? else {
            return Ok(None);
        };
        if range.contains(&value) {
            Ok(Some(value))
        } else {
            Err(problem(
                name,
                format!(
                    "{value} is out of range: expected {} to {}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }

    /// A value its own type reads (and checks), `default` when unset.
    pub(super) fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr<Err = String> + Display,
    {
        self.asked_for(name, Some(default.to_string()));
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|err| problem(name, err)),
        }
    }

    /// A whole number in `range`, `default` when unset.
    pub(super) fn ranged<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<u64>,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<u64> + Display,
    {
        self.asked_for(name, Some(default.to_string()));
        match self.number_in(name, range)? {
            None => Ok(default),
            Some(value) => {
                T::try_from(value).map_err(|_| problem(name, format!("{value} does not fit")))
            }
        }
    }

    /// Seconds in `range`, `default` when unset.
    pub(super) fn secs(
        &self,
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.ranged(name, default, range).map(Duration::from_secs)
    }

    pub(super) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.asked_for(name, Some(default.to_string()));
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

    pub(super) fn url(&self, name: &'static str) -> Result<Option<Url>, ConfigError> {
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

    pub(super) fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name)
            .map(|value| SecretString::from(value.to_owned()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            values: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            asked: Arc::default(),
        }
    }
}

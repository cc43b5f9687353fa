//! Identifiers and units as types: a timestamp of unknown unit is how the original
//! system lost days, so every stored time is a [`UnixMillis`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{BigInt, Text};
use serde::{Deserialize, Serialize};

/// A string newtype stored as `varchar`.
macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <String as FromSql<Text, Pg>>::from_sql(bytes).map(Self)
            }
        }
    };
}

/// A value that failed to parse into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

text_newtype!(
    /// A cloud region, e.g. `us-east-1`.
    Region
);
text_newtype!(
    /// An instance's name: `<region>-<branch>-<commit7>-uid-<10 [a-z0-9]>`.
    InstanceName
);
text_newtype!(
    /// A mandelbox's id, a UUID v4 in its hyphenated form.
    MandelboxId
);
text_newtype!(
    /// The user a token was issued to (its `sub` claim).
    UserId
);
text_newtype!(
    /// A machine image id, e.g. `ami-0abc…`.
    AmiId
);
text_newtype!(
    /// The client commit hash an instance serves.
    CommitHash
);

impl Region {
    /// A region name: lowercase ASCII letters, digits and hyphens, e.g. `us-east-1`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let valid = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "invalid region {value:?}: expected a name such as \"us-east-1\""
            )))
        }
    }
}

impl UserId {
    /// A user id: any non-empty string of at most 256 characters.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.is_empty() || value.chars().count() > 256 {
            Err(InvalidValue(
                "invalid user id: expected 1 to 256 characters".to_owned(),
            ))
        } else {
            Ok(Self(value.to_owned()))
        }
    }
}

impl MandelboxId {
    /// A fresh random (v4) id.
    pub fn new_v4() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Parses a UUID, normalising it to its lowercase hyphenated form.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        uuid::Uuid::parse_str(value)
            .map(|id| Self(id.hyphenated().to_string()))
            .map_err(|_| InvalidValue(format!("invalid mandelbox id {value:?}: expected a UUID")))
    }
}

/// A short, non-empty, printable string (AMI ids, commit hashes, instance names).
fn parse_token(kind: &str, value: &str) -> Result<String, InvalidValue> {
    let valid =
        !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(value.to_owned())
    } else {
        Err(InvalidValue(format!(
            "invalid {kind} {value:?}: expected 1 to 128 printable ASCII characters"
        )))
    }
}

impl AmiId {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        parse_token("AMI id", value).map(Self)
    }
}

impl CommitHash {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        parse_token("commit hash", value).map(Self)
    }
}

impl InstanceName {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        parse_token("instance name", value).map(Self)
    }
}

/// A point in time as Unix time in milliseconds, as every table stores it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    AsExpression,
    FromSqlRow,
)]
#[diesel(sql_type = BigInt)]
#[serde(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    /// `last_updated_utc_unix_ms` of an instance never heard from.
    pub const NEVER: Self = Self(-1);

    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time moved back by `duration`, saturating.
    pub fn minus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// This time moved forward by `duration`, saturating.
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }
}

impl From<SystemTime> for UnixMillis {
    fn from(time: SystemTime) -> Self {
        let millis = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self(millis)
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl ToSql<BigInt, Pg> for UnixMillis {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <i64 as ToSql<BigInt, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<BigInt, Pg> for UnixMillis {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <i64 as FromSql<BigInt, Pg>>::from_sql(bytes).map(Self)
    }
}

/// A `varchar` column holding one of a fixed set of names.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AsExpression,
            FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    other => Err(InvalidValue(format!(
                        "invalid {} {other:?}: expected one of {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok(Self::parse(&text)?)
            }
        }
    };
}

text_enum!(
    /// Where an instance is in its life (SPEC §3).
    InstanceStatus {
        PreConnection => "PRE_CONNECTION",
        Active => "ACTIVE",
        Draining => "DRAINING",
        HostServiceUnresponsive => "HOST_SERVICE_UNRESPONSIVE",
    }
);

text_enum!(
    /// Where a mandelbox is in its life (SPEC §3).
    MandelboxStatus {
        Allocated => "ALLOCATED",
        Connecting => "CONNECTING",
        Running => "RUNNING",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_accepts_aws_names_and_refuses_others() {
        assert!(Region::parse("us-east-1").is_ok());
        assert!(Region::parse("ap-southeast-2").is_ok());
        for bad in ["", "US-EAST-1", "us east 1", "-us", "us-", "us_east_1"] {
            assert!(Region::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn mandelbox_id_is_normalised_uuid() {
        let id = MandelboxId::parse("6F1C2E1A-1B2C-4D3E-8F90-0123456789AB").unwrap();
        assert_eq!(id.as_str(), "6f1c2e1a-1b2c-4d3e-8f90-0123456789ab");
        assert!(MandelboxId::parse("not-a-uuid").is_err());
        assert_ne!(MandelboxId::new_v4(), MandelboxId::new_v4());
    }

    #[test]
    fn unix_millis_is_milliseconds() {
        let t = UnixMillis::from(UNIX_EPOCH + Duration::from_secs(2));
        assert_eq!(t.as_millis(), 2_000);
        assert_eq!(t.minus(Duration::from_millis(500)).as_millis(), 1_500);
        assert_eq!(t.plus(Duration::from_secs(1)).as_millis(), 3_000);
        // Somewhere after 2020-01-01 and before 2100-01-01: not seconds, not microseconds.
        let now = UnixMillis::now().as_millis();
        assert!((1_577_836_800_000..4_102_444_800_000).contains(&now));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in InstanceStatus::ALL {
            assert_eq!(InstanceStatus::parse(status.as_str()), Ok(*status));
        }
        for status in MandelboxStatus::ALL {
            assert_eq!(MandelboxStatus::parse(status.as_str()), Ok(*status));
        }
        let err = InstanceStatus::parse("RUNNING").unwrap_err();
        assert!(err.to_string().contains("PRE_CONNECTION"), "{err}");
    }
}

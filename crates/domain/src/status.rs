//! Where instances and mandelboxes are in their lives (SPEC §3).

use std::fmt;

use crate::InvalidValue;

/// A `varchar` column holding one of a fixed set of names.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
            serde::Deserialize,
        )]
        #[cfg_attr(
            feature = "diesel",
            derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow),
            diesel(sql_type = diesel::sql_types::Text)
        )]
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
                    other => Err(InvalidValue::new(
                        $what,
                        other,
                        concat!("one of ", $($text, " "),+),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        text_to_sql!($name);

        #[cfg(feature = "diesel")]
        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(bytes)?;
                Ok(Self::parse(&text)?)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

text_enum!(
    /// Where an instance is in its life.
    InstanceStatus, "instance status" {
        PreConnection => "PRE_CONNECTION",
        Active => "ACTIVE",
        Draining => "DRAINING",
        HostServiceUnresponsive => "HOST_SERVICE_UNRESPONSIVE",
    }
);

text_enum!(
    /// Where a mandelbox is in its life.
    MandelboxStatus, "mandelbox status" {
        Allocated => "ALLOCATED",
        Connecting => "CONNECTING",
        Running => "RUNNING",
    }
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

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

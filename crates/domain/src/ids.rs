//! Text identifiers, each checked by its `parse`.

use std::fmt;

use crate::InvalidValue;

/// The OpenAPI schema of a text newtype: what its `parse` accepts.
#[cfg(feature = "openapi")]
struct TextSchema {
    description: &'static str,
    pattern: &'static str,
    max_length: usize,
    format: Option<&'static str>,
    example: &'static str,
}

#[cfg(feature = "openapi")]
impl TextSchema {
    fn build(self) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(self.description))
            .pattern(Some(self.pattern))
            .min_length(Some(1))
            .max_length(Some(self.max_length))
            .format(
                self.format
                    .map(|format| SchemaFormat::Custom(format.to_owned())),
            )
            .examples([self.example])
            .into()
    }
}

/// A string newtype, stored as `varchar`, built only by its `parse`.
macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident, $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(
            feature = "diesel",
            derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow),
            diesel(sql_type = diesel::sql_types::Text)
        )]
        #[serde(try_from = "String", into = "String")]
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

        impl TryFrom<String> for $name {
            type Error = InvalidValue;

            fn try_from(value: String) -> Result<Self, InvalidValue> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        text_to_sql!($name);

        /// Rows are trusted as stored: the database is ours, and older tools wrote some.
        #[cfg(feature = "diesel")]
        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(bytes)
                    .map(Self)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema.build()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

text_newtype!(
    /// A cloud region, e.g. `us-east-1`: lowercase ASCII letters, digits and inner hyphens.
    Region,
    TextSchema {
        description: "A region name: lowercase letters, digits and inner hyphens.",
        pattern: "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$",
        max_length: 64,
        format: None,
        example: "us-east-1",
    }
);
text_newtype!(
    /// An instance's name: `<region>-<branch>-<commit7>-uid-<10 [a-z0-9]>`.
    InstanceName,
    token_schema("An instance name.", "us-east-1-main-0123456-uid-abcdefghij")
);
text_newtype!(
    /// A mandelbox's id, a UUID in its lowercase hyphenated form.
    MandelboxId,
    TextSchema {
        description: "A mandelbox id (a UUID).",
        pattern: "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
        max_length: 36,
        format: Some("uuid"),
        example: "6f1c2e1a-1b2c-4d3e-8f90-0123456789ab",
    }
);
text_newtype!(
    /// The user a token was issued to (its `sub` claim).
    UserId,
    TextSchema {
        description: "A user id: the token's subject.",
        pattern: "^[^\\u0000]*$",
        max_length: 256,
        format: None,
        example: "alice",
    }
);
text_newtype!(
    /// A machine image id, e.g. `ami-0abc…`.
    AmiId,
    token_schema("A machine image id.", "ami-0abc1234")
);
text_newtype!(
    /// The client commit hash an instance serves.
    CommitHash,
    token_schema("A client commit hash.", "0123456789abcdef")
);

/// The schema of [`parse_token`]'s values.
#[cfg(feature = "openapi")]
const fn token_schema(description: &'static str, example: &'static str) -> TextSchema {
    TextSchema {
        description,
        pattern: "^[!-~]{1,128}$",
        max_length: 128,
        format: None,
        example,
    }
}

/// A short, non-empty, printable string (AMI ids, commit hashes, instance names).
fn parse_token(what: &'static str, value: &str) -> Result<String, InvalidValue> {
    let valid =
        !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(value.to_owned())
    } else {
        Err(InvalidValue::new(
            what,
            value,
            "1 to 128 printable ASCII characters",
        ))
    }
}

impl Region {
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
            Err(InvalidValue::new(
                "region",
                value,
                "a name such as \"us-east-1\"",
            ))
        }
    }
}

impl UserId {
    /// Any non-empty string of at most 256 characters without NUL (PostgreSQL text
    /// cannot hold it).
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.is_empty() || value.chars().count() > 256 || value.contains('\0') {
            Err(InvalidValue::new(
                "user id",
                value,
                "1 to 256 characters without NUL",
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
            .map_err(|_| InvalidValue::new("mandelbox id", value, "a UUID"))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

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
    fn deserializing_goes_through_parse() {
        let region: Region = serde_json::from_str("\"us-west-2\"").unwrap();
        assert_eq!(region.as_str(), "us-west-2");
        let err = serde_json::from_str::<Region>("\"Not A Region\"").unwrap_err();
        assert!(err.to_string().contains("invalid region"), "{err}");
        assert!(serde_json::from_str::<UserId>("\"al\\u0000ice\"").is_err());
        assert!(serde_json::from_str::<CommitHash>("\"has space\"").is_err());
        let id: MandelboxId =
            serde_json::from_str("\"6F1C2E1A-1B2C-4D3E-8F90-0123456789AB\"").unwrap();
        assert_eq!(id.as_str(), "6f1c2e1a-1b2c-4d3e-8f90-0123456789ab");
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }

    #[test]
    fn a_refused_value_is_quoted_short() {
        let long = "x ".repeat(500);
        let err = CommitHash::parse(&long).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}

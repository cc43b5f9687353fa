//! Whole numbers within a range, as request bodies carry them. Each deserializes only
//! from a JSON integer in range: a float, a string, `null` or a number out of range is
//! refused, and the refusal says what was expected.

use std::fmt;

/// A whole number from `$min` to `$max`.
macro_rules! bounded_int {
    ($(#[$meta:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const MIN: i64 = $min;
            pub const MAX: i64 = $max;

            /// `value`, if it is in range.
            pub fn new(value: i64) -> Option<Self> {
                (Self::MIN..=Self::MAX).contains(&value).then_some(Self(value))
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        /// The least value.
        impl Default for $name {
            fn default() -> Self {
                Self(Self::MIN)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_i64(Expecting {
                        min: Self::MIN,
                        max: Self::MAX,
                    })
                    .map(Self)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                integer_schema(Self::MIN, Self::MAX)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

bounded_int!(
    /// The DPI of a client's screen: 1 to 2000.
    Dpi, 1, 2000
);
bounded_int!(
    /// How long an assignment may wait for a slot, in seconds: 0 (answer at once) to 120.
    WaitSecs, 0, 120
);
bounded_int!(
    /// The mandelboxes one instance has room for: 0 to 1024.
    MandelboxCapacity, 0, 1024
);
bounded_int!(
    /// An amount of a host's resource (kilobytes, nanocpus): 0 to 2^50.
    ResourceAmount, 0, 1 << 50
);

/// Accepts whole numbers from `min` to `max`.
struct Expecting {
    min: i64,
    max: i64,
}

impl<'de> serde::de::Visitor<'de> for Expecting {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from {} to {}", self.min, self.max)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<i64, E> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(E::invalid_value(
                serde::de::Unexpected::Signed(value),
                &self,
            ))
        }
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<i64, E> {
        match i64::try_from(value) {
            Ok(value) if (self.min..=self.max).contains(&value) => Ok(value),
            _ => Err(E::invalid_value(
                serde::de::Unexpected::Unsigned(value),
                &self,
            )),
        }
    }
}

#[cfg(feature = "openapi")]
fn integer_schema(min: i64, max: i64) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn only_whole_numbers_in_range_deserialize() {
        assert_eq!(serde_json::from_str::<Dpi>("96").unwrap().get(), 96);
        for bad in [
            "0",
            "2001",
            "-5",
            "96.5",
            "1e300",
            "\"96\"",
            "null",
            "18446744073709551615",
        ] {
            let err = serde_json::from_str::<Dpi>(bad).unwrap_err().to_string();
            assert!(
                err.contains("a whole number from 1 to 2000"),
                "{bad}: {err}"
            );
        }
        assert_eq!(WaitSecs::default().get(), 0);
        assert!(MandelboxCapacity::new(1025).is_none());
    }
}

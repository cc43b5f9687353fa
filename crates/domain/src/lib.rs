//! Identifiers and units every crate shares. A value of one of these types exists only
//! if it is valid: each is built by its `parse` (which `serde` uses too), never around
//! it. A timestamp of unknown unit is how the original system lost days, so every
//! stored time is a [`UnixMillis`].
//!
//! Features: `diesel` gives the SQL conversions (the `models` crate turns it on),
//! `openapi` the OpenAPI schemas, stating the same rules `parse` checks.

/// `ToSql<Text>` for a type that is `AsRef<str>`: what both the text newtypes and the
/// status names are stored as.
macro_rules! text_to_sql {
    ($name:ident) => {
        #[cfg(feature = "diesel")]
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                let text: &str = self.as_ref();
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    text, out,
                )
            }
        }
    };
}

mod bounded;
mod ids;
mod status;
mod time;

pub use bounded::{Dpi, MandelboxCapacity, ResourceAmount, WaitSecs};
pub use ids::{AmiId, CommitHash, InstanceName, MandelboxId, Region, UserId};
pub use status::{InstanceStatus, MandelboxStatus};
pub use time::UnixMillis;

/// A value that failed to parse into a domain type: what it should have been, and what
/// it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: expected {expected}")]
pub struct InvalidValue {
    /// The kind of value, e.g. `region`.
    pub what: &'static str,
    pub value: String,
    /// What a valid one looks like.
    pub expected: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        // A refused value is quoted back to the caller: keep that short.
        let value = if value.chars().count() > 80 {
            format!("{}…", value.chars().take(80).collect::<String>())
        } else {
            value.to_owned()
        };
        Self {
            what,
            value,
            expected,
        }
    }
}

//! Points in time, as every table stores them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time as Unix time in milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(
    feature = "diesel",
    derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow),
    diesel(sql_type = diesel::sql_types::BigInt)
)]
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

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Self) -> Duration {
        u64::try_from(self.0.saturating_sub(earlier.0))
            .map_or(Duration::ZERO, Duration::from_millis)
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

#[cfg(feature = "diesel")]
impl diesel::serialize::ToSql<diesel::sql_types::BigInt, diesel::pg::Pg> for UnixMillis {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        <i64 as diesel::serialize::ToSql<diesel::sql_types::BigInt, diesel::pg::Pg>>::to_sql(
            &self.0, out,
        )
    }
}

#[cfg(feature = "diesel")]
impl diesel::deserialize::FromSql<diesel::sql_types::BigInt, diesel::pg::Pg> for UnixMillis {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <i64 as diesel::deserialize::FromSql<diesel::sql_types::BigInt, diesel::pg::Pg>>::from_sql(
            bytes,
        )
        .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_millis_is_milliseconds() {
        let t = UnixMillis::from(UNIX_EPOCH + Duration::from_secs(2));
        assert_eq!(t.as_millis(), 2_000);
        assert_eq!(t.minus(Duration::from_millis(500)).as_millis(), 1_500);
        assert_eq!(t.plus(Duration::from_secs(1)).as_millis(), 3_000);
        assert_eq!(
            t.since(UnixMillis::from_millis(500)),
            Duration::from_millis(1_500)
        );
        assert_eq!(UnixMillis::from_millis(1).since(t), Duration::ZERO);
        // Somewhere after 2020-01-01 and before 2100-01-01: not seconds, not microseconds.
        let now = UnixMillis::now().as_millis();
        assert!((1_577_836_800_000..4_102_444_800_000).contains(&now));
    }
}

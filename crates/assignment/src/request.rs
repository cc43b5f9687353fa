//! The body of `POST /mandelbox/assign`: one serde type whose fields are the validating
//! types, so the parser, the 400 naming the field and the OpenAPI document agree.

use std::time::Duration;

use domain::{CommitHash, Dpi, Region, UserId, WaitSecs};
use serde::Deserialize;

/// The most regions a client may list.
pub const MAX_REGIONS: usize = 16;

/// The body as clients send it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AssignBody {
    /// The user's region; or send `regions`.
    #[serde(default)]
    pub region: Option<Region>,
    /// Regions nearest first; replaces the bundled neighbours (and wins over `region`).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 16)]
    pub regions: Option<Vec<Region>>,
    /// The token's user (admins may act for others).
    pub username: UserId,
    pub dpi: Dpi,
    /// The client's commit hash; `local_dev` in development.
    pub client_commit_hash: CommitHash,
    /// How long to wait for a slot when none is free, in seconds (0, the default,
    /// answers at once).
    #[serde(default)]
    pub wait_secs: WaitSecs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionChoice {
    /// One region; its bundled neighbours are the fallback.
    One(Region),
    /// The client's own list, nearest first; it replaces the bundled neighbours.
    Ordered(Vec<Region>),
}

/// A valid assignment request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AssignBody")]
pub struct AssignRequest {
    pub regions: RegionChoice,
    pub username: UserId,
    pub dpi: u32,
    pub client_commit_hash: CommitHash,
    /// How long to wait for a slot when none is free; zero answers at once.
    pub wait: Duration,
}

/// A body whose fields are each well formed, but which does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidRequest {
    pub field: &'static str,
    pub problem: &'static str,
}

impl TryFrom<AssignBody> for AssignRequest {
    type Error = InvalidRequest;

    fn try_from(body: AssignBody) -> Result<Self, InvalidRequest> {
        // `regions` wins when both are given: old servers read `region`.
        let regions = match (body.regions, body.region) {
            (Some(list), _) if list.is_empty() || list.len() > MAX_REGIONS => {
                return Err(InvalidRequest {
                    field: "regions",
                    problem: "expected 1 to 16 region names",
                });
            }
            (Some(list), _) => RegionChoice::Ordered(list),
            (None, Some(region)) => RegionChoice::One(region),
            (None, None) => {
                return Err(InvalidRequest {
                    field: "region",
                    problem: "required",
                });
            }
        };
        Ok(Self {
            regions,
            username: body.username,
            // In range by its type: 1 to 2000.
            dpi: u32::try_from(body.dpi.get()).unwrap_or(1),
            client_commit_hash: body.client_commit_hash,
            wait: Duration::from_secs(body.wait_secs.get().unsigned_abs()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::{Value, json};

    use super::*;

    fn parse(body: Value) -> Result<AssignRequest, serde_json::Error> {
        serde_json::from_value(body)
    }

    fn good() -> Value {
        json!({"region": "us-east-1", "username": "alice", "dpi": 96, "client_commit_hash": "abc"})
    }

    #[test]
    fn a_good_body_parses() {
        let request = parse(good()).unwrap();
        assert_eq!(
            request.regions,
            RegionChoice::One(Region::parse("us-east-1").unwrap())
        );
        assert_eq!(request.username.as_str(), "alice");
        assert_eq!(request.dpi, 96);
        assert_eq!(request.wait, Duration::ZERO);
    }

    #[test]
    fn regions_list_replaces_region() {
        let mut body = good();
        body["regions"] = json!(["us-west-2", "us-west-1"]);
        let request = parse(body).unwrap();
        assert_eq!(
            request.regions,
            RegionChoice::Ordered(vec![
                Region::parse("us-west-2").unwrap(),
                Region::parse("us-west-1").unwrap()
            ])
        );
    }

    #[test]
    fn wait_secs_is_a_whole_number_of_seconds_up_to_120() {
        let mut body = good();
        body["wait_secs"] = json!(120);
        assert_eq!(parse(body).unwrap().wait, Duration::from_secs(120));
        for bad in [json!(-1), json!(121), json!("5"), json!(1.5), json!(null)] {
            let mut body = good();
            body["wait_secs"] = bad.clone();
            assert!(parse(body).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_is_refused() {
        let cases: Vec<(&str, Value)> = vec![
            ("region", json!(5)),
            ("region", json!("Not A Region")),
            ("username", json!(null)),
            ("username", json!("")),
            ("username", json!(["alice"])),
            ("username", json!("al\u{0}ice")),
            ("dpi", json!(null)),
            ("dpi", json!("96")),
            ("dpi", json!(0)),
            ("dpi", json!(96.5)),
            ("dpi", json!(1e300)),
            ("dpi", json!(u64::MAX)),
            ("client_commit_hash", json!(null)),
            ("client_commit_hash", json!("")),
            ("client_commit_hash", json!("has space")),
            ("regions", json!([])),
            ("regions", json!("us-east-1")),
            ("regions", json!([1, 2])),
        ];
        for (field, value) in cases {
            let mut body = good();
            body[field] = value.clone();
            assert!(parse(body).is_err(), "{field} = {value}");
        }
        for field in ["region", "username", "dpi", "client_commit_hash"] {
            let mut body = good();
            body.as_object_mut().unwrap().remove(field);
            assert!(parse(body).is_err(), "without {field}");
        }
        assert!(parse(json!([1])).is_err());
        let mut too_many = good();
        too_many["regions"] = json!(vec!["us-east-1"; MAX_REGIONS + 1]);
        let err = parse(too_many).unwrap_err().to_string();
        assert!(err.starts_with("regions:"), "{err}");
    }
}

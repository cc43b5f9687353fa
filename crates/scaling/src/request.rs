//! The body of `POST /mandelbox/assign`, parsed into domain values. Every refusal names
//! the field at fault.

use models::{CommitHash, Region, UserId};
use serde_json::{Map, Value};

/// The largest DPI a client may ask for.
pub const MAX_DPI: i64 = 2000;
/// The most regions a client may list.
pub const MAX_REGIONS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionChoice {
    /// One region; its bundled neighbours are the fallback.
    One(Region),
    /// The client's own list, nearest first; it replaces the bundled neighbours.
    Ordered(Vec<Region>),
}

/// A valid assignment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignRequest {
    pub regions: RegionChoice,
    pub username: UserId,
    pub dpi: u32,
    pub client_commit_hash: CommitHash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidRequest {
    pub field: &'static str,
    pub problem: String,
}

pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        field,
        problem: problem.into(),
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn string<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, InvalidRequest> {
    match body.get(field) {
        None => Err(invalid(field, "required")),
        // PostgreSQL text cannot hold NUL.
        Some(Value::String(text)) if text.contains('\0') => {
            Err(invalid(field, "must not contain NUL characters"))
        }
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(invalid(
            field,
            format!("expected a string, not {}", kind(other)),
        )),
    }
}

/// A required whole number within `range`.
pub(crate) fn integer(
    body: &Map<String, Value>,
    field: &'static str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, InvalidRequest> {
    let value = body.get(field).ok_or_else(|| invalid(field, "required"))?;
    value
        .as_i64()
        .filter(|number| range.contains(number))
        .ok_or_else(|| {
            invalid(
                field,
                format!(
                    "expected a whole number from {} to {}, not {value}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// The body as a JSON object.
pub(crate) fn object(body: &Value) -> Result<&Map<String, Value>, InvalidRequest> {
    match body {
        Value::Object(map) => Ok(map),
        other => Err(invalid(
            "body",
            format!("expected a JSON object, not {}", kind(other)),
        )),
    }
}

impl TryFrom<&Value> for AssignRequest {
    type Error = InvalidRequest;

    fn try_from(body: &Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        // `regions` wins when both are given: old servers read `region`.
        let regions = match body.get("regions") {
            Some(Value::Null) | None => {
                let region = string(body, "region")?;
                RegionChoice::One(
                    Region::parse(region).map_err(|err| invalid("region", err.to_string()))?,
                )
            }
            Some(Value::Array(list)) => {
                if list.is_empty() || list.len() > MAX_REGIONS {
                    return Err(invalid(
                        "regions",
                        format!("expected 1 to {MAX_REGIONS} region names"),
                    ));
                }
                let regions =
                    list.iter()
                        .map(|value| match value {
                            Value::String(name) => Region::parse(name)
                                .map_err(|err| invalid("regions", err.to_string())),
                            other => Err(invalid(
                                "regions",
                                format!("expected region names, not {}", kind(other)),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                RegionChoice::Ordered(regions)
            }
            Some(other) => {
                return Err(invalid(
                    "regions",
                    format!("expected an array of region names, not {}", kind(other)),
                ));
            }
        };
        let username = UserId::parse(string(body, "username")?)
            .map_err(|err| invalid("username", err.to_string()))?;
        let dpi = u32::try_from(integer(body, "dpi", 1..=MAX_DPI)?)
            .map_err(|_| invalid("dpi", "out of range"))?;
        let client_commit_hash = CommitHash::parse(string(body, "client_commit_hash")?)
            .map_err(|err| invalid("client_commit_hash", err.to_string()))?;
        Ok(Self {
            regions,
            username,
            dpi,
            client_commit_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> Result<AssignRequest, InvalidRequest> {
        AssignRequest::try_from(&body)
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
    fn every_bad_field_is_named() {
        let cases: Vec<(&str, Value)> = vec![
            ("region", json!(null)),
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
            let err = parse(body).unwrap_err();
            assert_eq!(err.field, field, "{field} = {value}: {err}");
        }
        for field in ["region", "username", "dpi", "client_commit_hash"] {
            let mut body = good();
            body.as_object_mut().unwrap().remove(field);
            assert_eq!(parse(body).unwrap_err().field, field);
        }
        assert_eq!(parse(json!([1])).unwrap_err().field, "body");
        let mut too_many = good();
        too_many["regions"] = json!(vec!["us-east-1"; MAX_REGIONS + 1]);
        assert_eq!(parse(too_many).unwrap_err().field, "regions");
    }
}

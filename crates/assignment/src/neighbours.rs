//! Regions to fall back on when a region has no room.

use std::collections::HashMap;

use domain::{InvalidValue, Region};

/// For each region, its neighbours, nearest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionNeighbours(HashMap<Region, Vec<Region>>);

impl Default for RegionNeighbours {
    /// us-east-1 ↔ us-east-2 and us-west-1 ↔ us-west-2.
    fn default() -> Self {
        let pairs = [
            ("us-east-1", "us-east-2"),
            ("us-east-2", "us-east-1"),
            ("us-west-1", "us-west-2"),
            ("us-west-2", "us-west-1"),
        ];
        Self(
            pairs
                .iter()
                .filter_map(|(from, to)| {
                    Some((Region::parse(from).ok()?, vec![Region::parse(to).ok()?]))
                })
                .collect(),
        )
    }
}

/// Why a neighbour map was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidNeighbours {
    #[error("expected a JSON object of region to region list")]
    NotAMap(#[source] serde_json::Error),
    #[error("not a region")]
    Region(#[source] InvalidValue),
}

impl RegionNeighbours {
    /// Reads a JSON object from region to its neighbours, nearest first:
    /// `{"us-east-1": ["us-east-2"], "eu-west-1": ["eu-central-1", "eu-west-2"]}`.
    pub fn from_json(text: &str) -> Result<Self, InvalidNeighbours> {
        let raw: HashMap<String, Vec<String>> =
            serde_json::from_str(text).map_err(InvalidNeighbours::NotAMap)?;
        raw.into_iter()
            .map(|(region, neighbours)| {
                let region = Region::parse(&region).map_err(InvalidNeighbours::Region)?;
                let neighbours = neighbours
                    .iter()
                    .map(|n| Region::parse(n).map_err(InvalidNeighbours::Region))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((region, neighbours))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn of(&self, region: &Region) -> &[Region] {
        self.0.get(region).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> Region {
        Region::parse(name).unwrap()
    }

    #[test]
    fn default_bundles_the_us_pairs() {
        let neighbours = RegionNeighbours::default();
        assert_eq!(neighbours.of(&region("us-east-1")), [region("us-east-2")]);
        assert_eq!(neighbours.of(&region("us-east-2")), [region("us-east-1")]);
        assert_eq!(neighbours.of(&region("us-west-1")), [region("us-west-2")]);
        assert_eq!(neighbours.of(&region("us-west-2")), [region("us-west-1")]);
        assert!(neighbours.of(&region("eu-west-1")).is_empty());
    }

    #[test]
    fn neighbours_are_configurable_as_json() {
        let neighbours =
            RegionNeighbours::from_json(r#"{"eu-west-1": ["eu-west-2", "eu-central-1"]}"#).unwrap();
        assert_eq!(
            neighbours.of(&region("eu-west-1")),
            [region("eu-west-2"), region("eu-central-1")]
        );
        assert!(neighbours.of(&region("us-east-1")).is_empty());
        assert!(RegionNeighbours::from_json("[]").is_err());
        assert!(RegionNeighbours::from_json(r#"{"Bad Region": []}"#).is_err());
    }
}

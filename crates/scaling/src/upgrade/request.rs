//! What `webserver ami-upgrade` is asked: a commit hash and a region → image map.

use models::{AmiId, CommitHash, InvalidValue, Region};
use serde_json::Value;

/// What to upgrade to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub commit_hash: CommitHash,
    /// One new image per region, sorted by region.
    pub images: Vec<(Region, AmiId)>,
}

/// Why an upgrade request was refused before anything was done.
#[derive(Debug, thiserror::Error)]
pub enum InvalidUpgrade {
    #[error("the commit hash is not valid")]
    CommitHash(#[source] InvalidValue),
    #[error(
        "the region→AMI map is not valid JSON; expected e.g. '{{\"us-east-1\": \"ami-0abc\"}}'"
    )]
    NotJson(#[source] serde_json::Error),
    #[error("the region→AMI map must be a JSON object, e.g. '{{\"us-east-1\": \"ami-0abc\"}}'")]
    NotAnObject,
    #[error("the region→AMI map names no region")]
    Empty,
    #[error("a region of the map is not valid")]
    Region(#[source] InvalidValue),
    #[error("the AMI of {region} is not valid")]
    Ami {
        region: Region,
        #[source]
        source: InvalidValue,
    },
    #[error("the AMI of {region} must be a string, not {found}")]
    AmiNotAString { region: Region, found: Value },
}

impl UpgradeRequest {
    /// `commit_hash` and a JSON object of region → AMI id, e.g. `{"us-east-1": "ami-0abc"}`.
    pub fn parse(commit_hash: &str, regions_to_amis: &str) -> Result<Self, InvalidUpgrade> {
        let commit_hash = CommitHash::parse(commit_hash).map_err(InvalidUpgrade::CommitHash)?;
        let json: Value = serde_json::from_str(regions_to_amis).map_err(InvalidUpgrade::NotJson)?;
        let Value::Object(map) = json else {
            return Err(InvalidUpgrade::NotAnObject);
        };
        if map.is_empty() {
            return Err(InvalidUpgrade::Empty);
        }
        let mut images = Vec::new();
        for (region, ami) in map {
            let region = Region::parse(&region).map_err(InvalidUpgrade::Region)?;
            let ami = match ami {
                Value::String(ami) => AmiId::parse(&ami).map_err(|source| InvalidUpgrade::Ami {
                    region: region.clone(),
                    source,
                })?,
                found => return Err(InvalidUpgrade::AmiNotAString { region, found }),
            };
            images.push((region, ami));
        }
        images.sort();
        Ok(Self {
            commit_hash,
            images,
        })
    }
}

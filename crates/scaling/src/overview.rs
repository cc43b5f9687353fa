//! The fleet as operators see it: every region (of `hardware.region_to_ami`, or with
//! instances), its capacity, free slots and waiting users, and each instance with its
//! sessions by status. One consistent read (`GET /fleet`, `webserver fleet`), and a
//! terminal rendering of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use diesel::prelude::*;
use models::{
    AmiId, CommitHash, InstanceName, InstanceStatus, Region, UnixMillis, demand, instance,
    mandelbox, region_to_ami,
};
use serde::{Deserialize, Serialize};

/// The whole fleet at `generated_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetOverview {
    pub generated_at_ms: i64,
    /// Sorted by region.
    pub regions: Vec<RegionOverview>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionOverview {
    pub region: Region,
    /// Some image row of the region has `region_enabled`.
    pub enabled: bool,
    pub active_image: Option<ActiveImage>,
    /// Slots of `ACTIVE` instances (as the metrics count them).
    pub capacity: i64,
    /// Free slots of `ACTIVE` instances.
    pub free_slots: i64,
    /// Users waiting for a slot here now, across every server process.
    pub waiting: i64,
    /// Sorted by name.
    pub instances: Vec<InstanceOverview>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveImage {
    pub ami_id: AmiId,
    pub client_commit_hash: CommitHash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOverview {
    pub instance_name: InstanceName,
    pub status: InstanceStatus,
    /// `None` until its host registers.
    pub ip: Option<String>,
    pub aws_ami_id: AmiId,
    pub commit_hash: CommitHash,
    pub capacity: i64,
    /// Its mandelboxes by status (`ALLOCATED`, `CONNECTING`, `RUNNING`, …).
    pub mandelboxes: BTreeMap<String, i64>,
    /// `None` if its host was never heard from.
    pub last_heartbeat_ms_ago: Option<i64>,
    pub age_ms: i64,
}

/// Reads the fleet at `now`, in one read-only snapshot.
pub fn read(conn: &mut PgConnection, now: UnixMillis) -> QueryResult<FleetOverview> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            let images = region_to_ami::all(conn)?;
            let instances = instance::all(conn)?;
            let sessions = mandelbox::counts_by_instance_and_status(conn)?;
            let waiting = demand::waiting_by_region(conn, now)?;
            Ok(assemble(now, &images, instances, &sessions, &waiting))
        })
}

fn assemble(
    now: UnixMillis,
    images: &[region_to_ami::RegionAmi],
    instances: Vec<instance::Instance>,
    sessions: &[(InstanceName, models::MandelboxStatus, i64)],
    waiting: &[(String, i64)],
) -> FleetOverview {
    let mut by_instance: BTreeMap<&InstanceName, BTreeMap<String, i64>> = BTreeMap::new();
    for (name, status, count) in sessions {
        by_instance
            .entry(name)
            .or_default()
            .insert(status.as_str().to_owned(), *count);
    }
    let names: BTreeSet<&Region> = images
        .iter()
        .map(|row| &row.region_name)
        .chain(instances.iter().map(|i| &i.location))
        .collect();
    let mut regions: Vec<RegionOverview> = names
        .into_iter()
        .map(|region| RegionOverview {
            region: region.clone(),
            enabled: images
                .iter()
                .any(|row| &row.region_name == region && row.region_enabled),
            active_image: images
                .iter()
                .find(|row| &row.region_name == region && row.ami_active && row.region_enabled)
                .map(|row| ActiveImage {
                    ami_id: row.ami_id.clone(),
                    client_commit_hash: row.client_commit_hash.clone(),
                }),
            capacity: 0,
            free_slots: 0,
            waiting: waiting
                .iter()
                .find(|(name, _)| name == region.as_str())
                .map_or(0, |(_, users)| *users),
            instances: Vec::new(),
        })
        .collect();
    for row in instances {
        let Some(region) = regions.iter_mut().find(|r| r.region == row.location) else {
            continue;
        };
        if row.status == InstanceStatus::Active {
            region.capacity += row.mandelbox_capacity;
            region.free_slots += (row.mandelbox_capacity - row.mandelbox_count).max(0);
        }
        let heard = row.last_updated_utc_unix_ms;
        region.instances.push(InstanceOverview {
            mandelboxes: by_instance.remove(&row.instance_name).unwrap_or_default(),
            instance_name: row.instance_name,
            status: row.status,
            ip: row.ip.map(|ip| ip.to_string()),
            aws_ami_id: row.aws_ami_id,
            commit_hash: row.commit_hash,
            capacity: row.mandelbox_capacity,
            last_heartbeat_ms_ago: (heard.as_millis() > 0)
                .then(|| (now.as_millis() - heard.as_millis()).max(0)),
            age_ms: (now.as_millis() - row.creation_time_utc_unix_ms.as_millis()).max(0),
        });
    }
    for region in &mut regions {
        region
            .instances
            .sort_unstable_by(|a, b| a.instance_name.cmp(&b.instance_name));
    }
    FleetOverview {
        generated_at_ms: now.as_millis(),
        regions,
    }
}

/// The overview for a terminal: one line per region (capacity, free, waiting, image),
/// then its instances in aligned columns.
pub fn render_text(overview: &FleetOverview) -> String {
    let mut out = String::new();
    if overview.regions.is_empty() {
        out.push_str("no regions and no instances\n");
    }
    for region in &overview.regions {
        let image = region.active_image.as_ref().map_or_else(
            || "no active image".to_owned(),
            |image| format!("{} ({})", image.ami_id, image.client_commit_hash),
        );
        let _ = writeln!(
            out,
            "{}{}  capacity {}  free {}  waiting {}  {}  {} instance(s)",
            region.region,
            if region.enabled { "" } else { " (disabled)" },
            region.capacity,
            region.free_slots,
            region.waiting,
            image,
            region.instances.len()
        );
        let rows: Vec<[String; 7]> = region.instances.iter().map(instance_cells).collect();
        let header = [
            "INSTANCE",
            "STATUS",
            "IP",
            "SESSIONS",
            "HEARTBEAT",
            "AGE",
            "IMAGE",
        ]
        .map(str::to_owned);
        let table: Vec<&[String; 7]> = std::iter::once(&header).chain(rows.iter()).collect();
        let widths: Vec<usize> = (0..7)
            .map(|column| table.iter().map(|row| row[column].len()).max().unwrap_or(0))
            .collect();
        for row in table {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
    }
    out
}

fn instance_cells(instance: &InstanceOverview) -> [String; 7] {
    let used: i64 = instance.mandelboxes.values().sum();
    let by_status: Vec<String> = instance
        .mandelboxes
        .iter()
        .map(|(status, count)| format!("{count} {status}"))
        .collect();
    let sessions = if by_status.is_empty() {
        format!("{used}/{}", instance.capacity)
    } else {
        format!("{used}/{} ({})", instance.capacity, by_status.join(", "))
    };
    [
        instance.instance_name.to_string(),
        instance.status.to_string(),
        instance.ip.clone().unwrap_or_else(|| "-".to_owned()),
        sessions,
        instance
            .last_heartbeat_ms_ago
            .map_or_else(|| "never".to_owned(), |ms| format!("{} ago", duration(ms))),
        duration(instance.age_ms),
        instance.aws_ami_id.to_string(),
    ]
}

/// `42s`, `7m`, `3h12m`, `2d4h`.
fn duration(ms: i64) -> String {
    let secs = ms / 1000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview() -> FleetOverview {
        FleetOverview {
            generated_at_ms: 1_800_000_000_000,
            regions: vec![RegionOverview {
                region: Region::parse("us-east-1").unwrap(),
                enabled: true,
                active_image: Some(ActiveImage {
                    ami_id: AmiId::parse("ami-1").unwrap(),
                    client_commit_hash: CommitHash::parse("abc").unwrap(),
                }),
                capacity: 8,
                free_slots: 5,
                waiting: 2,
                instances: vec![InstanceOverview {
                    instance_name: InstanceName::parse("us-east-1-a").unwrap(),
                    status: InstanceStatus::Active,
                    ip: Some("10.0.0.1".to_owned()),
                    aws_ami_id: AmiId::parse("ami-1").unwrap(),
                    commit_hash: CommitHash::parse("abc").unwrap(),
                    capacity: 8,
                    mandelboxes: BTreeMap::from([("RUNNING".to_owned(), 3)]),
                    last_heartbeat_ms_ago: Some(2_100),
                    age_ms: 3_720_000,
                }],
            }],
        }
    }

    #[test]
    fn the_terminal_view_has_a_line_per_region_and_aligned_instances() {
        let text = render_text(&overview());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "us-east-1  capacity 8  free 5  waiting 2  ami-1 (abc)  1 instance(s)"
        );
        assert!(lines[1].starts_with("  INSTANCE     STATUS  IP"), "{text}");
        assert!(
            lines[2].starts_with("  us-east-1-a  ACTIVE  10.0.0.1  3/8 (3 RUNNING)  2s ago"),
            "{text}"
        );
        assert!(lines[2].ends_with("1h2m  ami-1"), "{text}");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(7 * 60_000), "7m");
        assert_eq!(duration(3 * 3_600_000 + 12 * 60_000), "3h12m");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2d4h");
    }
}

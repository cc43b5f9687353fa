//! `webserver fleet [--json]`: the operators' view of the fleet in a terminal.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use models::overview::{self, FleetOverview, InstanceOverview};
use models::{Db, PoolOptions, UnixMillis};
use secrecy::ExposeSecret;

use super::CliError;
use crate::settings::{DatabaseSettings, Vars};

pub(super) fn show(vars: &Vars, json: bool) -> Result<ExitCode, CliError> {
    let database = DatabaseSettings::from_vars(vars)?;
    let db = Db::new(
        database.url.expose_secret(),
        PoolOptions {
            max_size: 1,
            connection_timeout: database.connect_timeout,
            lock_timeout: Duration::from_secs(5),
            statement_timeout: database.statement_timeout,
            lock_connections: 0,
            name: "cli",
            ..PoolOptions::default()
        },
    );
    let mut conn = db.get().map_err(CliError::Database)?;
    let fleet = overview::read(&mut conn, UnixMillis::now())
        .map_err(|err| CliError::Database(err.into()))?;
    if json {
        let text = serde_json::to_string_pretty(&fleet)
            .map_err(|err| CliError::Failed(format!("cannot print the fleet: {err}")))?;
        println!("{text}");
    } else {
        print!("{}", render_text(&fleet));
    }
    Ok(ExitCode::SUCCESS)
}

/// The overview for a terminal: one line per region (capacity, free, waiting, image),
/// then its instances in aligned columns.
fn render_text(overview: &FleetOverview) -> String {
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
    use std::collections::BTreeMap;

    use models::overview::{ActiveImage, RegionOverview};
    use models::{AmiId, CommitHash, InstanceName, InstanceStatus, Region};

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

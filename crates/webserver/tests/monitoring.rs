//! The monitoring the compose file ships (docker/prometheus, docker/grafana): every
//! metric the Grafana dashboard queries is one the server declares, and every file the
//! compose file mounts exists. No Docker engine runs here, so this is what can be checked.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `webserver_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("webserver_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The metric names declared in the crates' sources (string literals).
fn declared() -> BTreeSet<String> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo().join("crates")).unwrap().flatten() {
        let src = krate.path().join("src");
        if src.is_dir() {
            rust_sources(&src, &mut files);
        }
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // String literals that are a metric's whole name.
        names.extend(
            text.split('"')
                .filter(|piece| {
                    piece.starts_with("webserver_")
                        && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
                .map(str::to_owned),
        );
    }
    names
}

#[test]
fn the_dashboard_queries_only_metrics_the_server_declares() {
    let path = repo().join("docker/grafana/dashboards/webserver.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert_eq!(target["datasource"]["uid"], "prometheus", "{expr}");
            for name in metric_names(expr) {
                // A histogram's series are its name with these suffixes.
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name)
                    .to_owned();
                queried.insert(base);
            }
        }
    }
    assert!(queried.len() >= 8, "{queried:?}");
    let declared = declared();
    let unknown: Vec<&String> = queried.difference(&declared).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries {unknown:?}, which nothing declares"
    );
}

#[test]
fn the_compose_file_mounts_files_that_exist() {
    let docker = repo().join("docker");
    let compose = std::fs::read_to_string(docker.join("docker-compose.yml")).unwrap();
    let mounts: Vec<&str> = compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- ./"))
        .map(|mount| mount.split(':').next().unwrap())
        .collect();
    assert!(mounts.len() >= 3, "{mounts:?}");
    for mount in mounts {
        assert!(
            docker.join(mount).exists(),
            "docker/{mount} is mounted but missing"
        );
    }
    let prometheus = std::fs::read_to_string(docker.join("prometheus/prometheus.yml")).unwrap();
    assert!(prometheus.contains("metrics_path: /metrics"));
    assert!(prometheus.contains("webserver:7730"));
    assert!(compose.contains("7730:7730"));
}

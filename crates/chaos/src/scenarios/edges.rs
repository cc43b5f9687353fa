//! What comes from outside: the identity provider away, hostile requests.

use std::time::{Duration, Instant};

use serde_json::json;

use super::Timing;
use crate::cluster::Cluster;
use crate::report::Row;

/// 4. The identity provider unreachable, then back: 503s while it is away, tokens
///    verified again within seconds of its return.
pub async fn identity_provider_outage(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &[]);
    cluster.identity.jwks.set_status(503);
    let server = cluster.start_server();
    let token = cluster.identity.token("chaos-user");
    let http = reqwest::Client::new();
    let mut away = std::collections::BTreeMap::new();
    let until = Instant::now() + timing.idp_away;
    while Instant::now() < until {
        let status = regions_status(&http, &server.url("/regions"), &token).await;
        *away.entry(status).or_insert(0u64) += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.identity.jwks.set_status(200);
    let back = Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(30) {
        if regions_status(&http, &server.url("/regions"), &token).await == 200 {
            recovered = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Away again, with keys cached: tokens keep verifying.
    cluster.identity.jwks.set_status(503);
    let cached = regions_status(&http, &server.url("/regions"), &token).await;
    let summary = away
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        scenario: "identity provider away, then back",
        outcomes: format!("while away: {summary}"),
        recovery: recovered.map_or("never".to_owned(), |d| {
            format!("{:.2} s to a 200", d.as_secs_f64())
        }),
        invariants: "-".to_owned(),
        lost: "-".to_owned(),
        notes: format!("away again with keys cached: {cached}"),
        passed: away.keys().all(|status| *status == 503)
            && recovered.is_some_and(|d| d <= Duration::from_secs(6))
            && cached == 200,
    }
}

async fn regions_status(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

/// 5. Hostile requests: invented methods, malformed and oversized bodies, forged and
///    expired tokens, huge headers. No 5xx, no panic, memory and `/metrics` bounded.
pub async fn hostile_requests(binary: &std::path::Path, timing: Timing) -> Row {
    let cluster = Cluster::new(binary.to_path_buf(), &[]);
    let mut server = cluster.start_server();
    cluster.seed(2, 10);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|err| panic!("{err}"));
    let metrics_before = metrics_bytes(&http, &server.url("/metrics")).await;
    let rss_before = server.rss_kb();
    let expired = {
        let mut claims = cluster.identity.claims("mallory");
        claims.insert("exp".into(), json!(1_000_000_000));
        cluster.identity.sign(&claims)
    };
    let foreign = test_support::TestIdentity::new().token("mallory");
    let counts = crate::hostile::send(
        &http,
        &server.address,
        timing.hostile_requests,
        &expired,
        &foreign,
    )
    .await;
    let metrics_after = metrics_bytes(&http, &server.url("/metrics")).await;
    let rss_after = server.rss_kb();
    let alive = server.is_running();
    let panicked = server.log().contains("panicked");
    let server_errors: u64 = counts
        .iter()
        .filter(|(status, _)| **status >= 500 || **status == 0)
        .map(|(_, n)| *n)
        .sum();
    let summary = counts
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        scenario: "hostile requests",
        outcomes: summary,
        recovery: format!("RSS {} → {} MB", rss_before / 1024, rss_after / 1024),
        invariants: format!("/metrics {metrics_before} → {metrics_after} bytes"),
        lost: "-".to_owned(),
        notes: format!(
            "{} sent; {}",
            timing.hostile_requests,
            if panicked { "PANICKED" } else { "no panic" }
        ),
        passed: alive
            && !panicked
            && server_errors == 0
            && metrics_after < metrics_before + 64 * 1024
            && rss_after < rss_before.max(20_000) * 4,
    }
}

async fn metrics_bytes(http: &reqwest::Client, url: &str) -> usize {
    match http.get(url).send().await {
        Ok(response) => response.bytes().await.map_or(0, |body| body.len()),
        Err(_) => 0,
    }
}

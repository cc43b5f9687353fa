//! Requests a stranger might send: invented methods, malformed and oversized bodies,
//! forged and expired tokens, huge headers, paths nobody serves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

/// Sends `total` hostile requests to `base`, 32 at a time; the answers by status (`0`
/// for none).
pub async fn send(
    http: &reqwest::Client,
    base: &str,
    total: usize,
    expired: &str,
    foreign: &str,
) -> BTreeMap<u16, u64> {
    let counts = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let (http, base, expired, foreign, counts) = (
            http.clone(),
            base.to_owned(),
            expired.to_owned(),
            foreign.to_owned(),
            counts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in (worker..total).step_by(32) {
                let status = one(&http, &base, n, &expired, &foreign).await;
                *counts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(status)
                    .or_insert(0) += 1;
            }
        }));
    }
    futures_util::future::join_all(tasks).await;
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The `n`-th hostile request; its status, or 0 for no answer.
async fn one(http: &reqwest::Client, base: &str, n: usize, expired: &str, foreign: &str) -> u16 {
    let assign = format!("{base}/mandelbox/assign");
    let request = match n % 9 {
        // A method nobody serves, named differently every time.
        0 => {
            let method = reqwest::Method::from_bytes(format!("BREW{n}").as_bytes())
                .unwrap_or(reqwest::Method::PATCH);
            http.request(method, format!("{base}/regions"))
        }
        // Not JSON, and JSON of the wrong shape.
        1 => http
            .post(&assign)
            .bearer_auth(foreign)
            .header("content-type", "application/json")
            .body(format!("{{\"region\": [{n}")),
        2 => http
            .post(&assign)
            .json(&json!({"region": n, "dpi": "x", "username": null, "wait_secs": -1})),
        // Larger than MAX_BODY_BYTES.
        3 => http
            .post(format!("{base}/host_service/register"))
            .header("content-type", "application/json")
            .body(vec![b' '; 100 * 1024]),
        // Forged, expired and foreign tokens.
        4 => http
            .get(format!("{base}/regions"))
            .bearer_auth(format!("eyJhbGciOiJub25lIn0.e30.{n}")),
        5 => http.get(format!("{base}/regions")).bearer_auth(expired),
        6 => http
            .post(format!("{base}/host_service/heartbeat"))
            .bearer_auth(format!("host_{n:043}"))
            .json(&json!({"memory_remaining_kb": 1, "nanocpus_remaining": 1, "gpu_vram_remaining_kb": 1})),
        // A huge header.
        7 => http
            .get(format!("{base}/healthz"))
            .header("x-junk", "j".repeat(40 * 1024)),
        // Paths nobody serves, with queries.
        _ => http.get(format!("{base}/x/{n}?access_token=t{n}&q={}", "q".repeat(n % 500))),
    };
    request
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

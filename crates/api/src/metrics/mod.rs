//! `GET /metrics`, and the HTTP layer's own metrics.

mod scrape;

pub use scrape::{__path_get_metrics, get_metrics};

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "webserver_http_requests_total",
            "HTTP requests, by method, route pattern and status.",
        ),
        &["method", "route", "status"],
    );
    match counter {
        Ok(counter) => scaling::metrics::registered(counter),
        Err(err) => unreachable!("malformed metric: {err}"),
    }
});

static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    let histogram = HistogramVec::new(
        HistogramOpts::new(
            "webserver_http_request_duration_seconds",
            "Time from request to response, by method, route pattern and status.",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["method", "route", "status"],
    );
    match histogram {
        Ok(histogram) => scaling::metrics::registered(histogram),
        Err(err) => unreachable!("malformed metric: {err}"),
    }
});

/// Counts one answered request. `route` is the matched pattern (`/host_service/mandelbox/{id}`),
/// never the raw path, so the label stays bounded.
pub fn observe(method: &str, route: &str, status: u16, seconds: f64) {
    let status = status.to_string();
    let labels = [method, route, status.as_str()];
    HTTP_REQUESTS.with_label_values(&labels).inc();
    HTTP_DURATION.with_label_values(&labels).observe(seconds);
}

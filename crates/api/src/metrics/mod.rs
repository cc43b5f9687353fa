//! `GET /metrics`, and the HTTP layer's own metrics.

mod scrape;

pub use scrape::{__path_get_metrics, get_metrics};

use app_metrics::Registry;
use prometheus::{HistogramVec, IntCounterVec};

/// `webserver_http_requests_total` and `webserver_http_request_duration_seconds`, by
/// method, route pattern and status.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

/// The methods counted by name; any other a client invents is `other`, so strangers
/// cannot add series.
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// The label for `method`.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

impl HttpMetrics {
    pub fn new(registry: &Registry) -> Self {
        let labels = ["method", "route", "status"];
        Self {
            requests: app_metrics::counter_vec(
                registry,
                "webserver_http_requests_total",
                "HTTP requests, by method, route pattern and status.",
                &labels,
            ),
            duration: app_metrics::histogram_vec(
                registry,
                "webserver_http_request_duration_seconds",
                "Time from request to response, by method, route pattern and status.",
                &labels,
                app_metrics::latency_buckets(),
            ),
        }
    }

    /// Counts one answered request. `route` is the matched pattern
    /// (`/host_service/mandelbox/{id}`), never the raw path, and `method` one of the
    /// standard ones or `other`, so the labels stay bounded.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method_label(method), route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_are_other() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
    }
}

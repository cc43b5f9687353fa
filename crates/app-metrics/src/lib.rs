//! Metrics live in the application's own [`Registry`], made once at start-up and handed
//! to each part that counts something (no global statics): two applications in one
//! process, as tests run them, each count their own.
//!
//! Each crate declares its metrics in a struct built from the registry with the helpers
//! here; the HTTP layer serves [`Registry::gather`] at `GET /metrics`.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

pub use prometheus::Registry;

/// `made`, registered in `registry`. Declarations are literals, so a malformed one (or a
/// name declared twice) is a bug that the first test building the application finds.
fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    made: prometheus::Result<C>,
) -> C {
    let collector = match made {
        Ok(collector) => collector,
        Err(err) => unreachable!("metric {name} is malformed: {err}"),
    };
    if let Err(err) = registry.register(Box::new(collector.clone())) {
        unreachable!("metric {name} cannot be registered: {err}");
    }
    collector
}

/// A counter with labels.
pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

/// A gauge with labels.
pub fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        registry,
        name,
        IntGaugeVec::new(Opts::new(name, help), labels),
    )
}

/// A gauge without labels.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(registry, name, IntGauge::new(name, help))
}

/// A histogram with labels and these bucket bounds.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    registered(
        registry,
        name,
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels),
    )
}

/// A histogram without labels, with these bucket bounds.
pub fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    registered(
        registry,
        name,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)),
    )
}

/// Buckets for latencies from a millisecond to ten seconds.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_registry_counts_its_own() {
        let (one, two) = (Registry::new(), Registry::new());
        let a = counter_vec(&one, "x_total", "x", &["k"]);
        let b = counter_vec(&two, "x_total", "x", &["k"]);
        a.with_label_values(&["v"]).inc();
        assert_eq!(a.with_label_values(&["v"]).get(), 1);
        assert_eq!(b.with_label_values(&["v"]).get(), 0);
        assert_eq!(one.gather().len(), 1);
    }
}

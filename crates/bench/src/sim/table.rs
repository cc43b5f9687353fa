//! The simulator's table.

use super::PolicyReport;

/// What several runs of one rule (policy and placement) gave: means and ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub policy: &'static str,
    pub placement: &'static str,
    pub runs: usize,
    /// Idle slot-hours: mean, least, most.
    pub idle_slot_hours: (f64, f64, f64),
    /// Share served on the first try: mean, least, most.
    pub first_try_ratio: (f64, f64, f64),
}

/// Mean, least and most of `values` (NaN for none).
fn summary(values: impl Iterator<Item = f64> + Clone) -> (f64, f64, f64) {
    let n = values.clone().count() as f64;
    let (least, most) = values
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    (values.sum::<f64>() / n, least, most)
}

/// The spread of each rule's runs in `reports`, rules in the order they first appear.
pub fn spreads(reports: &[PolicyReport]) -> Vec<Spread> {
    let mut rules: Vec<(&'static str, &'static str)> = Vec::new();
    for rule in reports.iter().map(|r| (r.policy, r.placement)) {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    rules
        .into_iter()
        .map(|(policy, placement)| {
            let runs = || {
                reports
                    .iter()
                    .filter(move |r| (r.policy, r.placement) == (policy, placement))
            };
            Spread {
                policy,
                placement,
                runs: runs().count(),
                idle_slot_hours: summary(runs().map(|r| r.idle_slot_hours)),
                first_try_ratio: summary(runs().map(|r| r.first_try_ratio)),
            }
        })
        .collect()
}

/// Prints each rule's mean and range over several runs.
pub fn print_spread(reports: &[PolicyReport]) {
    for s in spreads(reports) {
        let ((idle, idle_lo, idle_hi), (first, first_lo, first_hi)) =
            (s.idle_slot_hours, s.first_try_ratio);
        println!(
            "{} {}, {} runs: idle slot-h {idle:.1} ({idle_lo:.1}–{idle_hi:.1}), first try \
             {:.2}% ({:.2}–{:.2}%)",
            s.policy,
            s.placement,
            s.runs,
            100.0 * first,
            100.0 * first_lo,
            100.0 * first_hi,
        );
    }
}

/// Prints one row per policy, how much fewer idle slot-hours the adaptive policy paid
/// when both ran, and where each policy's idle slots were.
pub fn print_table(reports: &[PolicyReport]) {
    println!(
        "{:<9} {:<13} {:>8} {:>9} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8} {:>5}",
        "policy",
        "placement",
        "sessions",
        "first try",
        "served",
        "p95 wait",
        "mean idle",
        "idle slot-h",
        "instance-h",
        "launches",
        "peak"
    );
    for r in reports {
        println!(
            "{:<9} {:<13} {:>8} {:>8.2}% {:>6.2}% {:>7.1}s {:>10.1} {:>11.1} {:>10.1} {:>8} {:>5}",
            r.policy,
            r.placement,
            r.sessions,
            r.first_try_ratio * 100.0,
            r.served_ratio * 100.0,
            r.p95_wait_secs,
            r.mean_idle_slots,
            r.idle_slot_hours,
            r.instance_hours,
            r.launches,
            r.peak_instances
        );
    }
    if let [fixed, adaptive] = reports {
        println!(
            "adaptive pays for {:.0}% fewer idle slot-hours than fixed",
            100.0 * (1.0 - adaptive.idle_slot_hours / fixed.idle_slot_hours.max(f64::MIN_POSITIVE))
        );
    }
    for r in reports {
        let i = &r.idle;
        let boot = r.boot_secs.map_or(String::new(), |secs| {
            format!("; a boot took {secs:.0} s (median)")
        });
        println!(
            "  {}: idle slot-h booting {:.1}, on empty instances {:.1}, beside sessions {:.1}, \
             draining {:.1}{boot}",
            r.policy, i.booting, i.empty, i.in_use, i.draining
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::IdleBreakdown;

    fn report(policy: &'static str, idle: f64, first: f64) -> PolicyReport {
        PolicyReport {
            policy,
            placement: "packed",
            sessions: 10,
            first_try_ratio: first,
            served_ratio: 1.0,
            p95_wait_secs: 0.0,
            mean_idle_slots: 0.0,
            idle_slot_hours: idle,
            instance_hours: 0.0,
            launches: 0,
            peak_instances: 0,
            errors: 0,
            misses_by_hour: Vec::new(),
            users_predicted: 0,
            sessions_remembered: 0,
            idle: IdleBreakdown::default(),
            boot_secs: None,
        }
    }

    #[test]
    fn interleaved_runs_of_two_rules_are_summed_up_per_rule() {
        let reports = [
            report("fixed", 500.0, 0.99),
            report("adaptive", 400.0, 0.995),
            report("fixed", 560.0, 0.98),
            report("adaptive", 440.0, 0.999),
            report("adaptive", 420.0, 0.997),
        ];
        let spreads = spreads(&reports);
        assert_eq!(spreads.len(), 2);
        let (fixed, adaptive) = (&spreads[0], &spreads[1]);
        assert_eq!((fixed.policy, fixed.runs), ("fixed", 2));
        assert_eq!(fixed.idle_slot_hours, (530.0, 500.0, 560.0));
        assert!((fixed.first_try_ratio.0 - 0.985).abs() < 1e-12);
        assert_eq!((adaptive.policy, adaptive.runs), ("adaptive", 3));
        assert_eq!(adaptive.idle_slot_hours, (420.0, 400.0, 440.0));
        assert_eq!(
            (adaptive.first_try_ratio.1, adaptive.first_try_ratio.2),
            (0.995, 0.999)
        );
    }
}

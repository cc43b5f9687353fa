//! The simulator's table.

use super::PolicyReport;

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
        println!(
            "  {}: idle slot-h booting {:.1}, on empty instances {:.1}, beside sessions {:.1}, \
             draining {:.1}",
            r.policy, i.booting, i.empty, i.in_use, i.draining
        );
    }
}

//! `SCALING_POLICY=adaptive` (SPEC §7): the free slots a region keeps, learned from its
//! recent arrivals and departures and its measured boot times, as a pure function so
//! the rule is tested without a database.
//!
//! A new instance takes a boot time (plus the reaction of the next capacity check) to
//! bring slots, so the buffer must absorb what the free slots lose over that horizon:
//! the arrivals expected minus the departures expected. Both are taken as Poisson: the
//! buffer is the expected loss (if positive) plus a margin of standard deviations of
//! it (`ADAPTIVE_SAFETY_SIGMAS`, [`Sigmas::DEFAULT`]), plus one, between the configured minimum and maximum. The arrival rate
//! expected is the larger of the long-span rate and the short-span rate extrapolated by
//! its rise over the long one, so a ramp raises the buffer ahead of itself while a quiet
//! night lets it fall.

use std::time::Duration;

/// How many standard deviations of the horizon's loss of free slots the buffer covers,
/// to the hundredth (so that settings holding one compare equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sigmas(u32);

impl Sigmas {
    /// Two: what the policy covered before the margin was a setting.
    pub const DEFAULT: Self = Self(200);

    /// `hundredths` hundredths of a standard deviation.
    pub const fn from_hundredths(hundredths: u32) -> Self {
        Self(hundredths)
    }

    /// The margin in hundredths of a standard deviation.
    pub const fn hundredths(self) -> u32 {
        self.0
    }

    /// The margin in standard deviations.
    pub fn get(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl Default for Sigmas {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::str::FromStr for Sigmas {
    type Err = String;

    /// A number from 0 to 10 with at most two decimals: `2`, `1.25`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 2 {
            return Err(format!(
                "invalid value {text:?}: expected a number of standard deviations with at most two decimals, such as 1.25"
            ));
        }
        let whole: u32 = whole
            .parse()
            .ok()
            .filter(|whole| *whole <= 10)
            .ok_or_else(|| format!("{text} is out of range: expected 0 to 10"))?;
        let cents: u32 = format!("{fraction:0<2}").parse().unwrap_or(0);
        let hundredths = whole * 100 + cents;
        if hundredths > 1000 {
            return Err(format!("{text} is out of range: expected 0 to 10"));
        }
        Ok(Self(hundredths))
    }
}

impl std::fmt::Display for Sigmas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 % 100 {
            0 => write!(f, "{}", self.0 / 100),
            cents if cents % 10 == 0 => write!(f, "{}.{}", self.0 / 100, cents / 10),
            cents => write!(f, "{}.{cents:02}", self.0 / 100),
        }
    }
}

/// What the region showed recently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// Mandelboxes assigned during the short span.
    pub arrivals_short: i64,
    pub short_span: Duration,
    /// Mandelboxes assigned during the long span (which includes the short one).
    pub arrivals_long: i64,
    /// Mandelboxes ended during the long span.
    pub departures_long: i64,
    pub long_span: Duration,
    /// The learned boot time, launch to `ACTIVE`; `None` before the region's first boot.
    pub boot_time: Option<Duration>,
}

/// The bounds and assumptions of the adaptive buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveBounds {
    /// `DESIRED_FREE_MANDELBOXES_MIN`.
    pub min: i64,
    /// `DESIRED_FREE_MANDELBOXES_MAX`.
    pub max: i64,
    /// The boot time assumed before a region's first boot is measured.
    pub default_boot_time: Duration,
    /// How long after a slot is taken the fleet may notice (the capacity check's interval).
    pub reaction: Duration,
    /// `ADAPTIVE_SAFETY_SIGMAS`: the margin over the expected loss.
    pub margin: Sigmas,
}

fn per_sec(count: i64, span: Duration) -> f64 {
    let secs = span.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    count.max(0) as f64 / secs
}

/// The arrivals per second to prepare for.
pub fn expected_arrival_rate(observed: &Observed) -> f64 {
    let short = per_sec(observed.arrivals_short, observed.short_span);
    let long = per_sec(observed.arrivals_long, observed.long_span);
    long.max(short + (short - long).max(0.0))
}

/// Whether the region is shrinking: more sessions ended than began over the long span.
/// Only then is a busy instance drained to give room back (consolidation): while the
/// region grows, the room would be launched back while the drained instance is still
/// paid for its sessions.
pub fn shrinking(observed: &Observed) -> bool {
    observed.departures_long > observed.arrivals_long
}

/// The free slots the region should keep now.
pub fn desired_free(observed: &Observed, bounds: &AdaptiveBounds) -> i64 {
    let horizon =
        (observed.boot_time.unwrap_or(bounds.default_boot_time) + bounds.reaction).as_secs_f64();
    let arrivals = expected_arrival_rate(observed) * horizon;
    let departures = per_sec(observed.departures_long, observed.long_span) * horizon;
    let spread = (arrivals + departures).sqrt();
    let wanted = if arrivals > 0.0 {
        ((arrivals - departures).max(0.0) + bounds.margin.get() * spread).ceil() as i64 + 1
    } else {
        0
    };
    wanted.clamp(bounds.min, bounds.max.max(bounds.min))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: AdaptiveBounds = AdaptiveBounds {
        min: 2,
        max: 60,
        default_boot_time: Duration::from_secs(120),
        reaction: Duration::from_secs(0),
        margin: Sigmas::DEFAULT,
    };

    /// Arrivals in the last 5 and 30 minutes, departures in the last 30.
    fn observed(short: i64, long: i64, gone: i64, boot_secs: Option<u64>) -> Observed {
        Observed {
            arrivals_short: short,
            short_span: Duration::from_secs(300),
            arrivals_long: long,
            departures_long: gone,
            long_span: Duration::from_secs(1800),
            boot_time: boot_secs.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_margin_reads_to_the_hundredth_and_prints_as_it_was_written() {
        for (text, hundredths) in [("2", 200), ("1.25", 125), ("0.5", 50), ("10", 1000)] {
            let sigmas: Sigmas = text.parse().unwrap();
            assert_eq!(sigmas.hundredths(), hundredths);
            assert_eq!(sigmas.to_string(), text);
        }
        for bad in ["", "-1", "1.234", "10.01", "11", "one", ".5", "1e2", "1,5"] {
            assert!(bad.parse::<Sigmas>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_smaller_margin_keeps_a_smaller_buffer() {
        let tight = AdaptiveBounds {
            margin: Sigmas::from_hundredths(125),
            ..BOUNDS
        };
        // 6 a minute coming and going over 90 s: 1.25 · √18 = 5.3 → 6, + 1.
        assert_eq!(desired_free(&observed(30, 180, 180, Some(90)), &tight), 7);
        let none = AdaptiveBounds {
            margin: Sigmas::from_hundredths(0),
            ..BOUNDS
        };
        // No margin: what is expected lost, + 1 (and the minimum).
        assert_eq!(desired_free(&observed(30, 180, 0, Some(90)), &none), 10);
    }

    #[test]
    fn a_quiet_region_keeps_the_minimum() {
        assert_eq!(desired_free(&observed(0, 0, 0, Some(90)), &BOUNDS), 2);
        // One arrival in half an hour, 90 s boots: 0.05 expected, covered by the minimum.
        assert_eq!(desired_free(&observed(0, 1, 1, Some(90)), &BOUNDS), 2);
    }

    #[test]
    fn a_steady_region_covers_the_spread_of_its_traffic_over_a_boot() {
        // 6 a minute coming and going over 90 s: 9 each way, none lost on average;
        // 2 · √18 = 8.5 → 9, + 1.
        assert_eq!(desired_free(&observed(30, 180, 180, Some(90)), &BOUNDS), 10);
        // Slower boots need more: 2 · √36 = 12, + 1.
        assert_eq!(
            desired_free(&observed(30, 180, 180, Some(180)), &BOUNDS),
            13
        );
    }

    #[test]
    fn a_growing_region_adds_what_it_loses_over_a_boot() {
        // 6 a minute arriving, none leaving yet: 9 lost over 90 s, + 2 · 3 = 15, + 1.
        assert_eq!(desired_free(&observed(30, 180, 0, Some(90)), &BOUNDS), 16);
    }

    #[test]
    fn a_ramp_is_met_ahead_and_a_fall_is_followed_slowly() {
        let steady = desired_free(&observed(30, 180, 180, Some(90)), &BOUNDS);
        // The last five minutes twice the half hour's pace: extrapolated to three times.
        let ramp = desired_free(&observed(60, 180, 180, Some(90)), &BOUNDS);
        assert!(ramp > steady + 10, "{ramp} vs {steady}");
        assert!((expected_arrival_rate(&observed(60, 180, 0, None)) - 0.3).abs() < 1e-9);
        // A lull after a busy half hour: the long span still holds the buffer up.
        assert!((expected_arrival_rate(&observed(0, 180, 0, None)) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn an_unmeasured_region_assumes_the_default_boot_and_the_bounds_hold() {
        // 12 each way over the default 120 s: 2 · √24 = 9.8 → 10, + 1.
        assert_eq!(desired_free(&observed(30, 180, 180, None), &BOUNDS), 11);
        assert_eq!(
            desired_free(&observed(3000, 18_000, 0, Some(90)), &BOUNDS),
            60
        );
        let inverted = AdaptiveBounds {
            min: 5,
            max: 3,
            ..BOUNDS
        };
        assert_eq!(desired_free(&observed(0, 0, 0, None), &inverted), 5);
    }

    #[test]
    fn a_region_shrinks_when_more_sessions_end_than_begin() {
        assert!(shrinking(&observed(5, 100, 140, None)));
        assert!(!shrinking(&observed(5, 100, 100, None)));
        assert!(!shrinking(&observed(0, 0, 0, None)));
    }

    #[test]
    fn the_reaction_time_adds_to_the_horizon() {
        let slow = AdaptiveBounds {
            reaction: Duration::from_secs(90),
            ..BOUNDS
        };
        assert_eq!(
            desired_free(&observed(30, 180, 180, Some(90)), &slow),
            desired_free(&observed(30, 180, 180, Some(180)), &BOUNDS)
        );
    }
}

//! Traces of users for the fleet simulator: CSV with the header
//! `at_secs,region,session_secs`, one user per row, and the generator of the shipped
//! ones (a fixed seed, and a generator of its own so a trace never changes with a crate's
//! version).

use std::fmt::Write as _;

/// One user: arrives at `at_secs` (trace time), asks for `region`, keeps the session
/// for `session_secs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub at_secs: f64,
    pub region: String,
    pub session_secs: f64,
}

/// Parses a trace; arrivals come out in time order. The error names the line.
pub fn parse(text: &str) -> Result<Vec<Arrival>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == "at_secs,region,session_secs" => {}
        _ => return Err("line 1: the header must be at_secs,region,session_secs".to_owned()),
    }
    let mut arrivals = Vec::new();
    for (index, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}: {line:?}", index + 1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [at, region, session] = fields.as_slice() else {
            return Err(bad("three fields expected"));
        };
        let number = |field: &str| {
            field
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        let (Some(at_secs), Some(session_secs)) = (number(at), number(session)) else {
            return Err(bad("times must be seconds, 0 or more"));
        };
        if region.is_empty() {
            return Err(bad("no region"));
        }
        arrivals.push(Arrival {
            at_secs,
            region: (*region).to_owned(),
            session_secs,
        });
    }
    arrivals.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    Ok(arrivals)
}

/// Writes a trace as CSV.
pub fn to_csv(arrivals: &[Arrival]) -> String {
    let mut out = String::from("at_secs,region,session_secs\n");
    for a in arrivals {
        let _ = writeln!(out, "{:.1},{},{:.0}", a.at_secs, a.region, a.session_secs);
    }
    out
}

/// SplitMix64: small, and the same numbers for a seed forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Exponential with mean `mean`.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }

    /// Log-normal with median `median` and shape `sigma`.
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        let normal = (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos();
        median * (sigma * normal).exp()
    }
}

/// Arrivals of a Poisson process whose rate (per second) at trace time `t` is
/// `rate(t)`, never above `peak`, from 0 to `length` seconds (by thinning).
pub fn poisson(
    rng: &mut Rng,
    length: f64,
    peak: f64,
    rate: impl Fn(f64) -> f64,
    mut user: impl FnMut(&mut Rng, f64) -> Arrival,
) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let mut t = 0.0;
    loop {
        t += rng.exponential(1.0 / peak);
        if t >= length {
            return arrivals;
        }
        if rng.unit() * peak < rate(t) {
            arrivals.push(user(rng, t));
        }
    }
}

/// Sessions of a GPU streaming service: log-normal, median 30 minutes, from 2 minutes
/// to 6 hours.
fn session(rng: &mut Rng) -> f64 {
    rng.log_normal(1800.0, 0.8).clamp(120.0, 6.0 * 3600.0)
}

/// A day in one region, from midnight: 0.4 arrivals a minute at 5:00, 8 at 17:00,
/// a smooth swing in between.
pub fn diurnal(seed: u64, region: &str) -> Vec<Arrival> {
    let (night, peak) = (0.4 / 60.0, 8.0 / 60.0);
    let rate = |t: f64| {
        let hour = t / 3600.0;
        let swing = (1.0 - (std::f64::consts::TAU * (hour - 5.0) / 24.0).cos()) / 2.0;
        night + (peak - night) * swing * swing
    };
    let mut rng = Rng::new(seed);
    poisson(&mut rng, 86_400.0, peak, rate, |rng, at_secs| Arrival {
        at_secs,
        region: region.to_owned(),
        session_secs: session(rng),
    })
}

/// Two hours in one region at a quiet 1 arrival a minute, with two bursts on top: 120
/// users within a minute at 0:10 (a launch event), 60 within a minute at 1:00.
pub fn burst(seed: u64, region: &str) -> Vec<Arrival> {
    let mut rng = Rng::new(seed);
    let user = |rng: &mut Rng, at_secs| Arrival {
        at_secs,
        region: region.to_owned(),
        session_secs: session(rng),
    };
    let mut arrivals = poisson(&mut rng, 7200.0, 1.0 / 60.0, |_| 1.0 / 60.0, user);
    for (start, users) in [(600.0, 120), (3600.0, 60)] {
        for _ in 0..users {
            let at = start + 60.0 * rng.unit();
            arrivals.push(user(&mut rng, at));
        }
    }
    arrivals.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    arrivals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_reads_back_what_was_written() {
        let trace = burst(7, "us-east-1");
        let read = parse(&to_csv(&trace)).unwrap();
        assert_eq!(read.len(), trace.len());
        assert!(read.windows(2).all(|w| w[0].at_secs <= w[1].at_secs));
        assert_eq!(read[0].region, "us-east-1");
    }

    #[test]
    fn bad_traces_are_refused_with_the_line() {
        assert!(parse("a,b,c\n").unwrap_err().contains("line 1"));
        let err = parse("at_secs,region,session_secs\n1,us-east-1,60\n2,us-east-1\n").unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
        let err = parse("at_secs,region,session_secs\n-1,us-east-1,60\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }

    #[test]
    fn the_generators_are_fixed_by_their_seed_and_shaped_as_said() {
        assert_eq!(diurnal(1, "r"), diurnal(1, "r"));
        let day = diurnal(1, "r");
        let in_hour = |h: f64| {
            day.iter()
                .filter(|a| a.at_secs >= h * 3600.0 && a.at_secs < (h + 1.0) * 3600.0)
                .count()
        };
        // About 24 an hour at night, about 480 at the peak.
        assert!(in_hour(5.0) < 60, "{}", in_hour(5.0));
        assert!(in_hour(17.0) > 380, "{}", in_hour(17.0));
        let burst = burst(1, "r");
        let in_burst = burst
            .iter()
            .filter(|a| a.at_secs >= 600.0 && a.at_secs < 660.0)
            .count();
        assert!(in_burst >= 120, "{in_burst}");
    }
}

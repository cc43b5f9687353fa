//! Traces of users for the fleet simulator: CSV with the header
//! `at_secs,region,session_secs[,user]`, one session per row (without `user`, every row
//! is a user of its own), histories of past sessions (`user,region,session_secs`,
//! oldest first), and the generators of the shipped ones (a fixed seed, and a generator
//! of its own so a trace never changes with a crate's version).

use std::fmt::Write as _;

mod returning;
pub use returning::{Habits, RETURNING_USERS, returning};

/// One session: its user arrives at `at_secs` (trace time), asks for `region`, keeps
/// the session for `session_secs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub at_secs: f64,
    pub region: String,
    pub session_secs: f64,
    /// `None`: a user of its own, seen only here.
    pub user: Option<String>,
}

/// One past session of a history: what a database would already hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Past {
    pub user: String,
    pub region: String,
    pub session_secs: f64,
}

/// The user of the arrival at `index` of a trace, as the server is told it.
pub fn user_of(arrival: &Arrival, index: usize) -> String {
    arrival
        .user
        .clone()
        .unwrap_or_else(|| format!("sim-{index}"))
}

/// A number of seconds, 0 or more.
fn seconds(field: &str) -> Option<f64> {
    field
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

/// A name: not empty, without spaces or quotes.
fn name(field: &str) -> Option<String> {
    (!field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\'' && c != '"'))
    .then(|| field.to_owned())
}

/// The rows of a CSV text under `header` (or one of `headers`), each split in fields,
/// with their line numbers; the error names the line.
fn rows<'a>(text: &'a str, headers: &[&str]) -> Result<Vec<(usize, Vec<&'a str>)>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if headers.contains(&header.trim()) => {}
        _ => {
            return Err(format!(
                "line 1: the header must be {}",
                headers.join(" or ")
            ));
        }
    }
    Ok(lines
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| (number, line.split(',').map(str::trim).collect()))
        .collect())
}

/// Parses a trace; arrivals come out in time order. The error names the line.
pub fn parse(text: &str) -> Result<Vec<Arrival>, String> {
    let mut arrivals = Vec::new();
    let headers = [
        "at_secs,region,session_secs",
        "at_secs,region,session_secs,user",
    ];
    for (number, fields) in rows(text, &headers)? {
        let bad = |what: &str| format!("line {number}: {what}: {:?}", fields.join(","));
        let (at, region, session, user) = match fields.as_slice() {
            [at, region, session] => (at, region, session, None),
            [at, region, session, user] => (at, region, session, Some(user)),
            _ => return Err(bad("three or four fields expected")),
        };
        let (Some(at_secs), Some(session_secs)) = (seconds(at), seconds(session)) else {
            return Err(bad("times must be seconds, 0 or more"));
        };
        let Some(region) = name(region) else {
            return Err(bad("no region"));
        };
        let user = match user {
            None => None,
            Some(user) => Some(name(user).ok_or_else(|| bad("a user is a name"))?),
        };
        arrivals.push(Arrival {
            at_secs,
            region,
            session_secs,
            user,
        });
    }
    arrivals.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    Ok(arrivals)
}

/// Parses a history (`user,region,session_secs`, oldest first). The error names the line.
pub fn parse_history(text: &str) -> Result<Vec<Past>, String> {
    let mut history = Vec::new();
    for (number, fields) in rows(text, &["user,region,session_secs"])? {
        let bad = |what: &str| format!("line {number}: {what}: {:?}", fields.join(","));
        let [user, region, session] = fields.as_slice() else {
            return Err(bad("three fields expected"));
        };
        let (Some(user), Some(region)) = (name(user), name(region)) else {
            return Err(bad("a user and a region are names"));
        };
        let Some(session_secs) = seconds(session) else {
            return Err(bad("a length is seconds, 0 or more"));
        };
        history.push(Past {
            user,
            region,
            session_secs,
        });
    }
    Ok(history)
}

/// Writes a trace as CSV (with the `user` column if any arrival has a user).
pub fn to_csv(arrivals: &[Arrival]) -> String {
    let users = arrivals.iter().any(|a| a.user.is_some());
    let mut out = String::from(if users {
        "at_secs,region,session_secs,user\n"
    } else {
        "at_secs,region,session_secs\n"
    });
    for (n, a) in arrivals.iter().enumerate() {
        let _ = write!(out, "{:.1},{},{:.0}", a.at_secs, a.region, a.session_secs);
        if users {
            let _ = write!(out, ",{}", user_of(a, n));
        }
        out.push('\n');
    }
    out
}

/// Writes a history as CSV.
pub fn history_to_csv(history: &[Past]) -> String {
    let mut out = String::from("user,region,session_secs\n");
    for p in history {
        let _ = writeln!(out, "{},{},{:.0}", p.user, p.region, p.session_secs);
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
        user: None,
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
        user: None,
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

    #[test]
    fn users_and_histories_are_checked() {
        let trace = parse("at_secs,region,session_secs,user\n1,r,60,alice\n2,r,60\n").unwrap();
        assert_eq!(trace[0].user.as_deref(), Some("alice"));
        assert_eq!(trace[1].user, None);
        assert_eq!(user_of(&trace[1], 1), "sim-1");
        let err = parse("at_secs,region,session_secs,user\n1,r,60,o'hara\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse_history("user,region,session_secs\nalice,r,-5\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        assert!(
            parse_history("user,region\n")
                .unwrap_err()
                .contains("line 1")
        );
    }
}

//! Traces of users for the fleet simulator: CSV with the header
//! `at_secs,region,session_secs[,user]`, one session per row (without `user`, every row
//! is a user of its own), histories of past sessions (`user,region,session_secs`,
//! oldest first), and the generators of the shipped ones (a fixed seed, and a generator
//! of its own so a trace never changes with a crate's version).

use std::fmt::Write as _;

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

/// How many users [`returning`] draws its sessions from.
pub const RETURNING_USERS: usize = 4000;

/// The least time between the end of a user's session and their next one in
/// [`returning`] (so that a replay never sees a user ask while their last session's
/// end is still on its way).
const USER_PAUSE: f64 = 300.0;

/// One user of [`returning`]: a habit of their own.
struct Habit {
    /// The median of their sessions.
    median: f64,
    /// How much their sessions vary around it (log-normal shape).
    spread: f64,
    /// How often they come, relative to others.
    activity: f64,
    /// No past sessions: their first day is in the trace.
    new: bool,
    off_habit: f64,
}

/// How habitual the users of [`returning`] are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Habits {
    /// How much a user's sessions vary around their own median, on average (the shape
    /// of a log-normal; each user's is between 0.6 and 1.4 times this).
    pub spread: f64,
    /// The share of sessions that follow no habit: whatever the population does (a
    /// quick look, a long night).
    pub off_habit: f64,
}

impl Default for Habits {
    fn default() -> Self {
        Self {
            spread: 0.3,
            off_habit: 0.1,
        }
    }
}

impl Habit {
    fn draw(rng: &mut Rng, habits: Habits) -> Self {
        Self {
            median: rng.log_normal(1800.0, 0.7).clamp(300.0, 4.0 * 3600.0),
            spread: habits.spread * (0.6 + 0.8 * rng.unit()),
            activity: rng.exponential(1.0),
            new: rng.unit() < 0.15,
            off_habit: habits.off_habit,
        }
    }

    /// One session: their habit, or (a share `off_habit` of them) whatever the
    /// population does.
    fn session(&self, rng: &mut Rng) -> f64 {
        if rng.unit() < self.off_habit {
            session(rng)
        } else {
            rng.log_normal(self.median, self.spread)
                .clamp(120.0, 6.0 * 3600.0)
        }
    }
}

/// `days` days of returning users in one region, from midnight, arriving as in
/// [`diurnal`] (each day its own draws), each session by one of [`RETURNING_USERS`]
/// users picked by how often they come (never one still in a session or in the five
/// minutes after): a user's sessions
/// vary around a habit of their own (a median between 5 minutes and 4 hours, log-normal
/// around it, as [`Habits`] says), some follow none. Also their history: up to 20 past
/// sessions each (more for those who come more), none for the 15 % who are new.
pub fn returning(seed: u64, region: &str, days: u32, habits: Habits) -> (Vec<Arrival>, Vec<Past>) {
    let mut rng = Rng::new(seed);
    let habits: Vec<Habit> = (0..RETURNING_USERS)
        .map(|_| Habit::draw(&mut rng, habits))
        .collect();
    let user = |n: usize| format!("user-{n:05}");
    let mut history = Vec::new();
    // Past sessions, oldest first across users as a database would have them.
    let past: Vec<usize> = habits
        .iter()
        .map(|h| {
            if h.new {
                0
            } else {
                (2.0 + 6.0 * h.activity).round().min(20.0) as usize
            }
        })
        .collect();
    for round in 0..20 {
        for (n, habit) in habits.iter().enumerate() {
            if round < past[n] {
                history.push(Past {
                    user: user(n),
                    region: region.to_owned(),
                    session_secs: habit.session(&mut rng),
                });
            }
        }
    }
    let mut cumulative = Vec::with_capacity(habits.len());
    let mut total = 0.0;
    for habit in &habits {
        total += habit.activity;
        cumulative.push(total);
    }
    let mut busy_until = vec![f64::NEG_INFINITY; habits.len()];
    let mut arrivals = Vec::new();
    for day in 0..days {
        let offset = f64::from(day) * 86_400.0;
        let times: Vec<f64> = diurnal(rng.next_u64(), region)
            .into_iter()
            .map(|a| a.at_secs + offset)
            .collect();
        for at_secs in times {
            // By activity, passing over users still in a session.
            let picked = (0..50).find_map(|_| {
                let target = rng.unit() * total;
                let n = cumulative
                    .partition_point(|c| *c < target)
                    .min(habits.len() - 1);
                (busy_until[n] <= at_secs).then_some(n)
            });
            let Some(n) = picked else { continue };
            let session_secs = habits[n].session(&mut rng);
            busy_until[n] = at_secs + session_secs + USER_PAUSE;
            arrivals.push(Arrival {
                at_secs,
                region: region.to_owned(),
                session_secs,
                user: Some(user(n)),
            });
        }
    }
    (arrivals, history)
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
    fn returning_users_keep_habits_and_never_overlap_themselves() {
        let (day, history) = returning(3, "r", 1, Habits::default());
        assert_eq!(
            returning(3, "r", 1, Habits::default()),
            (day.clone(), history.clone())
        );
        assert!(day.len() > 4000, "{}", day.len());
        let read = parse(&to_csv(&day)).unwrap();
        assert_eq!(read.len(), day.len());
        assert!(read.iter().all(|a| a.user.is_some()));
        assert_eq!(
            parse_history(&history_to_csv(&history)).unwrap().len(),
            history.len()
        );
        // Most users come back: they are in the history.
        let known: std::collections::HashSet<&str> =
            history.iter().map(|p| p.user.as_str()).collect();
        let returning = day
            .iter()
            .filter(|a| known.contains(a.user.as_deref().unwrap()))
            .count();
        assert!(
            returning * 10 > day.len() * 7,
            "{returning} of {}",
            day.len()
        );
        // Nobody is in two sessions at once, nor back within five minutes.
        let mut ends = std::collections::HashMap::new();
        for a in &day {
            let user = a.user.clone().unwrap();
            if let Some(end) = ends.get(&user) {
                assert!(a.at_secs >= *end + 300.0, "{user}");
            }
            ends.insert(user, a.at_secs + a.session_secs);
        }
        // A user's sessions are nearer their own median than the population's.
        let mut by_user: std::collections::HashMap<&str, Vec<f64>> = Default::default();
        for p in &history {
            by_user
                .entry(&p.user)
                .or_default()
                .push(p.session_secs.ln());
        }
        let spread = |values: &[f64]| {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
        };
        let all: Vec<f64> = history.iter().map(|p| p.session_secs.ln()).collect();
        let within: Vec<f64> = by_user
            .values()
            .filter(|v| v.len() >= 5)
            .map(|v| spread(v))
            .collect();
        let within = within.iter().sum::<f64>() / within.len() as f64;
        assert!(within < spread(&all) / 2.0, "{within} {}", spread(&all));
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

//! Days of returning users with habits of their own, and their history
//! (`trace-gen returning`): what placement by expected end learns from.

use super::{Arrival, Past, Rng, diurnal, session};

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
/// [`diurnal`](super::diurnal) (each day its own draws), each session by one of [`RETURNING_USERS`]
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
    use super::super::{history_to_csv, parse, parse_history, to_csv};
    use super::*;

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
}

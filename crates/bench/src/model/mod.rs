//! The fleet model: a discrete-event replay of a trace through the real sizing rules
//! ([`scaling::sizing::decide`], [`scaling::adaptive::desired_free`]) without a server,
//! a database or hosts, in well under a second for a day. It stands in for what the
//! simulator ([`crate::sim`]) measures through the real server (placement,
//! boots, waiting users, unmet demand, what is paid) so that rules can be
//! compared over many traces before one is run through the simulator; both say where
//! the idle slots are: booting, on empty instances, on instances in use, on draining
//! ones ([`IdleBreakdown`]).
//!
//! It places as `PLACEMENT` does ([`Placement::Packed`], [`Placement::Lifetime`] with
//! the server's predictor, [`scaling::lifetime`], fed the history and the sessions that
//! end), or knowing how long each session will last ([`Placement::KnownLengths`]),
//! which no server can: a bound on what any placement rule could save.

mod fleet;
mod predictions;
mod queue;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use scaling::adaptive::Observed;
use scaling::lifetime::Lengths;
use scaling::sizing::{Decision, SizingPolicy, SizingRules, decide};
use scaling::{Learning, ScalingPolicy};
use serde::Serialize;

pub use crate::sim::IdleBreakdown;
pub use crate::sim::Placement;
use crate::sim::{Arrival, Past, Policy, PolicyReport, SimOptions};
use fleet::{Fleet, Session};
use predictions::{Predictions, habits};
use queue::{Event, Queue};

/// How the model runs (durations in trace time): the simulator's options (placement
/// included), and the server's intervals.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub sim: SimOptions,
    /// The prediction job (`PREDICTION_INTERVAL_SECS`): users' predictions, overdue
    /// sessions re-predicted, the region's distribution.
    pub prediction_interval: Duration,
    /// The periodic pass (`SCALE_DOWN_INTERVAL_SECS`).
    pub pass_interval: Duration,
    /// How long a refusal counts as unmet demand.
    pub refusal_counts_for: Duration,
    pub learning: Learning,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            sim: SimOptions::default(),
            prediction_interval: Duration::from_secs(60),
            pass_interval: Duration::from_secs(300),
            refusal_counts_for: models::demand::REFUSAL_COUNTS_FOR,
            learning: Learning::default(),
        }
    }
}

/// What one policy did on one trace, in the model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    #[serde(flatten)]
    pub report: PolicyReport,
    /// Idle slot-hours by hour of the trace.
    pub idle_by_hour: Vec<f64>,
}

/// A user waiting for a slot.
struct Waiter {
    user: usize,
    deadline: f64,
}

/// The state of one replay.
struct Model<'a> {
    arrivals: &'a [Arrival],
    options: &'a ModelOptions,
    policy: Policy,
    queue: Queue,
    fleet: Fleet,
    waiting: VecDeque<Waiter>,
    /// Refused users and until when they count as unmet demand.
    unmet: BTreeMap<usize, f64>,
    /// Users holding a session.
    holding: HashSet<usize>,
    /// Assignment and departure times within the long learning span.
    assigned: VecDeque<f64>,
    departed: VecDeque<f64>,
    booted: bool,
    first_try: usize,
    waits: Vec<f64>,
    misses_by_hour: Vec<usize>,
    predictions: Predictions,
    /// `KnownHabits`: for each arrival, its user's other lengths, in the trace and the
    /// history.
    habits: Vec<Option<Rc<Lengths>>>,
}

/// Replays `arrivals` under `policy` in the model, on an empty history.
pub fn run(arrivals: &[Arrival], policy: Policy, options: &ModelOptions) -> ModelReport {
    run_with_history(arrivals, &[], policy, options)
}

/// Replays `arrivals` under `policy` in the model, `history` known before it starts.
pub fn run_with_history(
    arrivals: &[Arrival],
    history: &[Past],
    policy: Policy,
    options: &ModelOptions,
) -> ModelReport {
    let length = arrivals.last().map_or(0.0, |a| a.at_secs);
    let mut model = Model {
        arrivals,
        options,
        policy,
        queue: Queue::default(),
        fleet: Fleet::new(options.sim.capacity),
        waiting: VecDeque::new(),
        unmet: BTreeMap::new(),
        holding: HashSet::new(),
        assigned: VecDeque::new(),
        departed: VecDeque::new(),
        booted: false,
        first_try: 0,
        waits: Vec::new(),
        misses_by_hour: vec![0; (length / 3600.0).floor() as usize + 1],
        predictions: Predictions::new(history),
        habits: if options.sim.placement == Placement::KnownHabits {
            habits(arrivals, history)
        } else {
            Vec::new()
        },
    };
    for (n, arrival) in arrivals.iter().enumerate() {
        model.queue.push(arrival.at_secs, Event::Arrive(n));
    }
    let pass = options.pass_interval.as_secs_f64().max(1.0);
    let mut at = 0.0;
    while at <= length {
        model.queue.push(at, Event::Pass);
        at += pass;
    }
    if matches!(
        options.sim.placement,
        Placement::Lifetime | Placement::KnownHabits
    ) {
        let every = options.prediction_interval.as_secs_f64().max(1.0);
        let mut at = every;
        while at <= length {
            model.queue.push(at, Event::Predict);
            at += every;
        }
    }
    // Past the trace's end nothing is metered, but users still waiting get their answer.
    while let Some((now, event)) = model.queue.pop() {
        if now > length && model.waiting.iter().all(|w| w.deadline <= now) {
            break;
        }
        model.fleet.meter(now.min(length));
        model.handle(now, event);
    }
    model.fleet.meter(length);
    model.report(length)
}

impl Model<'_> {
    fn handle(&mut self, now: f64, event: Event) {
        self.waiting.retain(|w| w.deadline > now);
        match event {
            Event::Arrive(user) => {
                if self.place(now, user) {
                    self.first_try += 1;
                    self.waits.push(0.0);
                } else {
                    let wait = self.options.sim.client_wait.as_secs_f64();
                    let counts = self.options.refusal_counts_for.as_secs_f64().max(wait);
                    self.unmet.insert(user, now + counts);
                    self.waiting.push_back(Waiter {
                        user,
                        deadline: now + wait,
                    });
                    let at = self.arrivals[user].at_secs;
                    if let Some(hour) = self.misses_by_hour.get_mut((at / 3600.0) as usize) {
                        *hour += 1;
                    }
                }
                self.check(now);
            }
            Event::End { user, instance, at } => {
                self.holding.remove(&user);
                let name = crate::sim::trace::user_of(&self.arrivals[user], user);
                self.predictions
                    .ended(&name, self.arrivals[user].session_secs);
                self.departed.push_back(now);
                self.fleet.end_session(instance, at);
                self.serve_waiters(now);
            }
            Event::Ready(instance) => {
                self.booted = true;
                self.fleet.ready(instance);
                self.serve_waiters(now);
            }
            Event::Pass => self.check(now),
            Event::Predict => {
                // The region's distribution moves slowly: once an hour.
                if (now / 3600.0).fract() * 3600.0 < self.options.prediction_interval.as_secs_f64()
                {
                    self.predictions.refresh_region();
                }
                self.predictions.refresh_users();
                self.fleet.repredict(now);
            }
        }
    }

    /// Places `user`'s session if there is a slot; whether there was.
    fn place(&mut self, now: f64, user: usize) -> bool {
        let arrival = &self.arrivals[user];
        let length = arrival.session_secs;
        let placement = self.options.sim.placement;
        let (prediction, own) = match placement {
            Placement::Lifetime => self
                .predictions
                .of(&crate::sim::trace::user_of(arrival, user))
                .map_or((None, false), |(p, own)| (Some(p), own)),
            Placement::KnownHabits => (self.habits[user].clone(), true),
            _ => (None, false),
        };
        let session = Session {
            end: now + length,
            start: now,
            expected_end: prediction
                .as_ref()
                .and_then(|p| p.expected())
                .map_or(f64::NEG_INFINITY, |expected| now + expected),
            own,
            prediction,
        };
        let Some(instance) = self.fleet.place(session, placement) else {
            return false;
        };
        self.holding.insert(user);
        self.assigned.push_back(now);
        self.queue.push(
            now + length,
            Event::End {
                user,
                instance,
                at: now + length,
            },
        );
        true
    }

    /// Waiters look again, longest-waiting first, until one finds no slot.
    fn serve_waiters(&mut self, now: f64) {
        let mut served = false;
        while let Some(waiter) = self.waiting.front() {
            let user = waiter.user;
            if !self.place(now, user) {
                break;
            }
            self.waiting.pop_front();
            self.waits.push(now - self.arrivals[user].at_secs);
            served = true;
        }
        if served {
            self.check(now);
        }
    }

    /// One capacity check, with the server's rules.
    fn check(&mut self, now: f64) {
        self.unmet.retain(|_, until| *until > now);
        let demand = self
            .unmet
            .keys()
            .filter(|user| !self.holding.contains(user))
            .count();
        let view = self.fleet.view(i64::try_from(demand).unwrap_or(i64::MAX));
        let observed = self.observed(now);
        let policy = SizingPolicy::new(&self.rules(), observed.as_ref(), self.options.sim.capacity);
        match decide(&view, &policy) {
            Decision::Nothing => {}
            Decision::Launch(count) => self.launch(now, count),
            Decision::TakeBack { instances, launch } => {
                self.fleet.take_back(&instances);
                self.launch(now, launch);
            }
            Decision::Drain(names) => {
                for name in names {
                    self.fleet.drain(&name);
                }
            }
            Decision::Consolidate(name) => self.fleet.drain(&name),
        }
    }

    /// Launches `count` instances, ready a boot from `now`.
    fn launch(&mut self, now: f64, count: u32) {
        let boot = self.options.sim.boot.as_secs_f64();
        for _ in 0..count {
            let instance = self.fleet.launch();
            self.queue.push(now + boot, Event::Ready(instance));
        }
    }

    /// The server's sizing rules for the model's options: one instance at least per
    /// launch, no cap, the check noticing within a second.
    fn rules(&self) -> SizingRules {
        let sim = &self.options.sim;
        SizingRules {
            policy: match self.policy {
                Policy::Fixed => ScalingPolicy::Fixed,
                Policy::Adaptive => ScalingPolicy::Adaptive {
                    min: i64::from(sim.adaptive_min),
                    max: i64::from(sim.adaptive_max),
                    margin: sim.safety_sigmas,
                },
            },
            desired_free: i64::from(sim.desired_free),
            buffer: 1,
            max_instances: None,
            default_boot_time: self.options.learning.default_boot_time,
            reaction: Duration::from_secs(1),
        }
    }

    /// What the region showed by `now`, as the server would read it (the adaptive
    /// policy only).
    fn observed(&mut self, now: f64) -> Option<Observed> {
        if self.policy == Policy::Fixed {
            return None;
        }
        let sim = &self.options.sim;
        let learning = self.options.learning;
        let (short, long) = (
            learning.short_span.as_secs_f64(),
            learning.long_span.as_secs_f64(),
        );
        while self.assigned.front().is_some_and(|at| *at <= now - long) {
            self.assigned.pop_front();
        }
        while self.departed.front().is_some_and(|at| *at <= now - long) {
            self.departed.pop_front();
        }
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Some(Observed {
            arrivals_short: count(self.assigned.iter().filter(|at| **at > now - short).count()),
            short_span: learning.short_span,
            arrivals_long: count(self.assigned.len()),
            departures_long: count(self.departed.len()),
            long_span: learning.long_span,
            boot_time: self.booted.then_some(sim.boot),
        })
    }

    fn report(mut self, length: f64) -> ModelReport {
        let sessions = self.arrivals.len();
        let ratio = |n: usize| {
            if sessions == 0 {
                1.0
            } else {
                n as f64 / sessions as f64
            }
        };
        self.waits.sort_by(f64::total_cmp);
        let p95 = self
            .waits
            .get(
                ((self.waits.len() as f64 * 0.95) as usize).min(self.waits.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(0.0);
        let meter = self.fleet.metered();
        let idle = meter.idle;
        let idle_by_hour = meter.idle_by_hour;
        let idle_slot_hours = idle.total();
        ModelReport {
            report: PolicyReport {
                policy: self.policy.name(),
                placement: self.options.sim.placement.name(),
                sessions,
                first_try_ratio: ratio(self.first_try),
                served_ratio: ratio(self.waits.len()),
                p95_wait_secs: p95,
                mean_idle_slots: if length > 0.0 {
                    idle_slot_hours * 3600.0 / length
                } else {
                    0.0
                },
                idle_slot_hours,
                instance_hours: meter.instance_hours,
                launches: meter.launches,
                peak_instances: meter.peak,
                errors: 0,
                misses_by_hour: self.misses_by_hour,
                users_predicted: 0,
                sessions_remembered: 0,
                idle,
                boot_secs: Some(self.options.sim.boot.as_secs_f64()),
            },
            idle_by_hour,
        }
    }
}

#[cfg(test)]
mod tests;

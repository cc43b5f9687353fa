//! The model's instances: their states, their sessions, placement, and what they cost.

use std::collections::BTreeMap;
use std::rc::Rc;

use models::{InstanceName, InstanceStatus, UnixMillis};
use scaling::lifetime::Lengths;
use scaling::sizing::{FleetView, InstanceLoad};

use super::IdleBreakdown;
use crate::sim::Placement;

/// A session on an instance.
pub(super) struct Session {
    /// When it really ends.
    pub end: f64,
    pub start: f64,
    /// When it is expected to end (`NEG_INFINITY`: nothing known), and what that was
    /// predicted from.
    pub expected_end: f64,
    /// Whether that is predicted from the user's own sessions (else the region's: the
    /// session is placed packed, its expected end still counted for its instance).
    pub own: bool,
    pub prediction: Option<Rc<Lengths>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Booting,
    Active,
    Draining,
}

struct Instance {
    name: InstanceName,
    state: State,
    sessions: Vec<Session>,
}

impl Instance {
    /// When its last session ends (`NEG_INFINITY` without one).
    fn last_end(&self) -> f64 {
        self.sessions
            .iter()
            .map(|s| s.end)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// When its last session is expected to end (`NEG_INFINITY` without one).
    fn expected_end(&self) -> f64 {
        self.sessions
            .iter()
            .map(|s| s.expected_end)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// What was paid, integrated over time.
#[derive(Debug, Clone, Default)]
pub(super) struct Metered {
    pub idle: IdleBreakdown,
    /// Idle slot-hours by hour of the trace.
    pub idle_by_hour: Vec<f64>,
    pub instance_hours: f64,
    pub launches: usize,
    pub peak: usize,
}

/// Every instance the cloud runs, by launch number.
pub(super) struct Fleet {
    capacity: i64,
    instances: BTreeMap<u64, Instance>,
    launched: u64,
    /// The last time metered.
    metered_to: f64,
    metered: Metered,
}

impl Fleet {
    pub fn new(capacity: i64) -> Self {
        Self {
            capacity: capacity.max(1),
            instances: BTreeMap::new(),
            launched: 0,
            metered_to: 0.0,
            metered: Metered::default(),
        }
    }

    fn free(&self, instance: &Instance) -> i64 {
        self.capacity - instance.sessions.len() as i64
    }

    /// Places `session`; the instance it went to, if one had a slot.
    pub fn place(&mut self, session: Session, placement: Placement) -> Option<u64> {
        let end = session.end;
        let open: Vec<(&u64, &Instance)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.state == State::Active && self.free(i) > 0)
            .collect();
        // Fewest free slots first, then by name (the server's order).
        let packed = |open: &[(&u64, &Instance)]| {
            open.iter()
                .min_by(|(_, a), (_, b)| {
                    self.free(a)
                        .cmp(&self.free(b))
                        .then_with(|| a.name.cmp(&b.name))
                })
                .map(|(n, _)| **n)
        };
        let chosen = match placement {
            Placement::Packed => packed(&open),
            // As `hardware.place_mandelbox` does with PLACEMENT=lifetime.
            Placement::Lifetime | Placement::KnownHabits
                if session.own && session.expected_end.is_finite() =>
            {
                let expected = session.expected_end;
                let busy = open.iter().filter(|(_, i)| !i.sessions.is_empty());
                let (outlasting, shorter): (Vec<_>, Vec<_>) =
                    busy.partition(|(_, i)| i.expected_end() >= expected);
                outlasting
                    .into_iter()
                    .min_by(|(_, a), (_, b)| {
                        a.expected_end()
                            .total_cmp(&b.expected_end())
                            .then_with(|| self.free(a).cmp(&self.free(b)))
                            .then_with(|| a.name.cmp(&b.name))
                    })
                    .or_else(|| {
                        shorter.into_iter().max_by(|(_, a), (_, b)| {
                            a.expected_end()
                                .total_cmp(&b.expected_end())
                                .then_with(|| self.free(b).cmp(&self.free(a)))
                                .then_with(|| b.name.cmp(&a.name))
                        })
                    })
                    .map(|(n, _)| *n)
                    .or_else(|| packed(&open))
            }
            Placement::Lifetime | Placement::KnownHabits => packed(&open),
            Placement::KnownLengths => {
                let open = open.into_iter();
                let (outlasting, shorter): (Vec<_>, Vec<_>) =
                    open.partition(|(_, i)| i.last_end() >= end);
                // The instance that stays up past `end` by the least; else the one that
                // stays up longest, which the session extends the least.
                outlasting
                    .into_iter()
                    .min_by(|(_, a), (_, b)| a.last_end().total_cmp(&b.last_end()))
                    .or_else(|| {
                        shorter
                            .into_iter()
                            .max_by(|(_, a), (_, b)| a.last_end().total_cmp(&b.last_end()))
                    })
                    .map(|(n, _)| *n)
            }
        }?;
        if let Some(instance) = self.instances.get_mut(&chosen) {
            instance.sessions.push(session);
        }
        Some(chosen)
    }

    pub fn end_session(&mut self, number: u64, end: f64) {
        let Some(instance) = self.instances.get_mut(&number) else {
            return;
        };
        if let Some(at) = instance.sessions.iter().position(|s| s.end == end) {
            instance.sessions.swap_remove(at);
        }
        // A draining host shuts down after its last session.
        if instance.state == State::Draining && instance.sessions.is_empty() {
            self.instances.remove(&number);
        }
    }

    /// Re-predicts the sessions that outlived their expected end by `now`, by their age
    /// (as the server's prediction job does).
    pub fn repredict(&mut self, now: f64) {
        for instance in self.instances.values_mut() {
            for session in &mut instance.sessions {
                if session.expected_end < now
                    && let Some(prediction) = &session.prediction
                {
                    session.expected_end = now + prediction.expected_remaining(now - session.start);
                }
            }
        }
    }

    pub fn launch(&mut self) -> u64 {
        self.launched += 1;
        let number = self.launched;
        let name = InstanceName::parse(&format!("model-{number:06}"))
            .expect("model instance names are valid");
        self.instances.insert(
            number,
            Instance {
                name,
                state: State::Booting,
                sessions: Vec::new(),
            },
        );
        self.metered.launches += 1;
        self.metered.peak = self.metered.peak.max(self.instances.len());
        number
    }

    pub fn ready(&mut self, number: u64) {
        if let Some(instance) = self.instances.get_mut(&number) {
            instance.state = State::Active;
        }
    }

    /// Drains `name`: an empty instance ends at once, a busy one after its sessions.
    pub fn drain(&mut self, name: &InstanceName) {
        let Some((&number, instance)) = self.instances.iter_mut().find(|(_, i)| &i.name == name)
        else {
            return;
        };
        if instance.sessions.is_empty() {
            self.instances.remove(&number);
        } else {
            instance.state = State::Draining;
        }
    }

    /// Takes these draining instances back: `ACTIVE` again, their sessions with them.
    pub fn take_back(&mut self, names: &[InstanceName]) {
        for instance in self.instances.values_mut() {
            if instance.state == State::Draining && names.contains(&instance.name) {
                instance.state = State::Active;
            }
        }
    }

    /// The fleet as the sizing decision sees it.
    pub fn view(&self, unmet_demand: i64) -> FleetView {
        FleetView {
            region_enabled: true,
            image_active: true,
            instances: self
                .instances
                .values()
                .map(|i| InstanceLoad {
                    name: i.name.clone(),
                    status: match i.state {
                        State::Booting => InstanceStatus::PreConnection,
                        State::Active => InstanceStatus::Active,
                        State::Draining => InstanceStatus::Draining,
                    },
                    capacity: self.capacity,
                    mandelboxes: i.sessions.len() as i64,
                    // Only consolidations drain busy instances here, and a draining
                    // instance ends with its last session.
                    reclaimable: i.state == State::Draining,
                    expected_end: UnixMillis::from_millis(match i.expected_end() {
                        end if end.is_finite() => (end * 1000.0) as i64,
                        _ => 0,
                    }),
                })
                .collect(),
            region_instances: u32::try_from(self.instances.len()).unwrap_or(u32::MAX),
            unmet_demand,
        }
    }

    /// Adds what was paid from the last metering to `now`.
    pub fn meter(&mut self, now: f64) {
        // Hour by hour, so that the idle slots fall in the hour they were paid in.
        while self.metered_to < now {
            let hour = (self.metered_to / 3600.0).floor();
            let to = now.min((hour + 1.0) * 3600.0);
            self.meter_span(hour as usize, (to - self.metered_to) / 3600.0);
            self.metered_to = to;
        }
    }

    fn meter_span(&mut self, hour: usize, hours: f64) {
        let idle = &mut self.metered.idle;
        let mut total = 0.0;
        for instance in self.instances.values() {
            let free = (self.capacity - instance.sessions.len() as i64).max(0) as f64 * hours;
            total += free;
            match instance.state {
                State::Booting => idle.booting += free,
                State::Draining => idle.draining += free,
                State::Active if instance.sessions.is_empty() => idle.empty += free,
                State::Active => idle.in_use += free,
            }
        }
        let by_hour = &mut self.metered.idle_by_hour;
        if by_hour.len() <= hour {
            by_hour.resize(hour + 1, 0.0);
        }
        by_hour[hour] += total;
        self.metered.instance_hours += self.instances.len() as f64 * hours;
    }

    pub fn metered(&self) -> Metered {
        self.metered.clone()
    }
}

//! The model's events, in time order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Event {
    /// A user asks (index into the trace).
    Arrive(usize),
    /// A session ends: its user, its instance, and its end time.
    End { user: usize, instance: u64, at: f64 },
    /// An instance's host registers.
    Ready(u64),
    /// The periodic pass.
    Pass,
    /// The prediction job.
    Predict,
}

/// The events to come, earliest first (ties in the order they were pushed).
#[derive(Default)]
pub(super) struct Queue {
    heap: BinaryHeap<Reverse<(Time, u64)>>,
    events: HashMap<u64, Event>,
    pushed: u64,
}

/// A time that orders totally.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Queue {
    pub fn push(&mut self, at: f64, event: Event) {
        self.pushed += 1;
        self.heap.push(Reverse((Time(at), self.pushed)));
        self.events.insert(self.pushed, event);
    }

    pub fn pop(&mut self) -> Option<(f64, Event)> {
        let Reverse((Time(at), n)) = self.heap.pop()?;
        self.events.remove(&n).map(|event| (at, event))
    }
}

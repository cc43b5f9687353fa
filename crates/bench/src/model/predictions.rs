//! What the model knows of sessions to come: the prediction job's state (every user's
//! recent lengths and what it last predicted from them, as `scaling::predictions`
//! keeps them in PostgreSQL) and, for the `known-habits` bound, every other session of
//! each user.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use scaling::lifetime::Lengths;

use crate::sim::{Arrival, Past};

/// How many past sessions of a user are kept (as `hardware.session_history` does).
const HISTORY_PER_USER: usize = 20;

/// What the prediction job knows: every user's recent lengths, and what it last
/// predicted from them.
#[derive(Default)]
pub(super) struct Predictions {
    history: HashMap<String, VecDeque<f64>>,
    /// Users whose history changed since the job last ran.
    changed: HashSet<String>,
    users: HashMap<String, Rc<Lengths>>,
    region: Rc<Lengths>,
}

impl Predictions {
    pub(super) fn new(history: &[Past]) -> Self {
        let mut predictions = Self {
            region: Rc::new(Lengths::observed(&[])),
            ..Self::default()
        };
        for past in history {
            predictions.ended(&past.user, past.session_secs);
        }
        predictions.refresh_region();
        predictions.refresh_users();
        predictions
    }

    pub(super) fn ended(&mut self, user: &str, length: f64) {
        let lengths = self.history.entry(user.to_owned()).or_default();
        lengths.push_back(length);
        if lengths.len() > HISTORY_PER_USER {
            lengths.pop_front();
        }
        self.changed.insert(user.to_owned());
    }

    pub(super) fn refresh_region(&mut self) {
        let all: Vec<f64> = self.history.values().flatten().copied().collect();
        self.region = Rc::new(Lengths::region(&all));
    }

    pub(super) fn refresh_users(&mut self) {
        for user in std::mem::take(&mut self.changed) {
            let own: Vec<f64> = self.history[&user].iter().copied().collect();
            self.users
                .insert(user, Rc::new(Lengths::for_user(&own, &self.region)));
        }
    }

    /// What is known of `user`'s next session, and whether from their own history
    /// (else the region's); `None` if nothing at all.
    pub(super) fn of(&self, user: &str) -> Option<(Rc<Lengths>, bool)> {
        let (prediction, own) = match self.users.get(user) {
            Some(prediction) => (prediction, true),
            None => (&self.region, false),
        };
        (!prediction.is_empty()).then(|| (prediction.clone(), own))
    }
}

/// What `KnownHabits` knows of each arrival: the lengths of every other session of its
/// user, in `arrivals` and `history` (none for a user seen once).
pub(super) fn habits(arrivals: &[Arrival], history: &[Past]) -> Vec<Option<Rc<Lengths>>> {
    let users: Vec<String> = arrivals
        .iter()
        .enumerate()
        .map(|(n, arrival)| crate::sim::trace::user_of(arrival, n))
        .collect();
    let mut lengths: HashMap<&str, Vec<f64>> = HashMap::new();
    for past in history {
        lengths
            .entry(&past.user)
            .or_default()
            .push(past.session_secs);
    }
    for (user, arrival) in users.iter().zip(arrivals) {
        lengths.entry(user).or_default().push(arrival.session_secs);
    }
    users
        .iter()
        .zip(arrivals)
        .map(|(user, arrival)| {
            let mut others = lengths[user.as_str()].clone();
            let own = others.iter().position(|l| *l == arrival.session_secs)?;
            others.swap_remove(own);
            (!others.is_empty()).then(|| Rc::new(Lengths::observed(&others)))
        })
        .collect()
}

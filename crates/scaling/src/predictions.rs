//! The prediction job of `PLACEMENT=lifetime`: what `hardware.place_mandelbox` places
//! by, written from users' past sessions with the predictor of [`crate::lifetime`].
//!
//! Each run, in this order:
//! 1. every region's distribution of session lengths (over `SESSION_HISTORY_DAYS`), and
//!    the expected length of a session of a user it knows nothing of;
//! 2. the expected next session of every user whose history grew since the last run
//!    (all of them at a process's first run), from their history and their latest
//!    region's distribution;
//! 3. every mandelbox still going past its expected end re-predicted by its age: now +
//!    what sessions that lasted as long went on to do. Its instance's expected end
//!    follows (a trigger).
//!
//! Every process may run it: what it writes is the same whoever writes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use models::history::{self, UserHistory};
use models::{Db, DbError, Region, UnixMillis, UserId};

use crate::lifetime::Lengths;
use crate::metrics::FleetMetrics;

/// Users predicted, and overdue mandelboxes re-predicted, per query.
const BATCH: i64 = 5_000;

/// Sessions that ended this long before a run's start are looked at again by the next
/// run: one whose transaction committed late is not missed.
const OVERLAP: Duration = Duration::from_secs(10);

/// What one run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredictionReport {
    pub regions: usize,
    pub users: usize,
    pub repredicted: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictionError {
    #[error("the prediction job could not reach the database")]
    Database(#[from] DbError),
}

/// The prediction job of one process: it remembers how far it has read the history.
#[derive(Debug)]
pub struct Predictions {
    db: Db,
    /// `SESSION_HISTORY_DAYS`: what a region's distribution is drawn from.
    kept: Duration,
    /// Users whose sessions ended after this are predicted again.
    read_to: Mutex<Option<UnixMillis>>,
}

impl Predictions {
    pub fn new(db: Db, kept: Duration) -> Self {
        Self {
            db,
            kept,
            read_to: Mutex::new(None),
        }
    }

    /// One run as of `now`.
    pub async fn run(&self, now: UnixMillis) -> Result<PredictionReport, PredictionError> {
        let since = *self
            .read_to
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let kept = self.kept;
        let (report, read_to) = self
            .db
            .run(move |conn| Ok(run(conn, now, kept, since)?))
            .await?;
        *self
            .read_to
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(read_to);
        Ok(report)
    }

    /// Runs every `interval` until the task is dropped (see [`crate::jobs`]).
    pub async fn run_every(self: Arc<Self>, interval: Duration, metrics: FleetMetrics) {
        crate::jobs::run_every("predictions", interval, metrics, move || {
            let job = self.clone();
            async move {
                let report = job.run(UnixMillis::now()).await?;
                tracing::debug!(
                    regions = report.regions,
                    users = report.users,
                    repredicted = report.repredicted,
                    "predictions written"
                );
                Ok::<_, PredictionError>(())
            }
        })
        .await;
    }
}

fn run(
    conn: &mut diesel::PgConnection,
    now: UnixMillis,
    kept: Duration,
    since: Option<UnixMillis>,
) -> diesel::QueryResult<(PredictionReport, UnixMillis)> {
    let mut report = PredictionReport::default();
    // 1. The regions.
    let mut regions: HashMap<Region, Lengths> = HashMap::new();
    for row in history::region_lengths(conn, now.minus(kept))? {
        let lengths = Lengths::from_points(&row.points);
        if let Some(expected) = lengths.expected() {
            history::store_region(conn, &row.region_name, &row.points, expected, now)?;
            regions.insert(row.region_name, lengths);
            report.regions += 1;
        }
    }
    let predict = |user: &UserHistory| {
        let region = regions.get(&user.region_name).cloned().unwrap_or_default();
        Lengths::for_user(&user.lengths, &region)
    };
    // 2. Users whose history grew.
    let mut from = since.map_or(UnixMillis::from_millis(0), |at| at.minus(OVERLAP));
    let read_to = now;
    loop {
        let users = history::changed_since(conn, from, BATCH)?;
        let predicted: Vec<(UserId, f64)> = users
            .iter()
            .filter_map(|user| Some((user.user_id.clone(), predict(user).expected()?)))
            .collect();
        report.users += history::store_predictions(conn, &predicted, now)?;
        match users.last() {
            Some(last) if users.len() as i64 == BATCH => {
                from = UnixMillis::from_millis(last.last_ended_utc_unix_ms);
            }
            _ => break,
        }
    }
    // 3. Sessions past their expected end.
    let overdue = history::overdue(conn, now, BATCH)?;
    if !overdue.is_empty() {
        let users: Vec<UserId> = overdue.iter().map(|o| o.user_id.clone()).collect();
        let histories: HashMap<UserId, UserHistory> = history::of_users(conn, &users)?
            .into_iter()
            .map(|h| (h.user_id.clone(), h))
            .collect();
        let ends: Vec<_> = overdue
            .iter()
            .map(|o| {
                let region = regions.get(&o.region_name).cloned().unwrap_or_default();
                let prediction = match histories.get(&o.user_id) {
                    Some(user) => Lengths::for_user(&user.lengths, &region),
                    None => region,
                };
                let age = (now.as_millis() - o.creation_time_utc_unix_ms).max(0) as f64 / 1000.0;
                // At least a second on: what is re-predicted now is not overdue now.
                let left = prediction.expected_remaining(age).max(1.0);
                let end = UnixMillis::from_millis(now.as_millis() + (left * 1000.0) as i64);
                (o.mandelbox_id.clone(), end)
            })
            .collect();
        report.repredicted = history::set_expected_ends(conn, &ends)?;
    }
    Ok((report, read_to))
}

//! How long a session will last, learned from its user's past sessions (`PLACEMENT=
//! lifetime`, see `docs/assignment.md`): a pure predictor, so that the server's job that
//! writes predictions and the fleet model predict alike.
//!
//! A user's prediction is their own past lengths, each one sample, next to the region's
//! distribution weighing [`PRIOR_SESSIONS`] sessions: with few sessions of their own a
//! user is mostly predicted by the region, with many by themselves; a user never seen is
//! the region's alone. A running session is re-predicted by its age: what is expected of
//! it is what the sessions that lasted at least as long went on to do, so a session that
//! outlived its prediction is expected to go on, not to end now.

/// How many sessions the region's distribution weighs in a user's prediction.
pub const PRIOR_SESSIONS: f64 = 3.0;

/// The points a region's distribution is kept as (its quantiles at the midpoints of as
/// many equal steps).
pub const REGION_POINTS: usize = models::history::REGION_POINTS;

/// A distribution of session lengths, in seconds: weighted samples (none by default).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lengths {
    /// `(length, weight)`, by length; weights sum to `total`.
    points: Vec<(f64, f64)>,
    total: f64,
}

impl Lengths {
    /// Lengths observed once each (non-finite and negative ones are dropped).
    pub fn observed(lengths: &[f64]) -> Self {
        Self::weighted(lengths.iter().map(|l| (*l, 1.0)))
    }

    fn weighted(points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let mut points: Vec<(f64, f64)> = points
            .into_iter()
            .filter(|(l, w)| l.is_finite() && *l >= 0.0 && w.is_finite() && *w > 0.0)
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = points.iter().map(|(_, w)| w).sum();
        Self { points, total }
    }

    /// Nothing known.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// A region's distribution from the lengths of its sessions, kept as
    /// [`REGION_POINTS`] quantiles (what the server stores per region).
    pub fn region(lengths: &[f64]) -> Self {
        let all = Self::observed(lengths);
        if all.is_empty() {
            return all;
        }
        Self::from_points(&all.summary())
    }

    /// A region's distribution as [`Lengths::summary`] gave it.
    pub fn from_points(points: &[f64]) -> Self {
        Self::weighted(points.iter().map(|l| (*l, 1.0)))
    }

    /// [`REGION_POINTS`] quantiles, at the midpoints of equal steps.
    pub fn summary(&self) -> Vec<f64> {
        if self.is_empty() {
            return Vec::new();
        }
        (0..REGION_POINTS)
            .map(|n| self.quantile((n as f64 + 0.5) / REGION_POINTS as f64))
            .collect()
    }

    /// A user's prediction: their own `lengths` (oldest first; each one sample) and
    /// `region` weighing [`PRIOR_SESSIONS`]. Without either, the other alone.
    pub fn for_user(lengths: &[f64], region: &Lengths) -> Self {
        let own = Self::observed(lengths);
        if region.is_empty() {
            return own;
        }
        let scale = PRIOR_SESSIONS / region.total;
        Self::weighted(
            own.points
                .into_iter()
                .chain(region.points.iter().map(|(l, w)| (*l, w * scale))),
        )
    }

    /// The length below which a share `q` (0 to 1) of the weight lies.
    pub fn quantile(&self, q: f64) -> f64 {
        let target = q.clamp(0.0, 1.0) * self.total;
        let mut seen = 0.0;
        for (length, weight) in &self.points {
            seen += weight;
            if seen >= target {
                return *length;
            }
        }
        self.points.last().map_or(0.0, |(l, _)| *l)
    }

    /// The expected length of a session about to start (the mean), `None` when nothing
    /// is known.
    pub fn expected(&self) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        Some(self.points.iter().map(|(l, w)| l * w).sum::<f64>() / self.total)
    }

    /// The expected time still to go of a session that has lasted `age` seconds: the
    /// mean of what the longer sessions had left at that age. Past every length known,
    /// half its age again (it is expected to go on, not to end now).
    pub fn expected_remaining(&self, age: f64) -> f64 {
        let age = age.max(0.0);
        let (sum, weight) = self
            .points
            .iter()
            .filter(|(l, _)| *l > age)
            .fold((0.0, 0.0), |(s, t), (l, w)| (s + (l - age) * w, t + w));
        if weight > 0.0 {
            sum / weight
        } else {
            age / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Lengths {
        // A region of 10- to 60-minute sessions.
        let lengths: Vec<f64> = (1..=600).map(|n| 600.0 + 5.0 * n as f64).collect();
        Lengths::region(&lengths)
    }

    #[test]
    fn a_new_user_is_the_region() {
        let region = region();
        let prediction = Lengths::for_user(&[], &region);
        assert!((prediction.expected().unwrap() - region.expected().unwrap()).abs() < 1e-6);
        let expected = prediction.expected().unwrap();
        assert!((expected - 2100.0).abs() < 20.0, "{expected}");
    }

    #[test]
    fn a_habit_outweighs_the_region_as_it_repeats() {
        let region = region();
        let two = Lengths::for_user(&[7200.0, 7200.0], &region)
            .expected()
            .unwrap();
        let twenty = Lengths::for_user(&[7200.0; 20], &region)
            .expected()
            .unwrap();
        let regional = region.expected().unwrap();
        assert!(
            regional < two && two < twenty && twenty < 7200.0,
            "{two} {twenty}"
        );
        // Three sessions of the region's weight against twenty of their own.
        assert!(twenty > 0.85 * 7200.0, "{twenty}");
        // Two short ones pull the other way.
        let short = Lengths::for_user(&[300.0, 300.0], &region)
            .expected()
            .unwrap();
        assert!(short < regional, "{short}");
    }

    #[test]
    fn nothing_known_predicts_nothing() {
        let none = Lengths::for_user(&[], &Lengths::region(&[]));
        assert_eq!(none.expected(), None);
        assert!(none.is_empty());
        // Bad lengths are not samples.
        assert!(Lengths::observed(&[f64::NAN, -1.0, f64::INFINITY]).is_empty());
        // A user alone, without a region.
        let alone = Lengths::for_user(&[100.0, 300.0], &Lengths::region(&[]));
        assert_eq!(alone.expected(), Some(200.0));
    }

    #[test]
    fn quantiles_follow_the_weight() {
        let lengths = Lengths::observed(&[10.0, 20.0, 30.0, 40.0]);
        assert_eq!(lengths.quantile(0.0), 10.0);
        assert_eq!(lengths.quantile(0.5), 20.0);
        assert_eq!(lengths.quantile(0.51), 30.0);
        assert_eq!(lengths.quantile(1.0), 40.0);
        let summary = region().summary();
        assert_eq!(summary.len(), REGION_POINTS);
        assert!(summary.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(Lengths::from_points(&summary), region());
    }

    #[test]
    fn a_session_that_outlived_its_prediction_is_expected_to_go_on() {
        // Habitually 20 minutes, once 2 hours.
        let mut own = vec![1200.0; 9];
        own.push(7200.0);
        let prediction = Lengths::for_user(&own, &Lengths::region(&[]));
        let fresh = prediction.expected_remaining(0.0);
        assert!((fresh - 1800.0).abs() < 1e-6, "{fresh}");
        // At 30 minutes only the long session is still going: 90 minutes to go.
        assert!((prediction.expected_remaining(1800.0) - 5400.0).abs() < 1e-6);
        // What remains never goes below zero, and past every known length it goes on.
        for age in [0.0, 600.0, 1199.0, 1200.0, 7199.0, 7200.0, 10_000.0] {
            let left = prediction.expected_remaining(age);
            assert!(left > 0.0, "{age}: {left}");
        }
        assert_eq!(prediction.expected_remaining(10_000.0), 5000.0);
    }
}

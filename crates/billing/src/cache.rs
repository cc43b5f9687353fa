//! Subscription answers kept a short time, concurrent questions shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{PaymentError, Subscriptions};

type Answer = Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>;

/// The customers remembered at most; past it, answers nobody is asking about go.
const MAX_CUSTOMERS: usize = 10_000;

/// Caches another lookup's answers (not its errors) for `ttl`. Concurrent questions
/// about one customer wait for one call, so a burst of requests is not a burst of calls.
pub struct CachedSubscriptions<S> {
    inner: S,
    ttl: Duration,
    answers: Mutex<HashMap<String, Answer>>,
}

impl<S> CachedSubscriptions<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, customer: &str) -> Answer {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() > MAX_CUSTOMERS {
            let ttl = self.ttl;
            answers.retain(|_, answer| {
                answer.try_lock().map_or(true, |answer| {
                    answer.is_some_and(|(at, _)| at.elapsed() < ttl)
                })
            });
        }
        answers.entry(customer.to_owned()).or_default().clone()
    }
}

#[async_trait]
impl<S: Subscriptions> Subscriptions for CachedSubscriptions<S> {
    async fn is_paying(&self, customer: &str) -> Result<bool, PaymentError> {
        let slot = self.slot(customer);
        let mut answer = slot.lock().await;
        if let Some((at, paying)) = *answer
            && at.elapsed() < self.ttl
        {
            return Ok(paying);
        }
        let paying = self.inner.is_paying(customer).await?;
        *answer = Some((Instant::now(), paying));
        Ok(paying)
    }
}

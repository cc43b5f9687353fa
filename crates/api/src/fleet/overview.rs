use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use models::UnixMillis;
use models::overview;

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Admin;

/// `GET /fleet` (admin scope): every region and its instances, in one document (see
/// `models::overview`). Read on the operations pool, so a dashboard left open never
/// queues requests, one read at a time: dashboards asking together share the next
/// read, so however many are open the database makes one fleet document at a time
/// (and each answer is still read after its request arrived).
#[utoipa::path(
    get,
    path = "/fleet",
    tag = "operators",
    security(("user_token" = ["admin"])),
    responses(
        (status = 200, description = "The fleet", body = models::overview::FleetOverview),
        (status = 401, description = "No or invalid token", body = crate::answers::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::answers::ErrorBody),
        (status = 503, description = "Database unavailable", body = crate::answers::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %caller.user_id))]
pub async fn get_fleet(Admin(caller): Admin, state: ApiState) -> Result<HttpResponse, ApiError> {
    let db = state.ops_db.clone();
    let body = state
        .fleet_reads
        .read(|| async move {
            let fleet = db
                .run(|conn| Ok(overview::read(conn, UnixMillis::now())?))
                .await?;
            serde_json::to_vec(&fleet)
                .map(Bytes::from)
                .map_err(|err| ApiError::Internal(Box::new(err)))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// Fleet documents read one at a time and shared by the requests that waited for the
/// same read.
#[derive(Debug, Default)]
pub struct FleetReads {
    /// One read at a time (fair: waiters are served in order).
    turn: tokio::sync::Mutex<()>,
    /// How many reads have started.
    started: AtomicU64,
    /// The last read that succeeded, with its number.
    latest: Mutex<Option<(u64, Bytes)>>,
}

impl FleetReads {
    /// The document of a read that started after this call did: one that finished
    /// while this call waited its turn, or a new one made by `read`.
    pub async fn read<F, Fut>(&self, read: F) -> Result<Bytes, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, ApiError>>,
    {
        let arrived = self.started.load(Ordering::SeqCst);
        let _turn = self.turn.lock().await;
        if let Some((number, body)) = &*self.latest()
            && *number > arrived
        {
            return Ok(body.clone());
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let body = read().await?;
        *self.latest() = Some((number, body.clone()));
        Ok(body)
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, Option<(u64, Bytes)>> {
        self.latest
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn requests_that_wait_together_share_the_next_read() {
        let reads = Arc::new(FleetReads::default());
        let made = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<FleetReads>, made: Arc<AtomicUsize>| async move {
            reads
                .read(|| async move {
                    let n = made.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Bytes::from(n.to_string()))
                })
                .await
                .unwrap()
        };
        // The first read is under way when ten more requests arrive: they share one
        // read made after it, never the first one's answer.
        let first = tokio::spawn(read(reads.clone(), made.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let later: Vec<_> = (0..10)
            .map(|_| tokio::spawn(read(reads.clone(), made.clone())))
            .collect();
        assert_eq!(first.await.unwrap(), "0");
        for request in later {
            assert_eq!(request.await.unwrap(), "1");
        }
        assert_eq!(made.load(Ordering::SeqCst), 2);
        // A request after all that reads anew.
        assert_eq!(read(reads, made).await, "2");
    }
}

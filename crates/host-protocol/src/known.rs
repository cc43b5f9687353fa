//! The host credentials this process knows, in memory: a heartbeat or report with any
//! other credential is refused (401) before it takes a place in the heartbeats' queue
//! or a database connection, so strangers flooding the host protocol cannot starve
//! real hosts.
//!
//! The set is loaded from the database (through the heartbeats' pool), reloaded when a
//! credential is issued or changed anywhere (the `webserver_hosts` notification, and on
//! every reconnection of the listening connection) and at least every
//! [`RELOAD_EVERY`]; a registration in this process adds its credential at once. Until
//! the first load succeeds nothing is refused here: the database decides, as before.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use models::{Db, DbError, instance};
use tokio::sync::watch;

/// The longest a credential removed from the database stays known here.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The digests of the host credentials the database holds, as last loaded.
#[derive(Debug, Default)]
pub struct KnownHosts {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` until the first load.
    digests: Option<HashSet<String>>,
    /// Loads under way, and what registrations added meanwhile: a load whose snapshot
    /// was taken before a registration committed must not forget it.
    loading: usize,
    added_while_loading: Vec<String>,
}

impl KnownHosts {
    /// An empty set, not loaded yet: it refuses nothing until [`KnownHosts::reload`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// `Some(false)` for a digest the last load did not hold (nor a registration here
    /// add since); `None` before the first load.
    pub fn knows(&self, digest: &str) -> Option<bool> {
        self.state()
            .digests
            .as_ref()
            .map(|digests| digests.contains(digest))
    }

    /// Adds the credential a registration in this process just issued.
    pub fn insert(&self, digest: String) {
        let mut state = self.state();
        if state.loading > 0 {
            state.added_while_loading.push(digest.clone());
        }
        if let Some(digests) = state.digests.as_mut() {
            digests.insert(digest);
        }
    }

    /// Loads the set from `db`; returns how many credentials it holds.
    pub async fn reload(&self, db: &Db) -> Result<usize, DbError> {
        self.state().loading += 1;
        let loaded = db.run(|conn| Ok(instance::host_token_digests(conn)?)).await;
        let mut state = self.state();
        state.loading -= 1;
        let added = if state.loading == 0 {
            std::mem::take(&mut state.added_while_loading)
        } else {
            state.added_while_loading.clone()
        };
        let mut loaded: HashSet<String> = loaded?.into_iter().collect();
        loaded.extend(added);
        let count = loaded.len();
        state.digests = Some(loaded);
        Ok(count)
    }

    /// Reloads on every change of `changes` (changes that come together are loaded
    /// once) and every [`RELOAD_EVERY`], until `changes`' sender is gone; a failed load
    /// is tried again after a second. Run it with the server's other jobs.
    pub async fn keep_loaded(self: Arc<Self>, db: Db, mut changes: watch::Receiver<u64>) {
        loop {
            changes.borrow_and_update();
            let pause = match self.reload(&db).await {
                Ok(_) => RELOAD_EVERY,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot load the known host credentials");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_refused_before_the_first_load() {
        let known = KnownHosts::new();
        assert_eq!(known.knows("abc"), None);
        known.insert("abc".to_owned());
        assert_eq!(known.knows("abc"), None, "an insert does not make a load");
        known.state().digests = Some(HashSet::from(["d1".to_owned()]));
        assert_eq!(known.knows("d1"), Some(true));
        assert_eq!(known.knows("d2"), Some(false));
        known.insert("d2".to_owned());
        assert_eq!(known.knows("d2"), Some(true));
    }
}

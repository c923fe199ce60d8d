//! Coalescing of identical questions in flight: when many clients ask for the same
//! uncached name at once (a deployment rolling out, a cache entry expiring under load),
//! one exchange goes upstream and every asker gets its outcome.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::cache::Key;
use super::{ForwardError, Forwarded};

/// What the leader of a flight hands its followers.
type Outcome = Result<Forwarded, ForwardError>;
/// `None` until the leader finishes.
type Slot = watch::Sender<Option<Outcome>>;

/// The questions in flight.
#[derive(Debug, Default)]
pub(super) struct Flights {
    inner: Mutex<HashMap<Key, Slot>>,
}

/// A caller's part in a flight.
pub(super) enum Role<'a> {
    /// Nobody is asking this yet: ask upstream, then [`Leader::finish`].
    Leader(Leader<'a>),
    /// Someone is: wait for their outcome.
    Follower(Waiting),
}

impl Flights {
    /// Joins the flight for `key`, starting it if there is none.
    pub(super) fn join(&self, key: &Key) -> Role<'_> {
        let mut inner = self.lock();
        if let Some(slot) = inner.get(key) {
            return Role::Follower(Waiting(slot.subscribe()));
        }
        let (slot, _) = watch::channel(None);
        inner.insert(key.clone(), slot);
        Role::Leader(Leader {
            flights: self,
            key: key.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        // The map stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Followers waiting on the flight for `key` (tests).
    #[cfg(test)]
    pub(super) fn waiting(&self, key: &Key) -> usize {
        self.lock().get(key).map_or(0, |slot| slot.receiver_count())
    }
}

/// The asker that goes upstream. Dropping it unfinished (its client went away) releases
/// the followers, who then lead themselves.
pub(super) struct Leader<'a> {
    flights: &'a Flights,
    key: Key,
}

impl Leader<'_> {
    /// Hands `outcome` to the followers and ends the flight.
    pub(super) fn finish(self, outcome: &Outcome) {
        if let Some(slot) = self.flights.lock().remove(&self.key) {
            slot.send_replace(Some(outcome.clone()));
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flights.lock().remove(&self.key);
    }
}

/// A follower's wait for the leader.
pub(super) struct Waiting(watch::Receiver<Option<Outcome>>);

impl Waiting {
    /// The leader's outcome, or `None` if the leader gave up without one.
    pub(super) async fn outcome(mut self) -> Option<Outcome> {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        }
    }
}

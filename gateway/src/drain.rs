//! Drain signalling: one trigger, many watchers.

use tokio::sync::watch;

/// Starts a drain.
#[derive(Debug, Clone)]
pub struct DrainTrigger(watch::Sender<bool>);

/// Observes a drain.
#[derive(Debug, Clone)]
pub struct DrainWatch(watch::Receiver<bool>);

/// A connected trigger and watch.
pub fn channel() -> (DrainTrigger, DrainWatch) {
    let (tx, rx) = watch::channel(false);
    (DrainTrigger(tx), DrainWatch(rx))
}

impl DrainTrigger {
    /// Signals every watcher; idempotent.
    pub fn drain(&self) {
        self.0.send_replace(true);
    }

    /// Whether a drain was signalled.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// A new watcher.
    pub fn watch(&self) -> DrainWatch {
        DrainWatch(self.0.subscribe())
    }
}

impl DrainWatch {
    /// Resolves once a drain is signalled (or the trigger is gone).
    pub async fn signaled(mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }

    /// Whether a drain was signalled.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }
}

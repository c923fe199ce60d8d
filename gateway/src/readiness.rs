//! Readiness: named tasks that must finish before the gateway reports ready.
//!
//! Each pending piece of start-up holds a [`BlockReady`]; dropping it (on success, or
//! when its owner gives up) clears it, so `/ready` always lists exactly what is pending.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The set of pending readiness tasks.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: AtomicU64,
    pending: Mutex<BTreeMap<u64, String>>,
}

impl Ready {
    /// An empty set (ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a pending task.
    pub fn register_task(&self, name: impl Into<String>) -> BlockReady {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(id, name.into());
        }
        BlockReady {
            ready: self.clone(),
            id,
        }
    }

    /// Names of the pending tasks, in registration order.
    pub fn pending(&self) -> Vec<String> {
        self.inner
            .pending
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether nothing is pending.
    pub fn is_ready(&self) -> bool {
        self.inner
            .pending
            .lock()
            .map(|p| p.is_empty())
            .unwrap_or(false)
    }
}

/// A pending readiness task; cleared on drop.
#[derive(Debug)]
pub struct BlockReady {
    ready: Ready,
    id: u64,
}

impl BlockReady {
    /// Renames the task (e.g. to say what it still waits for).
    pub fn rename(&self, name: impl Into<String>) {
        if let Ok(mut p) = self.ready.inner.pending.lock() {
            p.insert(self.id, name.into());
        }
    }
}

impl Drop for BlockReady {
    fn drop(&mut self) {
        if let Ok(mut p) = self.ready.inner.pending.lock() {
            p.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_clear_on_drop() {
        let r = Ready::new();
        let a = r.register_task("xds");
        let b = r.register_task("listeners");
        assert_eq!(r.pending(), vec!["xds", "listeners"]);
        drop(a);
        assert_eq!(r.pending(), vec!["listeners"]);
        b.rename("listeners: 1 pending");
        assert_eq!(r.pending(), vec!["listeners: 1 pending"]);
        drop(b);
        assert!(r.is_ready());
    }
}

//! The controller's Kubernetes side: watches that fill the store, leader election,
//! status conditions, and the gateway pods that drive fail-open.

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fake;

//! The one proxy path of every codec-based protocol (Dubbo, Thrift, ...): downstream
//! frames are decoded by the listener's [`Codec`](crate::codec::Codec), routed on their
//! metadata, and sent over shared upstream connections ([`upstream::Multiplexed`]) that
//! rewrite request ids and match responses back. [`call`] is the one call path
//! (admission, routing, mirrors, retries, timeouts), [`downstream`] a caller's
//! connection, [`backend`] the listener's wiring to the snapshot and telemetry.

pub mod backend;
pub mod call;
pub mod downstream;
pub mod upstream;

#[cfg(test)]
mod tests;

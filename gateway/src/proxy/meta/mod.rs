//! The one proxy path of every codec-based protocol (Dubbo, Thrift, ...): downstream
//! frames are decoded by the listener's [`Codec`](crate::codec::Codec), routed on their
//! metadata, and sent over shared upstream connections ([`upstream::Multiplexed`]) that
//! rewrite request ids and match responses back. Being written for issue 4: the
//! connection handling is here; listener wiring and the controller's translation follow.

pub mod backend;
pub mod downstream;
pub mod upstream;

#[cfg(test)]
mod tests;

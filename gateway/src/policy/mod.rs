//! The policy layer shared by every L7 protocol (HTTP, gRPC, Dubbo, Thrift): what a
//! policy sees of a request ([`request`]), the one vocabulary of refusals ([`reject`]),
//! and each listener's ordered filters ([`chain`]). Each protocol's path builds a
//! [`request::Request`] once, runs its listener's [`chain::Chain`] and renders a
//! [`reject::Reject`] in its own error form; filters never know the protocol.

pub mod chain;
pub mod hash;
pub mod fault;
pub mod global_ratelimit;
pub mod identity;
pub mod local_ratelimit;
pub mod mirror;
pub mod rbac;
pub mod reject;
pub mod request;
pub mod route;

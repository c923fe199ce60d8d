//! The policy layer shared by every L7 protocol (HTTP, gRPC, Dubbo, Thrift): what a
//! policy sees of a request ([`request`]) and the one vocabulary of refusals
//! ([`reject`]). Each protocol's path builds a [`request::Request`] once and renders a
//! [`reject::Reject`] in its own error form; policies never know the protocol.

pub mod reject;
pub mod request;

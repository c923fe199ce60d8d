//! Redis: the RESP codec, the command table and Redis Cluster key slots, the protocol
//! pieces the Redis proxy is built on. Pure code: nothing here does I/O.
//!
//! - [`resp`]: values, encoding, and resumable decoders of client commands and server
//!   replies (RESP2 and RESP3, inline commands), with Redis's limits and error texts.
//! - [`command`]: how each command is routed, its arity and keys, Redis's error replies.
//! - [`slot`]: hash tags and CRC16 slots, as Redis Cluster computes them.

pub mod command;
pub mod resp;
pub mod slot;

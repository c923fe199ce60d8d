//! Decoders and encoder together: real redis-server bytes, round trips, every split of
//! the input, linear work on huge messages, and every malformed case.

mod commands;
mod values;

use bytes::{Bytes, BytesMut};

use super::*;

const MAX: usize = 1 << 20;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn encoded(v: &Value) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(v, &mut out);
    out.to_vec()
}

fn value(input: &[u8]) -> Result<Option<Value>, RespError> {
    ValueDecoder::new(MAX).decode(&mut BytesMut::from(input))
}

fn protocol(text: &str) -> RespError {
    RespError::Protocol(text.to_string())
}

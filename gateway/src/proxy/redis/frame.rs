//! A reply on its way back to a client: the server's wire bytes, forwarded as they are,
//! or a value (decoded from the server, or made by the gateway).

use bytes::{Bytes, BytesMut};

use crate::redis::resp::{Value, ValueDecoder, encode};

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A flat reply exactly as the server sent it (see [`ValueDecoder::take_flat`]):
    /// most replies, which the gateway has no reason to look inside.
    Wire(Bytes),
    /// A decoded or gateway-made value.
    Value(Value),
}

impl Frame {
    /// Whether the reply is an error (`-...`, or RESP3's `!...`).
    pub fn is_error(&self) -> bool {
        match self {
            Frame::Wire(bytes) => bytes.first() == Some(&b'-'),
            Frame::Value(v) => v.is_error(),
        }
    }

    /// Appends the reply's RESP bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Wire(bytes) => out.extend_from_slice(bytes),
            Frame::Value(v) => encode(v, out),
        }
    }

    /// The reply as a value, for the gateway to look inside (merging split commands,
    /// redirections, slot maps): wire bytes are decoded.
    pub fn into_value(self) -> Value {
        match self {
            Frame::Value(v) => v,
            Frame::Wire(bytes) => {
                let mut buf = BytesMut::from(&bytes[..]);
                match ValueDecoder::new(bytes.len()).decode(&mut buf) {
                    Ok(Some(v)) => v,
                    // Wire frames are whole, well-formed replies by construction.
                    _ => Value::error("ERR internal: a forwarded reply did not decode"),
                }
            }
        }
    }
}

impl From<Value> for Frame {
    fn from(v: Value) -> Frame {
        Frame::Value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_frames_are_forwarded_as_they_are_and_decode_to_their_value() {
        for (wire, value) in [
            (&b"+OK\r\n"[..], Value::simple("OK")),
            (b"-ERR no\r\n", Value::error("ERR no")),
            (b":42\r\n", Value::Integer(42)),
            (b"$3\r\nfoo\r\n", Value::bulk("foo")),
            (b"$-1\r\n", Value::NullBulk),
        ] {
            let frame = Frame::Wire(Bytes::copy_from_slice(wire));
            let mut out = BytesMut::new();
            frame.encode(&mut out);
            assert_eq!(&out[..], wire);
            assert_eq!(frame.is_error(), value.is_error());
            assert_eq!(frame.into_value(), value);
        }
    }
}

//! The multiplexed connection against small upstreams speaking a toy codec:
//! `[len u32][id u64][type u8][payload]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::upstream::{Multiplexed, UpstreamError};
use crate::codec::{Codec, CodecError, Edit, Frame, MessageType, Metadata, ResponseStatus};
use crate::policy::reject::Reject;

const REQUEST: u8 = 0;
const RESPONSE: u8 = 1;
const ONEWAY: u8 = 2;
const PING: u8 = 3;
const PONG: u8 = 4;

mod call;
mod downstream;
mod gateway;

#[derive(Debug)]
pub(super) struct Toy;

pub(super) fn frame(id: u64, kind: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(9 + payload.len() as u32);
    b.put_u64(id);
    b.put_u8(kind);
    b.put_slice(payload);
    b.freeze()
}

impl Codec for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }
    fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 9 {
            return Err(CodecError::Corrupt {
                protocol: "toy",
                reason: "short".into(),
            });
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        let bytes = buf.split_to(4 + len).freeze();
        let mut rd = &bytes[4..];
        let id = rd.get_u64();
        let message_type = match rd.get_u8() {
            REQUEST => MessageType::Request,
            RESPONSE => MessageType::Response,
            ONEWAY => MessageType::Oneway,
            PING => MessageType::Heartbeat,
            _ => MessageType::HeartbeatResponse,
        };
        let metadata = Metadata {
            message_type,
            request_id: id,
            response_status: ResponseStatus::Ok,
            attributes: vec![("payload".into(), String::from_utf8_lossy(rd).into_owned())],
            dialect: 0,
        };
        Ok(Some(Frame { metadata, bytes }))
    }
    fn encode(&self, frame: &Frame, edit: &Edit, out: &mut BytesMut) -> Result<(), CodecError> {
        let start = out.len();
        out.extend_from_slice(&frame.bytes);
        if let Some(id) = edit.request_id {
            out[start + 4..start + 12].copy_from_slice(&id.to_be_bytes());
        }
        Ok(())
    }
    fn can_mutate(&self, _: &Metadata) -> bool {
        false
    }
    fn local_reply(&self, request: &Metadata, error: &Reject) -> Bytes {
        frame(request.request_id, RESPONSE, error.message.as_bytes())
    }
    fn heartbeat_reply(&self, request: &Metadata) -> Option<Bytes> {
        Some(frame(request.request_id, PONG, b""))
    }
    fn error_reply(&self, _: &[u8], _: &CodecError) -> Option<Bytes> {
        None
    }
}

fn request(id: u64, kind: u8, payload: &str) -> Frame {
    let mut buf = BytesMut::from(&frame(id, kind, payload.as_bytes())[..]);
    Toy.decode(&mut buf).unwrap().unwrap()
}

/// An upstream that waits for `batch` requests, then answers them in reverse order
/// (`echo:<payload>`); it first pings the gateway and expects a pong.
pub(super) async fn reversing_upstream(batch: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(&frame(77, PING, b"")).await.unwrap();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pong = false;
        while got.len() < batch || !pong {
            while let Some(f) = Toy.decode(&mut buf).unwrap() {
                match f.metadata.message_type {
                    MessageType::HeartbeatResponse => pong = f.metadata.request_id == 77,
                    MessageType::Request => got.push(f),
                    _ => {}
                }
            }
            if got.len() >= batch && pong {
                break;
            }
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
        for f in got.iter().rev() {
            let payload = format!("echo:{}", f.metadata.get("payload").unwrap_or_default());
            s.write_all(&frame(f.metadata.request_id, RESPONSE, payload.as_bytes()))
                .await
                .unwrap();
        }
        // Keep the connection open until the test ends.
        let _ = s.read_buf(&mut buf).await;
    });
    addr
}

const PATIENCE: Duration = Duration::from_secs(10);

/// The caller of every test connection.
fn source() -> crate::policy::request::Source {
    crate::policy::request::Source::new(SocketAddr::from(([127, 0, 0, 1], 40000)))
}

#[tokio::test]
async fn concurrent_calls_share_a_connection_and_get_their_own_answers_out_of_order() {
    let calls = 100;
    let addr = reversing_upstream(calls).await;
    let conn = Multiplexed::connect(addr, Arc::new(Toy), Duration::from_secs(2))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let conn = conn.clone();
            // Every caller uses id 5 downstream: only the rewritten ids tell them apart.
            tokio::spawn(async move {
                conn.call(&request(5, REQUEST, &format!("n{i}")), &Edit::default())
                    .await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let reply = tokio::time::timeout(PATIENCE, t)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            reply.metadata.get("payload"),
            Some(format!("echo:n{i}").as_str())
        );
        assert_eq!(reply.metadata.request_id, 5, "back under the caller's id");
    }
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn a_broken_connection_fails_every_call_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let mut seen = 0;
        while seen < 3 {
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
            while Toy.decode(&mut buf).unwrap().is_some() {
                seen += 1;
            }
        }
        // Dies with three calls in flight.
    });
    let conn = Multiplexed::connect(addr, Arc::new(Toy), Duration::from_secs(2))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(
                async move { conn.call(&request(i, REQUEST, "x"), &Edit::default()).await },
            )
        })
        .collect();
    for t in tasks {
        let err = tokio::time::timeout(PATIENCE, t)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Reset { .. }), "{err}");
    }
    assert!(conn.is_closed());
    let again = conn
        .call(&request(9, REQUEST, "x"), &Edit::default())
        .await
        .unwrap_err();
    assert!(matches!(again, UpstreamError::Reset { .. }));
}

#[tokio::test]
async fn one_way_calls_are_written_and_not_waited_for() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            if let Some(f) = Toy.decode(&mut buf).unwrap() {
                let _ = seen_tx.send(f.metadata);
                return;
            }
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
    });
    let conn = Multiplexed::connect(addr, Arc::new(Toy), Duration::from_secs(2))
        .await
        .unwrap();
    let out = conn
        .call(&request(3, ONEWAY, "fire"), &Edit::default())
        .await
        .unwrap();
    assert!(out.is_none());
    let got = tokio::time::timeout(PATIENCE, seen).await.unwrap().unwrap();
    assert_eq!(got.message_type, MessageType::Oneway);
    assert_eq!(got.get("payload"), Some("fire"));
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn a_caller_that_gives_up_leaves_nothing_behind() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        // Reads and never answers.
        while s.read_buf(&mut buf).await.unwrap_or(0) > 0 {}
    });
    let conn = Multiplexed::connect(addr, Arc::new(Toy), Duration::from_secs(2))
        .await
        .unwrap();
    let (slow, edit) = (request(1, REQUEST, "slow"), Edit::default());
    let call = conn.call(&slow, &edit);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), call)
            .await
            .is_err()
    );
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Multiplexed::connect(addr, Arc::new(Toy), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Connect { .. }), "{err}");
}

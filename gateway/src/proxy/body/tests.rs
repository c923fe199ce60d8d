//! The body tee: a mirror gets the whole body the tries read, or nothing when it
//! outgrew the replay limit. Bodies come from a real HTTP/1.1 connection (hyper's
//! `Incoming` has no other constructor).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::*;

/// What a tee gave for one request: the bytes the try read, and the mirror's copy.
struct Seen {
    read: Vec<u8>,
    copied: Option<Vec<u8>>,
}

/// Sends a request whose body is `chunks` through a connection whose server wraps the
/// body in a `ReplayBody`, takes a tee (before or after the try reads the body), reads
/// the body as a try does, and reports both.
async fn tee_of(chunks: Vec<Bytes>, tee_after_reading: bool) -> Seen {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (seen_tx, mut seen_rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let seen_tx = seen_tx.clone();
            async move {
                let replay = ReplayBody::new(req.into_body(), Arc::new(AtomicU64::new(0)));
                let early = (!tee_after_reading).then(|| replay.tee());
                let read = RequestBody::Replay(replay.next_try())
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default();
                let tee = early.unwrap_or_else(|| replay.tee());
                let copied = tee.body().await.map(|c| {
                    c.chunks
                        .iter()
                        .flat_map(|b| b.iter().copied())
                        .collect::<Vec<u8>>()
                });
                let _ = seen_tx.send(Seen { read, copied }).await;
                Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_io), service)
            .await;
    });
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, Infallible>(http_body::Frame::data(c)));
    let body = StreamBody::new(futures::stream::iter(frames));
    let req = http::Request::post("/").body(body).unwrap();
    send.send_request(req).await.unwrap();
    seen_rx.recv().await.unwrap()
}

#[tokio::test]
async fn a_mirror_gets_the_whole_body_whenever_it_asks() {
    let chunks = vec![
        Bytes::from("hello "),
        Bytes::from("mirrored "),
        Bytes::from("world"),
    ];
    for after in [false, true] {
        let seen = tee_of(chunks.clone(), after).await;
        assert_eq!(seen.read, b"hello mirrored world");
        assert_eq!(
            seen.copied.as_deref(),
            Some(&b"hello mirrored world"[..]),
            "tee after reading: {after}"
        );
    }
}

#[tokio::test]
async fn a_body_past_the_replay_limit_is_not_copied_but_still_forwarded() {
    let chunk = Bytes::from(vec![7u8; 16 * 1024]);
    let chunks = vec![chunk; RETRY_BUFFER_LIMIT / (16 * 1024) + 1];
    for after in [false, true] {
        let seen = tee_of(chunks.clone(), after).await;
        assert_eq!(seen.read.len(), RETRY_BUFFER_LIMIT + 16 * 1024);
        assert!(seen.copied.is_none(), "tee after reading: {after}");
    }
}

#[tokio::test]
async fn a_copied_body_replays_its_chunks_then_its_trailers() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = RequestBody::Copy(Some(Copied {
        chunks: vec![Bytes::from("a"), Bytes::from("b")],
        trailers: Some(trailers.clone()),
    }));
    let collected = body.collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers));
    assert_eq!(collected.to_bytes(), Bytes::from("ab"));
    let empty = RequestBody::Copy(Some(Copied::default()));
    assert!(empty.collect().await.unwrap().to_bytes().is_empty());
}

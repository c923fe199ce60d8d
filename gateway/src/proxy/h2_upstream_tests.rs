//! The HTTP/2 upstream path against a backend written to the wire format (RFC 9113)
//! rather than to a library: a test sees every frame the gateway sends, and the backend
//! refuses streams with GOAWAY the way servers do when they shut down or enforce a limit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use corridor_proto::envoy::config::route::v3 as rt;
use corridor_proto::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use http::{Request, StatusCode};
use http_body_util::{Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::app::{Bound, Config, build};
use crate::testing::*;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// `:status: 200` as HPACK's static table entry 8, sent indexed.
const STATUS_200: u8 = 0x88;
/// The client connection preface (`PRI * HTTP/2.0...`).
const PREFACE_LEN: usize = 24;
/// Istio's default retry policy, as the controller writes it on every route.
const ISTIO_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// One frame as it crossed the wire (its payload's length only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    kind: u8,
    flags: u8,
    stream: u32,
    len: usize,
}

/// What the backend does with its first connection; later ones always answer.
#[derive(Debug, Clone, Copy)]
enum First {
    /// Answers every request once it has ended.
    Answer,
    /// Holds stream 1; when stream 3 opens, sends GOAWAY naming stream 1 as the last it
    /// processes, answers stream 1 and closes: stream 3 was never processed.
    RefuseAfterFirst,
}

/// A backend speaking HTTP/2 frames by hand.
struct WireBackend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    /// Streams opened on the first connection, as they open.
    opened: mpsc::UnboundedReceiver<u32>,
}

impl WireBackend {
    async fn start(first: First) -> WireBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, opened) = mpsc::unbounded_channel();
        let (s, c) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = match c.fetch_add(1, Ordering::SeqCst) {
                    0 => first,
                    _ => First::Answer,
                };
                tokio::spawn(serve(stream, script, s.clone(), tx.clone()));
            }
        });
        WireBackend {
            addr,
            seen,
            connections,
            opened,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut s: TcpStream,
    script: First,
    seen: Arc<Mutex<Vec<Seen>>>,
    opened: mpsc::UnboundedSender<u32>,
) {
    let mut preface = [0u8; PREFACE_LEN];
    if s.read_exact(&mut preface).await.is_err()
        || s.write_all(&frame(SETTINGS, 0, 0, &[])).await.is_err()
    {
        return;
    }
    let mut refused = false;
    // Read until the gateway closes, answering as the script says.
    while let Some((f, payload)) = read_frame(&mut s).await {
        seen.lock().unwrap().push(f);
        let reply = match (f.kind, script) {
            (SETTINGS, _) if f.flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
            (PING, _) if f.flags & ACK == 0 => frame(PING, ACK, 0, &payload),
            (HEADERS | DATA, First::Answer) if f.flags & END_STREAM != 0 => ok(f.stream),
            (HEADERS, First::RefuseAfterFirst) if !refused => {
                let _ = opened.send(f.stream);
                if f.stream == 1 {
                    continue;
                }
                refused = true;
                let mut goaway = 1u32.to_be_bytes().to_vec();
                goaway.extend_from_slice(&0u32.to_be_bytes());
                let mut reply = frame(GOAWAY, 0, 0, &goaway);
                reply.extend(ok(1));
                reply
            }
            _ => continue,
        };
        if s.write_all(&reply).await.is_err() {
            return;
        }
        if refused {
            // Done with this connection: the gateway sees it end once stream 1 is over.
            let _ = s.shutdown().await;
        }
    }
}

/// A `200` with no body on `stream`.
fn ok(stream: u32) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &[STATUS_200])
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

async fn read_frame(s: &mut TcpStream) -> Option<(Seen, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).await.ok()?;
    let seen = Seen {
        kind: head[3],
        flags: head[4],
        stream,
        len,
    };
    Some((seen, payload))
}

/// A gateway with one HTTP listener routing to the HTTP/2 cluster `b` at `backend`.
async fn gateway(routes: Vec<rt::Route>, backend: SocketAddr) -> (TestAds, Bound, SocketAddr) {
    let mut ads = TestAds::start().await;
    let mut c = Config::new(ads.addr.to_string());
    c.admin_address = "127.0.0.1:0".parse().unwrap();
    let gw = build(c).await.unwrap();
    ads.request_where(CLUSTER, |_| true).await;
    let listener = http_listener("svc", "127.0.0.1:0".parse().unwrap(), "svc");
    ads.push(LISTENER, vec![resource("svc", "1", listener)], vec![]);
    ads.push(
        CLUSTER,
        vec![resource("b", "1", cluster("b", true))],
        vec![],
    );
    let config = route_config("svc", routes);
    ads.push(ROUTE, vec![resource("svc", "1", config)], vec![]);
    let eds = assignment("b", &[(backend, true)]);
    ads.push(ENDPOINT, vec![resource("b", "1", eds)], vec![]);
    eventually(|| async { gw.ready().is_ready().then_some(()) }).await;
    let addr = gw.listeners()[0].1;
    (ads, gw, addr)
}

fn route_with_retries(name: &str, prefix: &str) -> rt::Route {
    let mut r = prefix_route(name, prefix, "b");
    action_mut(&mut r).retry_policy = Some(retry_policy(ISTIO_RETRY_ON, 2));
    r
}

/// A request body as gRPC clients send it: the message in one DATA frame, then an empty
/// DATA frame with END_STREAM (the body cannot tell its end in advance).
type ClientBody = StreamBody<
    futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>>,
>;

fn message_then_end() -> ClientBody {
    StreamBody::new(futures::stream::iter(vec![Ok(Frame::data(
        Bytes::from_static(b"\0\0\0\0\0"),
    ))]))
}

#[tokio::test]
async fn a_request_body_ends_on_a_frame_that_says_so() {
    // h2 servers close a connection after 100 empty DATA frames without END_STREAM
    // (GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames"), failing the calls on it: the
    // gateway must never turn the client's closing empty frame into one of those, with
    // or without a replayable body (a retry policy).
    let be = WireBackend::start(First::Answer).await;
    let routes = vec![
        route_with_retries("replayable", "/replayable"),
        prefix_route("streamed", "/", "b"),
    ];
    let (_ads, _gw, addr) = gateway(routes, be.addr).await;
    let client: Client<_, ClientBody> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for path in ["/replayable", "/streamed"] {
        for _ in 0..3 {
            let req = Request::post(format!("http://{addr}{path}"))
                .body(message_then_end())
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
        }
    }
    let data: Vec<Seen> = be.seen().into_iter().filter(|f| f.kind == DATA).collect();
    assert!(
        data.iter().any(|f| f.len == 5),
        "the message went up: {data:?}"
    );
    let open_empty: Vec<&Seen> = data
        .iter()
        .filter(|f| f.len == 0 && f.flags & END_STREAM == 0)
        .collect();
    assert!(
        open_empty.is_empty(),
        "empty DATA frames without END_STREAM: {open_empty:?} of {data:?}"
    );
}

#[tokio::test]
async fn a_stream_a_goaway_left_unprocessed_is_retried_on_a_new_connection() {
    let mut be = WireBackend::start(First::RefuseAfterFirst).await;
    let (_ads, _gw, addr) = gateway(vec![route_with_retries("all", "/")], be.addr).await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let get = |path: &str| {
        let req = Request::get(format!("http://{addr}{path}"))
            .body(Empty::new())
            .unwrap();
        client.request(req)
    };
    let first = tokio::spawn(get("/first"));
    assert_eq!(be.opened.recv().await, Some(1));
    // The second request shares the upstream connection, as stream 3, which the
    // backend's GOAWAY then declares unprocessed.
    let second = get("/second").await.unwrap();
    assert_eq!(be.opened.recv().await, Some(3));
    assert_eq!(
        second.status(),
        StatusCode::OK,
        "a refused stream is retried (refused-stream), not answered 503"
    );
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(
        be.connections.load(Ordering::SeqCst),
        2,
        "the retry went to a new connection"
    );
}

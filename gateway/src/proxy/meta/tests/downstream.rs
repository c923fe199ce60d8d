//! The downstream side: a caller speaking the toy codec through `serve`, against fake
//! routing and real upstream sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;

use super::{ONEWAY, PATIENCE, PING, PONG, REQUEST, RESPONSE, Toy, frame, reversing_upstream};
use crate::codec::{Codec, CodecError, Edit, Frame, Metadata};
use crate::policy::chain::Check;
use crate::policy::reject::{Reject, RejectKind};
use crate::policy::request::Source;
use crate::proxy::meta::call::{Backend, Decision, Lease, Unreachable};
use crate::proxy::meta::downstream::serve;
use crate::proxy::meta::upstream::Multiplexed;

/// Routes by the `payload` attribute: `deny…` is refused before routing, `noroute…` has no route, `slow…` has a 100 ms
/// timeout; everything goes to one upstream address.
struct Fake {
    upstream: SocketAddr,
    /// Held across the connect, so concurrent calls share one connection (the upstreams
    /// here accept only one).
    conn: tokio::sync::Mutex<Option<Multiplexed>>,
}

impl Backend for Fake {
    /// Refuses `deny…` calls, naming the caller the filters saw.
    fn admit(
        &self,
        source: &Source,
        request: &Metadata,
        _route: Option<&crate::policy::route::RoutePolicy>,
        _flags: &mut u16,
    ) -> Check {
        let payload = request.get("payload").unwrap_or_default();
        if payload.starts_with("deny") {
            let message = format!("denied {}", source.addr);
            return Check::Done(Err(Reject::new(RejectKind::Unauthorized, message)));
        }
        Check::Done(Ok(()))
    }

    fn route(&self, request: &Metadata) -> Result<Decision, Reject> {
        let payload = request.get("payload").unwrap_or_default();
        if payload.starts_with("noroute") {
            return Err(Reject {
                kind: RejectKind::NoRoute,
                message: format!("no route for {payload}").into(),
            });
        }
        Ok(Decision {
            route: Arc::from("r"),
            cluster: Arc::from("c"),
            request_edit: Edit::default(),
            response_edit: Edit::default(),
            timeout: payload
                .starts_with("slow")
                .then_some(Duration::from_millis(100)),
            retry: None,
            mirrors: Vec::new(),
            policy: Default::default(),
        })
    }

    async fn connection(
        &self,
        _cluster: &str,
        _avoid: &[std::net::SocketAddr],
        _key: Option<u64>,
    ) -> Result<Lease, Unreachable> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone().into());
        }
        let c = Multiplexed::connect(self.upstream, Arc::new(Toy), Duration::from_secs(2))
            .await
            .map_err(|e| Unreachable::Connect(self.upstream, e.to_string()))?;
        *slot = Some(c.clone());
        Ok(c.into())
    }
}

/// Toy, but callers expect answers in request order.
#[derive(Debug)]
struct InOrder;

impl Codec for InOrder {
    fn name(&self) -> &'static str {
        "toy-in-order"
    }
    fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Toy.decode(buf)
    }
    fn encode(&self, f: &Frame, e: &Edit, out: &mut BytesMut) -> Result<(), CodecError> {
        Toy.encode(f, e, out)
    }
    fn can_mutate(&self, m: &Metadata) -> bool {
        Toy.can_mutate(m)
    }
    fn local_reply(&self, r: &Metadata, e: &Reject) -> Bytes {
        Toy.local_reply(r, e)
    }
    fn heartbeat_reply(&self, r: &Metadata) -> Option<Bytes> {
        Toy.heartbeat_reply(r)
    }
    fn error_reply(&self, b: &[u8], e: &CodecError) -> Option<Bytes> {
        Toy.error_reply(b, e)
    }
    fn responses_in_order(&self) -> bool {
        true
    }
}

fn start(codec: Arc<dyn Codec>, upstream: SocketAddr) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 16);
    let backend = Arc::new(Fake {
        upstream,
        conn: tokio::sync::Mutex::new(None),
    });
    tokio::spawn(serve(server, super::source(), codec, backend));
    client
}

/// Reads `n` frames (id, payload) from the client side.
async fn read_frames(client: &mut DuplexStream, n: usize) -> Vec<(u64, String)> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    while out.len() < n {
        while let Some(f) = Toy.decode(&mut buf).unwrap() {
            out.push((
                f.metadata.request_id,
                f.metadata.get("payload").unwrap_or_default().to_string(),
            ));
        }
        if out.len() >= n {
            break;
        }
        let read = tokio::time::timeout(PATIENCE, client.read_buf(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "closed after {} of {n} frames: {out:?}",
            out.len()
        );
    }
    out
}

#[tokio::test]
async fn requests_answer_under_their_own_ids_and_heartbeats_locally() {
    let upstream = reversing_upstream(3).await;
    let mut client = start(Arc::new(Toy), upstream);
    client.write_all(&frame(900, PING, b"")).await.unwrap();
    for (id, p) in [(11, "a"), (12, "b"), (13, "c")] {
        client
            .write_all(&frame(id, REQUEST, p.as_bytes()))
            .await
            .unwrap();
    }
    let mut got = read_frames(&mut client, 4).await;
    got.sort();
    assert_eq!(
        got,
        vec![
            (11, "echo:a".into()),
            (12, "echo:b".into()),
            (13, "echo:c".into()),
            (900, String::new())
        ]
    );
}

#[tokio::test]
async fn in_order_protocols_get_answers_in_request_order() {
    // The upstream answers in reverse; the caller still reads 21, 22, 23.
    let upstream = reversing_upstream(3).await;
    let mut client = start(Arc::new(InOrder), upstream);
    client.write_all(&frame(900, PING, b"")).await.unwrap();
    for (id, p) in [(21, "a"), (22, "b"), (23, "c")] {
        client
            .write_all(&frame(id, REQUEST, p.as_bytes()))
            .await
            .unwrap();
    }
    let ids: Vec<u64> = read_frames(&mut client, 4)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec![900, 21, 22, 23]);
}

#[tokio::test]
async fn failures_become_local_replies_and_one_way_calls_stay_silent() {
    // An upstream that takes requests and dies after the second one.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let mut seen = 0;
        while seen < 2 {
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
            while Toy.decode(&mut buf).unwrap().is_some() {
                seen += 1;
            }
        }
    });
    let mut client = start(Arc::new(Toy), upstream);
    client
        .write_all(&frame(1, REQUEST, b"noroute-x"))
        .await
        .unwrap();
    client
        .write_all(&frame(2, ONEWAY, b"noroute-silent"))
        .await
        .unwrap();
    client
        .write_all(&frame(3, REQUEST, b"slow-y"))
        .await
        .unwrap();
    client
        .write_all(&frame(4, REQUEST, b"doomed"))
        .await
        .unwrap();
    let mut got = read_frames(&mut client, 3).await;
    got.sort();
    assert_eq!(got[0], (1, "no route for noroute-x".to_string()));
    assert_eq!(got[1].0, 3);
    // The slow call either timed out first or saw the upstream die: both are answered.
    assert!(
        got[1].1.contains("within 100ms") || got[1].1.contains("went away"),
        "{:?}",
        got[1]
    );
    assert_eq!(got[2].0, 4);
    assert!(got[2].1.contains("went away mid-call"), "{:?}", got[2]);
}

#[tokio::test]
async fn unreadable_bytes_close_the_connection() {
    let upstream = reversing_upstream(1).await;
    let mut client = start(Arc::new(Toy), upstream);
    // A length too short to hold an id and a type: the toy codec's corrupt frame.
    client.write_all(&[0, 0, 0, 1, 0]).await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        n, 0,
        "closed without an answer (the toy codec has no error reply)"
    );
    let _ = (RESPONSE, PONG);
}

#[tokio::test]
async fn the_filters_see_the_callers_address() {
    let upstream = reversing_upstream(1).await;
    let mut client = start(Arc::new(Toy), upstream);
    client.write_all(&frame(5, REQUEST, b"deny")).await.unwrap();
    let got = read_frames(&mut client, 1).await;
    let want = format!("denied {}", super::source().addr);
    assert_eq!(got, vec![(5, want)]);
}

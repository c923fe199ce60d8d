//! W3C trace context through the gateway, per protocol: the caller's trace id goes on, the
//! parent id becomes the gateway's span, and the exported span carries both.

use std::net::SocketAddr;

use corridor_tests::meta::Call;
use corridor_tests::otlp::ReceivedSpan;
use corridor_tests::{HttpClient, PATIENCE, eventually};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{DUBBO, HTTP, THRIFT, World, count};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// THeader (binary) CALL `add(40, 2)` written by PyPI thrift 0.25 with the header
/// `traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01`.
const THEADER_ADD: &str = include_str!("../../../gateway/src/codec/thrift/testdata/thrift-header-binary-add-request.hex");
const THEADER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const THEADER_SPAN: &str = "b7ad6b7169203331";

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// The (trace id, parent id) of a `traceparent` as it reached a backend, checked for
/// shape: version 00, sampled.
fn parts(value: &str) -> (String, String) {
    let fields: Vec<&str> = value.split('-').collect();
    assert_eq!(fields.len(), 4, "{value:?}");
    assert_eq!((fields[0], fields[3]), ("00", "01"), "{value:?}");
    assert_eq!((fields[1].len(), fields[2].len()), (32, 16), "{value:?}");
    (fields[1].to_string(), fields[2].to_string())
}

/// Waits for the exported span `span_id` and checks it continues `trace` under `parent`.
async fn exported(w: &World, trace: &str, span_id: &str, parent: &str) -> ReceivedSpan {
    let span = eventually(PATIENCE, &format!("the span {span_id}"), || async {
        let found = w.collector.spans().into_iter().find(|s| s.span_id == span_id);
        found.ok_or_else(|| anyhow::anyhow!("not exported yet"))
    })
    .await;
    assert_eq!((span.trace_id.as_str(), span.parent_span_id.as_str()), (trace, parent), "{span:?}");
    span
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// Sends one framed (or THeader) Thrift message and reads one framed answer.
async fn thrift_exchange(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    s.write_all(message).await.unwrap_or_else(|e| panic!("{e}"));
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap_or_else(|e| panic!("{e}"));
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap_or_else(|e| panic!("{e}"));
    body
}

#[tokio::test]
async fn a_callers_traceparent_goes_on_under_the_gateways_span_in_every_protocol() {
    let w = World::start("telemetry-trace").await;

    // HTTP: the backend sees the caller's trace with the gateway's span as parent.
    let incoming = traceparent(TRACE, CALLER_SPAN);
    let reply = HttpClient::http1()
        .request(Method::GET, w.addrs[HTTP.0], "/", &[("traceparent", &incoming)])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reply.status.as_u16(), 200);
    let (trace, parent) = parts(reply.header("x-traceparent"));
    assert_eq!(trace, TRACE);
    assert_ne!(parent, CALLER_SPAN, "the parent is the gateway's new span");
    let span = exported(&w, TRACE, &parent, CALLER_SPAN).await;
    assert_eq!(span.attributes.get("request_protocol").map(String::as_str), Some("http"));

    // Without one, a new trace starts (sampling 100 %).
    let reply = HttpClient::http1().get(w.addrs[HTTP.0], "/").await.unwrap_or_else(|e| panic!("{e:#}"));
    let (fresh, fresh_parent) = parts(reply.header("x-traceparent"));
    assert_ne!(fresh, TRACE);
    exported(&w, &fresh, &fresh_parent, "").await;

    // Dubbo: the traceparent attachment.
    let line = format!("--interface org.apache.dubbo.demo.DemoService --method sayHello --attachment traceparent={incoming}");
    let s = w.load("dubbo", DUBBO.0, &line).await;
    let sent = count(&s["requests"]["sent"]) as usize;
    assert!(sent > 0, "{s}");
    let calls: Vec<Call> = eventually(PATIENCE, "the Dubbo calls logged", || async {
        let calls = w.dubbo.calls();
        anyhow::ensure!(calls.len() >= sent, "{} of {sent}", calls.len());
        Ok(calls)
    })
    .await;
    let mut parents = std::collections::BTreeSet::new();
    for call in &calls {
        let (trace, parent) = parts(call.attributes.get("traceparent").map_or("", String::as_str));
        assert_eq!(trace, TRACE, "{call:?}");
        assert_ne!(parent, CALLER_SPAN, "{call:?}");
        parents.insert(parent);
    }
    assert_eq!(parents.len(), calls.len(), "one gateway span per call");
    if let Some(parent) = parents.first() {
        exported(&w, TRACE, parent, CALLER_SPAN).await;
    }

    // Thrift over THeader: the traceparent header.
    let answer = thrift_exchange(w.addrs[THRIFT.0], &unhex(THEADER_ADD)).await;
    assert_eq!(&answer[..2], &[0x0f, 0xff], "a THeader answer: {answer:02x?}");
    let call = eventually(PATIENCE, "the THeader call logged", || async {
        let found = w.thrift.calls().into_iter().find(|c| c.attributes.contains_key("traceparent"));
        found.ok_or_else(|| anyhow::anyhow!("none yet"))
    })
    .await;
    assert_eq!(call.attributes.get("user").map(String::as_str), Some("alice"), "other headers kept: {call:?}");
    let (trace, parent) = parts(&call.attributes["traceparent"]);
    assert_eq!(trace, THEADER_TRACE);
    assert_ne!(parent, THEADER_SPAN);
    let span = exported(&w, THEADER_TRACE, &parent, THEADER_SPAN).await;
    assert_eq!(span.attributes.get("request_protocol").map(String::as_str), Some("thrift"));

    // Framed Thrift has no headers: nothing to carry a trace in (the gateway still has
    // its span, a new trace, exported).
    let before = w.thrift.calls().len();
    let s = w.load("thrift", THRIFT.0, "--method echo --transport framed").await;
    let sent = count(&s["requests"]["sent"]) as usize;
    let calls = eventually(PATIENCE, "the framed calls logged", || async {
        let calls = w.thrift.calls();
        anyhow::ensure!(calls.len() >= before + sent, "{} of {}", calls.len(), before + sent);
        Ok(calls)
    })
    .await;
    assert!(calls[before..].iter().all(|c| c.attributes.is_empty()), "{:?}", &calls[before..]);
}

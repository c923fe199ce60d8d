//! Thrift through the real controller and gateway with a client written by others: the
//! Apache Thrift Python library (PyPI `thrift`, `tests/python/thrift_peer.py`) calling
//! `corridor-load serve thrift` echo backends, over framed, unframed and THeader
//! transports with the binary and compact protocols. Each run of the client is one
//! connection, so "the next call still works" is on the same connection.

use std::net::SocketAddr;

use corridor_tests::manifests::ServicePort;
use corridor_tests::meta::{EchoServer, Protocol, versioned_service};
use corridor_tests::python::{ThriftCall, thrift_client};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

const SERVICE: &str = "echo";
const PORT: u16 = 9090;

/// The (transport, protocol) pairs a Thrift caller may speak, as thrift_peer.py names them.
const FRAMED_BINARY: (&str, &str) = ("framed", "binary");
const FRAMED_COMPACT: (&str, &str) = ("framed", "compact");
const HEADER_BINARY: (&str, &str) = ("header", "binary");
const HEADER_COMPACT: (&str, &str) = ("header", "compact");
const UNFRAMED_BINARY: (&str, &str) = ("buffered", "binary");

/// Service `echo` on a `tcp-thrift-*` port served by one echo backend per name (versions
/// v1, v2, ... in order, with a DestinationRule subset per version), routed by a
/// MetaRouter with `routes`; returns the mesh, the backends and the gateway address.
async fn thrift_mesh(
    tag: &str,
    names: &[&str],
    routes: Value,
) -> (Mesh, Vec<EchoServer>, SocketAddr) {
    versioned_service(tag, Protocol::Thrift, SERVICE, ServicePort::new("tcp-thrift-echo", PORT), names, routes).await
}

/// A route for calls whose method is `method` (all calls when `None`) to `subset`.
fn route(name: &str, method: Option<&str>, subset: &str) -> Value {
    let mut route = json!({
        "name": name,
        "route": [{"destination": {"host": SERVICE, "subset": subset}}]
    });
    if let Some(method) = method {
        route["match"] = json!({"attributes": {"method": {"exact": method}}});
    }
    route
}

/// Runs thrift_peer.py speaking `(transport, protocol)` with `args`.
async fn call(
    addr: SocketAddr,
    (transport, protocol): (&str, &str),
    args: &[&str],
) -> Vec<ThriftCall> {
    let mut all = vec!["--transport", transport, "--protocol", protocol];
    all.extend_from_slice(args);
    thrift_client(addr, &all)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits until `echo(hi)` through the gateway answers (the MetaProtocol routes arrive
/// after the listener) and returns the answer.
async fn first_answer(addr: SocketAddr) -> String {
    eventually(
        PATIENCE,
        "an answer to echo() through the gateway",
        || async move {
            let calls = thrift_client(addr, &["--call", "echo=hi"]).await?;
            let answer = calls.first().and_then(ThriftCall::value);
            answer
                .map(String::from)
                .ok_or_else(|| anyhow::anyhow!("{calls:?}"))
        },
    )
    .await
}

/// Asserts THeader answers came in the caller's own sub-protocol.
fn assert_dialect(calls: &[ThriftCall], (transport, protocol): (&str, &str)) {
    if transport != "header" {
        // A framed or unframed client cannot read an answer in another transport or
        // protocol at all, so the value checks cover them.
        return;
    }
    for c in calls.iter().filter(|c| c.seqids().1.is_some()) {
        assert_eq!(
            c.header_protocol(),
            Some(protocol),
            "THeader {protocol}: {c:?}"
        );
    }
}

/// Asserts each call got the value in `expected` (same order) under its own seqid.
fn assert_values(calls: &[ThriftCall], expected: &[&str], what: &str) {
    let values: Vec<Option<&str>> = calls.iter().map(ThriftCall::value).collect();
    let expected: Vec<Option<&str>> = expected.iter().copied().map(Some).collect();
    assert_eq!(values, expected, "{what}: {calls:?}");
    for c in calls {
        let (sent, got) = c.seqids();
        assert_eq!(
            sent, got,
            "{what}: the answer carries the call's seqid: {c:?}"
        );
    }
}

#[tokio::test]
async fn framed_compact_and_theader_clients_get_their_answers() {
    let routes = json!([route("all", None, "v1")]);
    let (_mesh, _servers, addr) = thrift_mesh("thrift-clients", &["t1"], routes).await;
    assert_eq!(first_answer(addr).await, "t1: hi");

    for dialect in [FRAMED_BINARY, FRAMED_COMPACT, HEADER_BINARY, HEADER_COMPACT] {
        let calls = call(
            addr,
            dialect,
            &["--call", "echo=hi", "--call", "echo=again"],
        )
        .await;
        assert_values(&calls, &["t1: hi", "t1: again"], &format!("{dialect:?}"));
        assert_dialect(&calls, dialect);
    }
}

#[tokio::test]
async fn unframed_binary_client_gets_its_answers() {
    let routes = json!([route("all", None, "v1")]);
    let (_mesh, servers, addr) = thrift_mesh("thrift-unframed", &["t1"], routes).await;
    first_answer(addr).await;

    let calls = call(
        addr,
        UNFRAMED_BINARY,
        &["--call", "echo=hi", "--call", "echo=again"],
    )
    .await;
    assert_values(&calls, &["t1: hi", "t1: again"], "buffered binary");
    let logged = eventually(
        PATIENCE,
        "the backend to log both unframed calls",
        || async {
            let args: Vec<String> = servers[0]
                .calls()
                .iter()
                .map(|c| c.field("method").to_string())
                .collect();
            anyhow::ensure!(args.len() >= 3, "{args:?}");
            Ok(args)
        },
    )
    .await;
    assert_eq!(
        logged,
        ["echo", "echo", "echo"],
        "the warm-up call and the two unframed calls"
    );
}

#[tokio::test]
async fn calls_are_routed_on_their_method() {
    let routes = json!([
        route("echo-to-a", Some("echo"), "v1"),
        route("shout-to-b", Some("shout"), "v2")
    ]);
    let (_mesh, servers, addr) = thrift_mesh("thrift-method", &["a", "b"], routes).await;
    assert_eq!(first_answer(addr).await, "a: hi");

    for dialect in [FRAMED_BINARY, HEADER_COMPACT] {
        let calls = call(
            addr,
            dialect,
            &["--call", "echo=x", "--call", "shout=y", "--repeat", "5"],
        )
        .await;
        let expected: Vec<&str> = (0..5).flat_map(|_| ["a: x", "b: y"]).collect();
        assert_values(&calls, &expected, &format!("{dialect:?}"));
        assert_dialect(&calls, dialect);
    }

    // The backends saw exactly the calls routed to them: a the warm-up and 10 echo, b 10 shout.
    let methods = |server: &EchoServer| -> Vec<String> {
        server
            .calls()
            .iter()
            .map(|c| c.field("method").to_string())
            .collect()
    };
    eventually(PATIENCE, "both backends to log every call", || async {
        let (a, b) = (methods(&servers[0]), methods(&servers[1]));
        anyhow::ensure!(a.len() + b.len() >= 21, "a: {a:?}, b: {b:?}");
        Ok(())
    })
    .await;
    let (a, b) = (methods(&servers[0]), methods(&servers[1]));
    assert_eq!((a.len(), b.len()), (11, 10), "a: {a:?}, b: {b:?}");
    assert!(a.iter().all(|m| m == "echo"), "a: {a:?}");
    assert!(b.iter().all(|m| m == "shout"), "b: {b:?}");
}

#[tokio::test]
async fn a_method_without_route_gets_an_application_exception_in_the_callers_dialect() {
    let routes = json!([route("echo-only", Some("echo"), "v1")]);
    let (_mesh, servers, addr) = thrift_mesh("thrift-noroute", &["t1"], routes).await;
    first_answer(addr).await;

    for dialect in [
        FRAMED_BINARY,
        FRAMED_COMPACT,
        HEADER_BINARY,
        HEADER_COMPACT,
        UNFRAMED_BINARY,
    ] {
        let calls = call(addr, dialect, &["--call", "nope=x", "--call", "echo=hi"]).await;
        assert_dialect(&calls, dialect);
        let (refused, next) = (&calls[0], &calls[1]);
        assert_eq!(
            refused.error_type(),
            "TApplicationException",
            "{dialect:?}: {refused:?}"
        );
        assert_eq!(
            refused.error_kind(),
            Some(1),
            "{dialect:?}: UNKNOWN_METHOD: {refused:?}"
        );
        assert!(
            refused.error_message().contains("nope"),
            "{dialect:?}: the message names the method: {refused:?}"
        );
        let (sent, got) = refused.seqids();
        assert_eq!(
            sent, got,
            "{dialect:?}: the exception carries the call's seqid: {refused:?}"
        );
        assert_eq!(
            next.value(),
            Some("t1: hi"),
            "{dialect:?}: the connection still works: {next:?}"
        );
    }
    // Only the routed calls reached the backend.
    let methods: Vec<String> = servers[0]
        .calls()
        .iter()
        .map(|c| c.field("method").to_string())
        .collect();
    assert!(!methods.iter().any(|m| m == "nope"), "{methods:?}");
}

#[tokio::test]
async fn theader_request_mutation_reaches_the_backend_and_comes_back() {
    let mut mutated = route("echo", Some("echo"), "v1");
    mutated["requestMutation"] = json!([{"key": "x-mesh", "value": "corridor"}]);
    let (_mesh, servers, addr) = thrift_mesh("thrift-mutation", &["t1"], json!([mutated])).await;
    first_answer(addr).await;

    let calls = call(
        addr,
        HEADER_BINARY,
        &["--header", "x-client=py", "--call", "echo=hi"],
    )
    .await;
    assert_values(&calls, &["t1: hi"], "THeader with a header of its own");
    // The backend carries the request's headers back in its reply.
    assert_eq!(calls[0].header("x-mesh"), Some("corridor"), "{calls:?}");
    assert_eq!(
        calls[0].header("x-client"),
        Some("py"),
        "the caller's own header is kept: {calls:?}"
    );

    let logged = eventually(PATIENCE, "the backend to log the THeader call", || async {
        let calls = servers[0].calls();
        calls
            .into_iter()
            .find(|c| c.attributes.contains_key("x-client"))
            .ok_or_else(|| anyhow::anyhow!("no call with x-client yet"))
    })
    .await;
    assert_eq!(
        logged.attributes.get("x-mesh").map(String::as_str),
        Some("corridor"),
        "{logged:?}"
    );
}

#[tokio::test]
async fn oneway_calls_reach_the_backend_and_the_connection_goes_on() {
    let routes = json!([route("all", None, "v1")]);
    let (_mesh, servers, addr) = thrift_mesh("thrift-oneway", &["t1"], routes).await;
    first_answer(addr).await;

    for (dialect, note) in [(FRAMED_BINARY, "note1"), (HEADER_COMPACT, "note2")] {
        let calls = call(
            addr,
            dialect,
            &["--oneway", &format!("{note}=fire"), "--call", "echo=hi"],
        )
        .await;
        assert_eq!(
            calls[0].error_type(),
            "",
            "{dialect:?}: the oneway send itself: {:?}",
            calls[0]
        );
        assert_eq!(calls[0].value(), None);
        assert_eq!(
            calls[1].value(),
            Some("t1: hi"),
            "{dialect:?}: the call after it: {calls:?}"
        );
        let logged = eventually(PATIENCE, "the backend to log the oneway call", || async {
            let calls = servers[0].calls();
            calls
                .into_iter()
                .find(|c| c.field("method") == note)
                .ok_or_else(|| anyhow::anyhow!("no {note} yet"))
        })
        .await;
        assert_eq!(logged.field("type"), "oneway", "{logged:?}");
    }
}

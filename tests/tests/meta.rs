//! Dubbo and Thrift through the real controller and gateway: a `tcp-thrift-*` or
//! `tcp-dubbo-*` port gets a MetaProtocol listener, a MetaRouter routes on the message's
//! attributes, calls reach the upstream over the gateway's shared connection and come
//! back under the caller's id; a call with no route gets the protocol's own error
//! (TApplicationException, Dubbo status 60). The request bytes are third-party encoders'
//! (PyPI thrift 0.25 framed binary `add(40, 2)`; hessian.js `sayHello("world")`).

use std::net::SocketAddr;
use std::time::Duration;

use corridor_tests::manifests::{self, Endpoint, EndpointSlice, Service, ServicePort};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PORT: u16 = 9090;
/// Framed strict-binary CALL `add(1: 40, 2: 2)`, seqid 7.
const ADD_REQUEST: &str = "0000001e800100010000000361646400000007080001000000280800020000000200";
/// REPLY `add` seqid 7, field 0 = 42 (without the frame length).
const ADD_REPLY: &str = "8001000200000003616464000000070800000000002a00";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Byte offset of the seqid in a strict-binary message named `name`.
fn seqid_at(name_len: usize) -> usize {
    4 + 4 + name_len
}

/// An upstream on `addr` reading messages made of a `header_len`-byte header whose
/// 4-byte big-endian body length sits at `len_at`, and answering each (header and body)
/// with `answer(message)`.
async fn upstream(addr: SocketAddr, header_len: usize, len_at: usize, answer: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let bound = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                loop {
                    let mut message = vec![0u8; header_len];
                    if s.read_exact(&mut message).await.is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([message[len_at], message[len_at + 1], message[len_at + 2], message[len_at + 3]]);
                    message.resize(header_len + len as usize, 0);
                    if s.read_exact(&mut message[header_len..]).await.is_err() {
                        return;
                    }
                    if s.write_all(&answer(&message)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    bound
}

/// A framed strict-binary Thrift server answering every call with the captured `add`
/// reply under the call's seqid (read at its fixed offset).
async fn thrift_upstream(addr: SocketAddr) -> SocketAddr {
    upstream(addr, 4, 0, |framed| {
        let call = &framed[4..];
        let name_len = u32::from_be_bytes([call[4], call[5], call[6], call[7]]) as usize;
        let at = seqid_at(name_len);
        let mut reply = hex(ADD_REPLY);
        reply[seqid_at(3)..seqid_at(3) + 4].copy_from_slice(&call[at..at + 4]);
        let mut out = (reply.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        out
    })
    .await
}

/// Sends one framed message and reads one framed answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await??;
    s.write_all(request).await?;
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut len)).await??;
    let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut answer).await?;
    Ok(answer)
}

/// A mesh with one service `name` whose port `port_name`/`port` is served by `upstream`,
/// a MetaRouter with `routes` for it, the controller and a gateway running; returns the
/// mesh and the service's gateway address.
async fn meta_mesh(
    mut mesh: Mesh,
    name: &str,
    port_name: &str,
    port: u16,
    upstream: SocketAddr,
    routes: serde_json::Value,
    gateway_flags: &[&str],
) -> (Mesh, SocketAddr) {
    let ns = mesh.ns.clone();
    let objects: Vec<serde_json::Value> = vec![
        Service::new(name, &ns)
            .port(ServicePort::new(port_name, port).target(upstream.port()))
            .into(),
        EndpointSlice::new(&format!("{name}-x1"), &ns, name)
            .port(port_name, upstream.port())
            .endpoint(Endpoint::new(upstream.ip()))
            .into(),
        json!({
            "apiVersion": "metaprotocol.aeraki.io/v1alpha1",
            "kind": "MetaRouter",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"hosts": [format!("{name}.{ns}.svc.cluster.local")], "routes": routes}
        }),
    ];
    mesh.write(&format!("{name}.yaml"), &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway_with(gateway_flags).await;
    let addr = mesh.service_addr(name, port).await;
    (mesh, addr)
}

#[tokio::test]
async fn thrift_calls_route_on_their_method_through_the_gateway() {
    let mut mesh = Mesh::new("thrift");
    let upstream = thrift_upstream(mesh.upstream_addr(0)).await;
    let routes = json!([{
        "name": "add-only",
        "match": {"attributes": {"method": {"exact": "add"}}},
        "route": [{"destination": {"host": "calc"}}]
    }]);
    let (mesh, addr) = meta_mesh(mesh, "calc", "tcp-thrift-calc", PORT, upstream, routes, &[]).await;

    let add = hex(ADD_REQUEST);
    let answer = eventually(PATIENCE, "an answer to add() through the gateway", || {
        let add = add.clone();
        async move { exchange(addr, &add).await }
    })
    .await;
    // REPLY (type 2), method add, seqid 7, field 0 = 42.
    assert_eq!(&answer[..4], &[0x80, 0x01, 0x00, 0x02], "{answer:02x?}");
    assert_eq!(&answer[8..11], b"add");
    assert_eq!(&answer[seqid_at(3)..seqid_at(3) + 4], &[0, 0, 0, 7]);
    assert_eq!(&answer[answer.len() - 8..], &[8, 0, 0, 0, 0, 0, 0x2a, 0]);

    // The same call named `sub`: no route, a TApplicationException (type 3) back.
    let mut sub = add.clone();
    sub[12..15].copy_from_slice(b"sub");
    let answer = exchange(addr, &sub).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(&answer[..4], &[0x80, 0x01, 0x00, 0x03], "{answer:02x?}");
    assert_eq!(&answer[8..11], b"sub");
    assert_eq!(&answer[seqid_at(3)..seqid_at(3) + 4], &[0, 0, 0, 7]);
    assert!(String::from_utf8_lossy(&answer).contains("no route for method sub"));

    // One access-log line per call.
    mesh.wait_for_gateway_log(&["method=\"add\"", "code=200", "route=\"add-only\"", "protocol=\"thrift\""]).await;
    mesh.wait_for_gateway_log(&["method=\"sub\"", "code=404", "flags=NR"]).await;

    // Istio's request metric counts both, labelled as Thrift calls with Thrift's own
    // codes: 0 for a reply, the TApplicationException type (UNKNOWN_METHOD, 1) for the
    // refused call.
    for (code, flags) in [("0", "-"), ("1", "NR")] {
        let labels = [("request_protocol", "thrift"), ("response_code", code), ("response_flags", flags)];
        mesh.wait_for_metric("istio_requests_total", &labels, 1.0).await;
    }
}

/// The Dubbo `sayHello("world")` request hessian.js writes (request id 1, two-way).
const SAY_HELLO: &str = include_str!("../../gateway/src/codec/dubbo/testdata/sayhello-request.hex");

/// A Dubbo provider that answers every two-way request with a Hessian2 `RESPONSE_VALUE`
/// string `hello from provider` under the request's id.
async fn dubbo_upstream(addr: SocketAddr) -> SocketAddr {
    upstream(addr, 16, 12, |request| {
        let text = "hello from provider";
        // 0x91: int 1 (RESPONSE_VALUE); then a short Hessian2 string.
        let mut body = vec![0x91, text.len() as u8];
        body.extend_from_slice(text.as_bytes());
        let mut reply = vec![0xda, 0xbb, 0x02, 20];
        reply.extend_from_slice(&request[4..12]);
        reply.extend_from_slice(&(body.len() as u32).to_be_bytes());
        reply.extend_from_slice(&body);
        reply
    })
    .await
}

/// Sends one Dubbo request and reads one response: (status, request id, body).
async fn dubbo_call(addr: SocketAddr, request: &[u8]) -> anyhow::Result<(u8, u64, Vec<u8>)> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await??;
    s.write_all(request).await?;
    let mut header = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut header)).await??;
    anyhow::ensure!(header[..2] == [0xda, 0xbb], "not a Dubbo response: {header:02x?}");
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[4..12]);
    let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).await?;
    Ok((header[3], u64::from_be_bytes(id), body))
}

#[tokio::test]
async fn dubbo_calls_route_on_their_interface_and_method_through_the_gateway() {
    let mut mesh = Mesh::new("dubbo");
    let upstream = dubbo_upstream(mesh.upstream_addr(0)).await;
    let routes = json!([{
        "name": "say-hello",
        "match": {"attributes": {
            "interface": {"exact": "org.apache.dubbo.demo.DemoService"},
            "method": {"prefix": "say"}
        }},
        "route": [{"destination": {"host": "demo"}}]
    }]);
    let (_mesh, addr) = meta_mesh(mesh, "demo", "tcp-dubbo-demo", 20880, upstream, routes, &[]).await;

    let request = hex(SAY_HELLO.trim());
    let (status, id, body) = eventually(PATIENCE, "an answer to sayHello through the gateway", || {
        let request = request.clone();
        async move { dubbo_call(addr, &request).await }
    })
    .await;
    assert_eq!((status, id), (20, 1), "{body:02x?}");
    assert!(String::from_utf8_lossy(&body).contains("hello from provider"));

    // The same call to another interface: no route, status 60 (SERVICE_NOT_FOUND) with a
    // readable message, under the caller's id.
    let mut other = request.clone();
    let at = other
        .windows(8)
        .position(|w| w == b"DemoServ")
        .unwrap_or_else(|| panic!("interface not in the vector"));
    other[at..at + 8].copy_from_slice(b"DemoServ".map(|b| b.to_ascii_uppercase()).as_slice());
    let (status, id, body) = dubbo_call(addr, &other).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((status, id), (60, 1), "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("no route"), "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_message_over_the_configured_maximum_gets_a_protocol_error_and_only_its_connection_closes() {
    let mut mesh = Mesh::new("thrift-max");
    let upstream = thrift_upstream(mesh.upstream_addr(0)).await;
    let routes = json!([{"name": "all", "route": [{"destination": {"host": "calc"}}]}]);
    let flags = ["--max-rpc-message-bytes", "1024"];
    let (_mesh, addr) = meta_mesh(mesh, "calc", "tcp-thrift-calc", PORT, upstream, routes, &flags).await;
    let add = hex(ADD_REQUEST);
    eventually(PATIENCE, "an answer to add() through the gateway", || {
        let add = add.clone();
        async move { exchange(addr, &add).await }
    })
    .await;

    // A connection that stays open and keeps working next to the bad one.
    let mut good = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    // `add` with a 2,000-byte frame: the header announces it, the gateway refuses it.
    let mut big = add.clone();
    big[..4].copy_from_slice(&2000u32.to_be_bytes());
    big.resize(4 + 2000, 0);
    let mut bad = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    bad.write_all(&big).await.unwrap_or_else(|e| panic!("{e}"));
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("the gateway kept the connection open"))
        .unwrap_or_else(|e| panic!("{e}"));
    // One framed EXCEPTION (type 3) for `add` seqid 7 naming the limit, then EOF.
    assert_eq!(&answer[4..8], &[0x80, 0x01, 0x00, 0x03], "{answer:02x?}");
    assert_eq!(&answer[8 + 4 + 3..8 + 4 + 3 + 4], &[0, 0, 0, 7]);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("exceeds the maximum of 1024 bytes"), "{text}");

    good.write_all(&add).await.unwrap_or_else(|e| panic!("{e}"));
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), good.read_exact(&mut len))
        .await
        .unwrap_or_else(|_| panic!("no answer on the good connection"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    good.read_exact(&mut reply).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&reply[..4], &[0x80, 0x01, 0x00, 0x02], "{reply:02x?}");
}

//! Thrift through the real controller and gateway: a `tcp-thrift-*` port gets a
//! MetaProtocol listener, a MetaRouter routes on the method, calls reach the upstream over
//! the gateway's shared connection and come back under the caller's seqid; a method with
//! no route gets a TApplicationException. The bytes are PyPI thrift 0.25's (framed binary
//! `add(40, 2)`, seqid 7).

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

/// A framed strict-binary Thrift server answering every call with the captured `add`
/// reply under the call's seqid (read at its fixed offset).
async fn thrift_upstream(addr: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let bound = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut call = vec![0u8; u32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut call).await.is_err() {
                        return;
                    }
                    let name_len = u32::from_be_bytes([call[4], call[5], call[6], call[7]]) as usize;
                    let at = seqid_at(name_len);
                    let mut reply = hex(ADD_REPLY);
                    reply[seqid_at(3)..seqid_at(3) + 4].copy_from_slice(&call[at..at + 4]);
                    let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    bound
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

#[tokio::test]
async fn thrift_calls_route_on_their_method_through_the_gateway() {
    let mut mesh = Mesh::new("thrift");
    let ns = mesh.ns.clone();
    let want = mesh.upstream_addr(0);
    let upstream = thrift_upstream(want).await;
    let objects: Vec<serde_json::Value> = vec![
        Service::new("calc", &ns)
            .port(ServicePort::new("tcp-thrift-calc", PORT).target(upstream.port()))
            .into(),
        EndpointSlice::new("calc-x1", &ns, "calc")
            .port("tcp-thrift-calc", upstream.port())
            .endpoint(Endpoint::new(upstream.ip()))
            .into(),
        json!({
            "apiVersion": "metaprotocol.aeraki.io/v1alpha1",
            "kind": "MetaRouter",
            "metadata": {"name": "calc", "namespace": ns},
            "spec": {
                "hosts": [format!("calc.{ns}.svc.cluster.local")],
                "routes": [{
                    "name": "add-only",
                    "match": {"attributes": {"method": {"exact": "add"}}},
                    "route": [{"destination": {"host": "calc"}}]
                }]
            }
        }),
    ];
    mesh.write("calc.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("calc", PORT).await;

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
}

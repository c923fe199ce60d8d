//! Raw DNS packets over UDP and TCP: what no well-behaved client sends (truncated headers,
//! bad label lengths, compression loops, absurd counts), and a hand-built good query to
//! check the server still answers afterwards.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// RCODE of a DNS message (low four bits of byte 3), if it has a header.
pub fn rcode(message: &[u8]) -> Option<u8> {
    message.get(3).map(|b| b & 0x0f)
}

/// The message ID, if it has one.
pub fn id(message: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*message.first()?, *message.get(1)?]))
}

/// Whether the QR (response) bit is set.
pub fn is_response(message: &[u8]) -> bool {
    message.get(2).is_some_and(|b| b & 0x80 != 0)
}

/// A standard query (RD set, no EDNS) for `name` and `qtype`, with `id`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00]); // RD
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    msg.extend_from_slice(&encode_name(name));
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&[0, 1]); // IN
    msg
}

/// `name` in wire format (uncompressed labels, root label at the end).
pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// `message` with its two-byte TCP length prefix.
pub fn framed(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

/// Sends `packet` in one datagram and returns the first datagram that comes back within
/// `wait`, or `None` (dropped).
pub async fn udp_exchange(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    socket
        .send_to(packet, server)
        .await
        .unwrap_or_else(|e| panic!("send_to {server}: {e}"));
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// What a TCP connection did after we wrote bytes into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOutcome {
    /// A whole length-prefixed message came back.
    Reply(Vec<u8>),
    /// The server closed (or reset) the connection without a whole message.
    Closed,
    /// Nothing happened within the wait.
    Silent,
}

/// Connects, writes `bytes` as they are (the caller frames them, or not), optionally
/// half-closes our side, and reports what came back within `wait`.
pub async fn tcp_exchange(
    server: SocketAddr,
    bytes: &[u8],
    half_close: bool,
    wait: Duration,
) -> TcpOutcome {
    let mut stream = TcpStream::connect(server)
        .await
        .unwrap_or_else(|e| panic!("connect {server}: {e}"));
    // The server may close before reading everything; a failed write is an answer too.
    if stream.write_all(bytes).await.is_err() {
        return TcpOutcome::Closed;
    }
    if half_close {
        let _ = stream.shutdown().await;
    }
    let read = async {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return TcpOutcome::Closed;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        match stream.read_exact(&mut message).await {
            Ok(_) => TcpOutcome::Reply(message),
            Err(_) => TcpOutcome::Closed,
        }
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or(TcpOutcome::Silent)
}

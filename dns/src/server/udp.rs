//! DNS over UDP: our own receive loop on hickory-server's request and response types.
//!
//! hickory-server's UDP loop spawns a task per datagram and hands every response through
//! two channels; a cluster DNS mostly answers from memory, so here datagrams are read in
//! batches (`recvmmsg`), zone answers are decoded, answered, encoded and sent inline, and
//! only questions that need an upstream get a task of their own. Same decoder, same
//! handler, same encoder as TCP.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::{Request, ResponseInfo};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{Handler, Head, MAX_UDP_PAYLOAD, Reply, Source};

/// Datagrams read (and answers sent) per system call at most.
const BATCH: usize = 32;
/// Room per received datagram: queries are a few dozen bytes and EDNS caps what a client
/// may send at its own buffer size; a bigger datagram is cut (MSG_TRUNC) and dropped.
const SLOT: usize = 4096;
/// Response size limit without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: u16 = 512;

/// Receives and answers until `stop` turns true.
pub async fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>, mut stop: watch::Receiver<bool>) {
    let fd = socket.as_raw_fd();
    let mut slots = vec![[0u8; SLOT]; BATCH];
    let mut received: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            r = socket.readable() => if let Err(e) = r {
                tracing::warn!(error = %e, "UDP socket failed; DNS over UDP stops");
                return;
            },
            _ = stop.wait_for(|s| *s) => return,
        }
        received.clear();
        let read = socket.try_io(Interest::READABLE, || {
            // nix's headers hold raw pointers (not Send), so they live only inside the call.
            let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                slots.iter_mut().map(|s| [IoSliceMut::new(&mut s[..])]).collect();
            let batch = recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
                .map_err(std::io::Error::from)?;
            for m in batch {
                let src = m.address.as_ref().and_then(socket_addr);
                // A cut datagram cannot be parsed, and port 0 cannot be answered (a
                // classic reflection trick): both are dropped, keeping their slot.
                match src {
                    Some(src) if src.port() != 0 && !m.flags.contains(MsgFlags::MSG_TRUNC) => received.push((m.bytes, src)),
                    _ => received.push((0, SocketAddr::from(([0, 0, 0, 0], 0)))),
                }
            }
            Ok(())
        });
        if let Err(e) = read {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                // ICMP errors from earlier sends and the like: nothing to do per client.
                tracing::debug!(error = %e, "UDP receive error");
            }
            continue;
        }
        let started = Instant::now();
        for (slot, &(n, src)) in slots.iter().zip(&received) {
            if n == 0 {
                continue;
            }
            if let Some(bytes) = handler.answer_datagram(&socket, &slot[..n], src, started) {
                answers.push((bytes, src));
            }
        }
        send_batch(&socket, &answers).await;
        answers.clear();
    }
}

/// Sends every answer without waiting when the socket takes it (the usual case), else
/// waits for room. (`sendmmsg` would batch these too, but nix's results iterator reads
/// address slots that a send leaves uninitialised, and the count it returns is needed.)
async fn send_batch(socket: &UdpSocket, answers: &[(Vec<u8>, SocketAddr)]) {
    for (bytes, dst) in answers {
        let sent = match socket.try_send_to(bytes, *dst) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.send_to(bytes, *dst).await.map(drop),
            other => other.map(drop),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, %dst, "cannot send a UDP response");
        }
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

impl Handler {
    /// Answers one datagram: the encoded response when it is ready now (zone answers,
    /// errors), `None` when there is nothing to send or an upstream task will send it.
    fn answer_datagram(self: &Arc<Self>, socket: &Arc<UdpSocket>, raw: &[u8], src: SocketAddr, started: Instant) -> Option<Vec<u8>> {
        let request = match Request::from_bytes(raw.to_vec(), src, Protocol::Udp) {
            Ok(r) => r,
            Err(e) => {
                let reply = format_error(raw)?;
                tracing::debug!(%src, error = %e, "malformed query: FORMERR");
                return Some(reply);
            }
        };
        if request.metadata.message_type == MessageType::Response {
            // Never answer answers: that is how reflection loops start.
            return None;
        }
        match self.answer_now(&request) {
            Ok((reply, source)) => Some(self.encode_udp(&request, &reply, source, started)),
            Err(pending) => {
                let (socket, handler) = (socket.clone(), self.clone());
                tokio::spawn(async move {
                    let (reply, source) = handler.finish(&request, pending).await;
                    let bytes = handler.encode_udp(&request, &reply, source, started);
                    if let Err(e) = socket.send_to(&bytes, src).await {
                        tracing::debug!(error = %e, dst = %src, "cannot send a UDP response");
                    }
                });
                None
            }
        }
    }

    /// Encodes the response within the client's UDP size (TC when it does not fit) and
    /// counts it.
    fn encode_udp(&self, request: &Request, reply: &Reply, source: Source, started: Instant) -> Vec<u8> {
        let head = Head::of(request, reply);
        let limit = head
            .edns
            .as_ref()
            .map_or(PLAIN_UDP_LIMIT, |e| e.max_payload().min(MAX_UDP_PAYLOAD));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        let info = match head.message(request, reply).destructive_emit(&mut encoder) {
            Ok(info) => {
                // A record that did not fit is rolled back by moving the encoder's offset,
                // but its bytes stay in the buffer: cut them, or clients see trailing junk.
                let end = encoder.offset();
                bytes.truncate(end);
                info
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a response: SERVFAIL");
                let (b, info) = header_only(&request.metadata, ResponseCode::ServFail);
                bytes = b.unwrap_or_default();
                info
            }
        };
        self.stats.record(request, &info, source, started.elapsed(), bytes.len());
        bytes
    }
}

/// A header-only response with `rcode`.
fn header_only(request: &Metadata, rcode: ResponseCode) -> (Option<Vec<u8>>, ResponseInfo) {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = rcode;
    let header = Header { metadata, counts: HeaderCounts::default() };
    let mut bytes = Vec::with_capacity(12);
    let ok = header.emit(&mut BinEncoder::new(&mut bytes)).is_ok();
    (ok.then_some(bytes), ResponseInfo::from(header))
}

/// FORMERR for a query whose header parses but whose body does not; `None` (drop) for
/// fewer than 12 bytes or a datagram that claims to be a response.
fn format_error(raw: &[u8]) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(raw)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    header_only(&header.metadata, ResponseCode::FormErr).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formerr_keeps_the_id_and_short_or_response_packets_are_dropped() {
        // A header claiming one question, then a label running past the end.
        let mut raw = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        raw.extend_from_slice(&[0x3f, b'a', b'b']);
        let reply = format_error(&raw).unwrap();
        assert_eq!(&reply[..2], &[0xab, 0xcd]);
        assert_eq!(reply[3] & 0x0f, 1, "rcode FORMERR");
        assert_ne!(reply[2] & 0x80, 0, "QR set");
        assert!(format_error(&raw[..11]).is_none());
        raw[2] |= 0x80;
        assert!(format_error(&raw).is_none());
    }
}

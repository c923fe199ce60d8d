//! DNS over UDP: our own receive loop on hickory-server's request and response types.
//!
//! hickory-server's UDP loop spawns a task per datagram and hands every response through
//! two channels; a cluster DNS mostly answers from memory, so here a zone answer is
//! decoded, answered, encoded and sent inline, and only questions that need an upstream
//! get a task of their own. Same decoder, same handler, same encoder as TCP.

use std::sync::Arc;
use std::time::Instant;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::{Request, ResponseInfo};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{Handler, Head, MAX_UDP_PAYLOAD, Reply, Source};

/// Largest datagram read: anything bigger than a UDP payload can be is cut by the kernel.
const RECV_BUFFER: usize = 65_535;
/// Response size limit without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: u16 = 512;

/// Receives and answers until `stop` turns true.
pub async fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, src) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from earlier sends and the like: nothing to do per client.
                    tracing::debug!(error = %e, "UDP receive error");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        // Port 0 cannot be answered (and is a classic reflection trick).
        if src.port() == 0 {
            continue;
        }
        let started = Instant::now();
        let raw = &buf[..n];
        let request = match Request::from_bytes(raw.to_vec(), src, Protocol::Udp) {
            Ok(r) => r,
            Err(e) => {
                if let Some(reply) = format_error(raw) {
                    tracing::debug!(%src, error = %e, "malformed query: FORMERR");
                    let _ = socket.send_to(&reply, src).await;
                }
                continue;
            }
        };
        if request.metadata.message_type == MessageType::Response {
            // Never answer answers: that is how reflection loops start.
            continue;
        }
        match handler.answer_now(&request) {
            Ok((reply, source)) => handler.send_udp(&socket, &request, &reply, source, started).await,
            Err(pending) => {
                let (socket, handler) = (socket.clone(), handler.clone());
                tokio::spawn(async move {
                    let (reply, source) = handler.finish(&request, pending).await;
                    handler.send_udp(&socket, &request, &reply, source, started).await;
                });
            }
        }
    }
}

impl Handler {
    /// Encodes the response within the client's UDP size (TC when it does not fit), sends
    /// it and counts it.
    async fn send_udp(&self, socket: &UdpSocket, request: &Request, reply: &Reply, source: Source, started: Instant) {
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
                let (bytes, info) = header_only(&request.metadata, ResponseCode::ServFail);
                if let Some(b) = bytes {
                    // Best effort, without waiting: failing to encode is already an edge case.
                    let _ = socket.try_send_to(&b, request.src());
                }
                self.stats.record(request, &info, source, started.elapsed());
                return;
            }
        };
        if let Err(e) = socket.send_to(&bytes, request.src()).await {
            tracing::debug!(error = %e, dst = %request.src(), "cannot send a UDP response");
        }
        self.stats.record(request, &info, source, started.elapsed());
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

//! Answering a raw query without a socket: for the fuzz target and unit tests, which
//! drive exactly the code the sockets drive.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use super::{Handler, MAX_UDP_PAYLOAD};

/// Keeps the encoded response instead of sending it.
#[derive(Clone, Default)]
struct Capture {
    bytes: Arc<Mutex<Option<Vec<u8>>>>,
    udp: bool,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // The same size limit the UDP socket path applies.
        let max = match (self.udp, response.edns()) {
            (false, _) => u16::MAX,
            (true, Some(e)) => e.max_payload().min(MAX_UDP_PAYLOAD),
            (true, None) => 512,
        };
        let mut buf = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        // As on the UDP path: drop the bytes of a record rolled back for not fitting.
        let end = encoder.offset();
        buf.truncate(end);
        if let Ok(mut slot) = self.bytes.lock() {
            *slot = Some(buf);
        }
        Ok(info)
    }
}

impl Handler {
    /// Answers one raw query as if it arrived over `protocol` from `src`. `None` when the
    /// bytes are not a query at all (the socket path drops those, or answers FORMERR when
    /// only the header parses).
    pub async fn answer_raw(&self, raw: &[u8], src: SocketAddr, protocol: Protocol) -> Option<Vec<u8>> {
        let request = Request::from_bytes(raw.to_vec(), src, protocol).ok()?;
        let capture = Capture {
            bytes: Arc::default(),
            udp: protocol == Protocol::Udp,
        };
        self.handle_request::<_, TokioTime>(&request, capture.clone()).await;
        capture.bytes.lock().ok()?.take()
    }
}

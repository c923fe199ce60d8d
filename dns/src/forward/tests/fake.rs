//! A scriptable upstream resolver on 127.0.0.1: UDP and TCP on one port, answering with
//! whatever the test's handler returns, counting what it was asked.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_server::proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Which transport a query came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One thing the fake sends back.
pub enum Reply {
    /// Encoded (and, over TCP, framed).
    Message(Message),
    /// Sent verbatim: a datagram over UDP, raw stream bytes over TCP.
    Raw(Vec<u8>),
}

type Handler = dyn Fn(&Message, Transport) -> Vec<Reply> + Send + Sync;

#[derive(Default)]
struct Seen {
    udp: AtomicUsize,
    tcp: AtomicUsize,
    last: Mutex<Option<Message>>,
}

/// A running fake upstream; stops when dropped.
pub struct Fake {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    /// Replies wait for a permit when the fake is gated.
    gate: Option<Arc<Semaphore>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fake {
    /// A fake that answers at once.
    pub async fn start(
        handler: impl Fn(&Message, Transport) -> Vec<Reply> + Send + Sync + 'static,
    ) -> Fake {
        Self::spawn(Arc::new(handler), None).await
    }

    /// A fake whose replies are held until [`Fake::release`].
    pub async fn gated(
        handler: impl Fn(&Message, Transport) -> Vec<Reply> + Send + Sync + 'static,
    ) -> Fake {
        Self::spawn(Arc::new(handler), Some(Arc::new(Semaphore::new(0)))).await
    }

    /// Lets `n` held queries be answered.
    pub fn release(&self, n: usize) {
        if let Some(gate) = &self.gate {
            gate.add_permits(n);
        }
    }

    /// Queries received over UDP.
    pub fn udp_queries(&self) -> usize {
        self.seen.udp.load(Ordering::SeqCst)
    }

    /// Queries received over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.seen.tcp.load(Ordering::SeqCst)
    }

    /// The last query received.
    pub fn last_query(&self) -> Message {
        self.seen
            .last
            .lock()
            .unwrap()
            .clone()
            .expect("no query yet")
    }

    async fn spawn(handler: Arc<Handler>, gate: Option<Arc<Semaphore>>) -> Fake {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let udp_task = tokio::spawn(serve_udp(
            Arc::new(udp),
            Arc::clone(&handler),
            Arc::clone(&seen),
            gate.clone(),
        ));
        let tcp_task = tokio::spawn(serve_tcp(tcp, handler, Arc::clone(&seen)));
        Fake {
            addr,
            seen,
            gate,
            tasks: vec![udp_task, tcp_task],
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// UDP and TCP sockets on the same free port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn encode(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Message(message) => message.to_vec().unwrap(),
        Reply::Raw(bytes) => bytes,
    }
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    seen: Arc<Seen>,
    gate: Option<Arc<Semaphore>>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        seen.udp.fetch_add(1, Ordering::SeqCst);
        *seen.last.lock().unwrap() = Some(query.clone());
        let replies: Vec<Vec<u8>> = handler(&query, Transport::Udp)
            .into_iter()
            .map(encode)
            .collect();
        let socket = Arc::clone(&socket);
        let gate = gate.clone();
        // Each query's replies go out on their own, so a gated reply does not stop the
        // fake from receiving (and counting) further queries.
        tokio::spawn(async move {
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            for datagram in replies {
                let _ = socket.send_to(&datagram, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, seen: Arc<Seen>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(
            stream,
            Arc::clone(&handler),
            Arc::clone(&seen),
        ));
    }
}

/// Answers one query, then closes the connection.
async fn serve_tcp_connection(mut stream: TcpStream, handler: Arc<Handler>, seen: Arc<Seen>) {
    let mut prefix = [0u8; 2];
    if stream.read_exact(&mut prefix).await.is_err() {
        return;
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    if stream.read_exact(&mut message).await.is_err() {
        return;
    }
    let Ok(query) = Message::from_vec(&message) else {
        return;
    };
    seen.tcp.fetch_add(1, Ordering::SeqCst);
    *seen.last.lock().unwrap() = Some(query.clone());
    for reply in handler(&query, Transport::Tcp) {
        let bytes = match reply {
            Reply::Message(message) => {
                let body = message.to_vec().unwrap();
                let mut framed = (body.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&body);
                framed
            }
            Reply::Raw(bytes) => bytes,
        };
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

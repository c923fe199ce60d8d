//! HTTP/1.1 keep-alive load: one request in flight per connection.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Uri, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Mutex};

use super::{Answer, CallError, LoadArgs, LoadError, RunResult, Status, Target};

/// Flags of `corridor-load http`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Target URL (http:// only).
    #[arg(long)]
    pub url: Uri,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// GETs of one URL.
#[derive(Debug)]
pub struct HttpTarget {
    addr: SocketAddr,
    uri: Uri,
    host: String,
}

impl HttpTarget {
    /// A target for `uri`, resolving its authority.
    pub async fn new(uri: Uri) -> Result<Self, LoadError> {
        let host = uri
            .authority()
            .ok_or_else(|| LoadError::Request("the URL needs a host:port".into()))?
            .to_string();
        let addr = super::resolve(&host).await?;
        Ok(Self { addr, uri, host })
    }
}

impl Target for HttpTarget {
    const PROTOCOL: &'static str = "http";
    // HTTP/1.1 has one request in flight: the lock is only ever taken by one lane.
    type Conn = Mutex<SendRequest<Empty<Bytes>>>;

    async fn connect(&self) -> Result<Self::Conn, CallError> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|source| CallError::Connect {
                addr: self.addr,
                source,
            })?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Mutex::new(sender))
    }

    async fn call(&self, conn: &Self::Conn) -> Result<Answer, CallError> {
        let mut sender = conn.lock().await;
        sender.ready().await?;
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = self.uri.clone();
        if let Ok(host) = self.host.parse() {
            req.headers_mut().insert(hyper::header::HOST, host);
        }
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(Answer {
            status: Status::Code(status),
            failed: false,
        })
    }
}

/// Runs `corridor-load http`.
pub async fn run(args: &HttpArgs) -> Result<RunResult, LoadError> {
    let target = Arc::new(HttpTarget::new(args.url.clone()).await?);
    Ok(super::run(target, &args.load, 1).await)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A keep-alive server answering every request head with `status` and no body.
    async fn server(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                            if s.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn open_loop_counts_statuses() {
        for (status, code, non_2xx) in [("200 OK", 200, false), ("503 Unavailable", 503, true)] {
            let addr = server(status).await;
            let args = HttpArgs {
                url: format!("http://{addr}/x").parse().unwrap(),
                load: LoadArgs {
                    rate: 200,
                    connections: 2,
                    duration: Duration::from_millis(100),
                    threads: 1,
                    json: true,
                    fail_on_error: false,
                },
            };
            let r = run(&args).await.unwrap();
            assert!(r.answered() > 0);
            assert_eq!(r.count(Status::Code(code)), r.answered());
            // Non-2xx answers are not errors for HTTP: they are counted apart.
            assert_eq!(r.errors, 0);
            let json: serde_json::Value =
                serde_json::from_str(&crate::load::report::render(&r, true).unwrap()).unwrap();
            assert_eq!(json["non_2xx"].as_u64().unwrap() > 0, non_2xx);
        }
    }
}

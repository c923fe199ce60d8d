//! HTTP/1.1 keep-alive load: one task per connection, one request in flight on each.
//!
//! Open loop: request `i` is due at `start + i / rate`; connection `c` takes requests
//! `c, c + n, c + 2n, ...`. A request that could not be sent on time because its connection
//! was still busy is still timed from when it was due.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, time::Instant};

use crate::report::{Outcome, RunResult};

/// Flags of `corridor-load http`.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Target URL (http:// only).
    #[arg(long)]
    pub url: Uri,
    /// Requests per second across all connections; 0 = closed loop, as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// How long to send for.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when any request failed.
    #[arg(long)]
    pub fail_on_error: bool,
}

/// Runs the load and gathers every connection's outcome.
pub async fn run(args: &HttpArgs) -> anyhow::Result<RunResult> {
    let authority = args.url.authority().context("the URL needs a host:port")?.clone();
    let addr: SocketAddr = tokio::net::lookup_host(authority.as_str())
        .await?
        .next()
        .context("the URL's host resolves to nothing")?;
    let n = args.connections.max(1);
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + args.duration;
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(n as f64 / args.rate as f64));
    let mut tasks = Vec::with_capacity(n);
    for c in 0..n {
        let first = interval.map(|_| start + Duration::from_secs_f64(c as f64 / args.rate as f64));
        let conn = Connection { addr, uri: args.url.clone(), host: authority.to_string() };
        tasks.push(tokio::spawn(conn.drive(first, interval, deadline)));
    }
    let mut result = RunResult::new(args.rate, n);
    for t in tasks {
        result.merge(t.await?);
    }
    result.elapsed = start.elapsed().min(args.duration + Duration::from_secs(30));
    Ok(result)
}

struct Connection {
    addr: SocketAddr,
    uri: Uri,
    host: String,
}

impl Connection {
    async fn drive(self, first: Option<Instant>, interval: Option<Duration>, deadline: Instant) -> Outcome {
        let mut out = Outcome::new();
        let mut sender = None;
        let mut due = first;
        loop {
            let now = Instant::now();
            if let Some(d) = due {
                if d >= deadline {
                    break;
                }
                if d > now {
                    tokio::time::sleep_until(d).await;
                }
            } else if now >= deadline {
                break;
            }
            let intended = due.unwrap_or_else(Instant::now);
            if sender.is_none() {
                match self.connect().await {
                    Ok(s) => sender = Some(s),
                    Err(_) => out.errors += 1,
                }
            }
            if let Some(s) = sender.as_mut() {
                match self.one(s).await {
                    Ok(status) => out.record(status, intended.elapsed()),
                    Err(_) => {
                        out.errors += 1;
                        sender = None;
                    }
                }
            }
            due = match (due, interval) {
                (Some(d), Some(i)) => Some(d + i),
                _ => None,
            };
        }
        out
    }

    async fn connect(&self) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn one(&self, sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> anyhow::Result<u16> {
        sender.ready().await?;
        let req = Request::get(self.uri.clone())
            .header(hyper::header::HOST, self.host.as_str())
            .body(Empty::new())?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

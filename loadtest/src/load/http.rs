//! HTTP load: one request (method, headers, body) sent again and again over keep-alive
//! HTTP/1.1 connections (one request in flight on each) or HTTP/2 over cleartext with
//! prior knowledge (many streams in flight on each).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Uri,
    client::conn::{http1, http2},
    header::{HOST, HeaderName, HeaderValue},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Mutex;

use super::{Answer, CallError, LoadArgs, LoadError, RunResult, Status, Target};

/// Flags of `corridor-load http`.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("where").required(true).args(["url", "target"]))]
pub struct HttpArgs {
    /// Target URL (http:// only).
    #[arg(long)]
    pub url: Option<Uri>,
    /// Server or gateway, host:port (or a URL, as --url).
    #[arg(long, conflicts_with = "url")]
    pub target: Option<String>,
    /// Path and query asked with --target.
    #[arg(long, default_value = "/", conflicts_with = "url")]
    pub path: String,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: Method,
    /// A request header, 'name: value' (repeatable); a Host header replaces the URL's.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body.
    #[arg(long, conflicts_with = "body_size")]
    pub body: Option<String>,
    /// Send a body of this many bytes instead.
    #[arg(long)]
    pub body_size: Option<usize>,
    /// HTTP/2 over cleartext with prior knowledge (h2c) instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Requests in flight per connection (HTTP/2 streams; HTTP/1.1 queues them).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

impl HttpArgs {
    /// The URL asked: `--url`, or `--target` with `--path`.
    pub fn uri(&self) -> Result<Uri, LoadError> {
        let text = match (&self.url, &self.target) {
            (Some(url), _) => return Ok(url.clone()),
            (None, Some(t)) if t.contains("://") => t.clone(),
            (None, Some(t)) => format!("http://{t}{}", self.path),
            (None, None) => return Err(LoadError::Request("give --url or --target".into())),
        };
        text.parse()
            .map_err(|e| LoadError::Request(format!("{text:?} is not a URL: {e}")))
    }

    /// The request body: `--body`, else `--body-size` bytes of `x`, else none.
    pub fn body_bytes(&self) -> Bytes {
        match (&self.body, self.body_size) {
            (Some(body), _) => Bytes::from(body.clone()),
            (None, Some(n)) => Bytes::from(vec![b'x'; n]),
            (None, None) => Bytes::new(),
        }
    }
}

/// Parses `name: value`.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not 'name: value'"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{s:?}: {e}"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((name, value))
}

/// Which HTTP a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1 keep-alive.
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    Http2,
}

/// One request, sent again and again.
#[derive(Debug)]
pub struct HttpTarget {
    addr: SocketAddr,
    source: Option<IpAddr>,
    version: Version,
    method: Method,
    /// The URI put in the request: origin form for HTTP/1.1 (with a Host header),
    /// absolute for HTTP/2 (its `:authority`).
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl HttpTarget {
    /// A target for `uri`, resolving its authority; the request has `method`,
    /// `headers` and `body`.
    pub async fn new(
        uri: Uri,
        version: Version,
        method: Method,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<Self, LoadError> {
        if uri.scheme_str().is_some_and(|s| s != "http") {
            return Err(LoadError::Request(format!("{uri}: only http:// is spoken")));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| LoadError::Request(format!("{uri}: the URL needs a host:port")))?
            .clone();
        let host = match authority.port() {
            Some(_) => authority.to_string(),
            None => format!("{authority}:80"),
        };
        let addr = super::resolve(&host).await?;
        let mut headers = headers;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let uri = match version {
            Version::Http1 => {
                if !headers.iter().any(|(n, _)| n == HOST) {
                    let value = HeaderValue::try_from(authority.as_str())
                        .map_err(|e| LoadError::Request(format!("host {authority}: {e}")))?;
                    headers.push((HOST, value));
                }
                path.parse()
            }
            Version::Http2 => format!("http://{authority}{path}").parse(),
        }
        .map_err(|e| LoadError::Request(format!("{path:?}: {e}")))?;
        Ok(Self {
            addr,
            source: None,
            version,
            method,
            uri,
            headers,
            body,
        })
    }

    /// Connections come from `source` (see `--source`).
    pub fn from_source(self, source: Option<IpAddr>) -> Self {
        Self { source, ..self }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        req
    }
}

/// A connection.
pub enum HttpConn {
    /// HTTP/1.1: one request at a time, so the lanes sharing it take turns.
    Http1(Mutex<http1::SendRequest<Full<Bytes>>>),
    /// HTTP/2: every lane sends its own stream.
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Target for HttpTarget {
    const PROTOCOL: &'static str = "http";
    type Conn = HttpConn;

    async fn connect(&self) -> Result<HttpConn, CallError> {
        let stream = super::dial(self.addr, self.source).await?;
        let io = TokioIo::new(stream);
        Ok(match self.version {
            Version::Http1 => {
                let (sender, conn) = http1::handshake(io).await?;
                tokio::spawn(conn);
                HttpConn::Http1(Mutex::new(sender))
            }
            Version::Http2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(conn);
                HttpConn::Http2(sender)
            }
        })
    }

    async fn call(&self, conn: &HttpConn) -> Result<Answer, CallError> {
        let resp = match conn {
            HttpConn::Http1(sender) => {
                let mut sender = sender.lock().await;
                sender.ready().await?;
                sender.send_request(self.request()).await?
            }
            HttpConn::Http2(sender) => {
                let mut sender = sender.clone();
                sender.ready().await?;
                sender.send_request(self.request()).await?
            }
        };
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(Answer {
            status: Status::Code(status),
            failed: !is_success(status),
        })
    }
}

/// Whether an HTTP status is a success for the report: 2xx, and 3xx (an answer the
/// client would follow). 1xx never ends a request; 4xx and 5xx are status errors.
pub fn is_success(status: u16) -> bool {
    (200..400).contains(&status)
}

/// Runs `corridor-load http`.
pub async fn run(args: &HttpArgs) -> Result<RunResult, LoadError> {
    let version = if args.http2 {
        Version::Http2
    } else {
        Version::Http1
    };
    let target = HttpTarget::new(
        args.uri()?,
        version,
        args.method.clone(),
        args.headers.clone(),
        args.body_bytes(),
    )
    .await?
    .from_source(args.load.source);
    Ok(super::run(Arc::new(target), &args.load, args.concurrency).await)
}

#[cfg(test)]
mod tests;

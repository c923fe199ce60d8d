//! Body types of the proxy: what goes upstream (streamed, or replayable for retries) and
//! what goes back downstream (upstream bytes or a local reply), with byte counting.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Boxed error of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much of a request body is kept for retries. A body that grows past it is still
/// streamed, but the request is no longer retried.
pub const RETRY_BUFFER_LIMIT: usize = 64 * 1024;

/// The body sent upstream.
#[derive(Debug)]
pub enum RequestBody {
    /// No body.
    Empty,
    /// The downstream body, streamed once, counted into the shared counter.
    Stream(Incoming, Arc<AtomicU64>),
    /// A replayable view of the downstream body (routes with retries or mirrors).
    Replay(ReplayBody),
    /// A copy of a whole body, sent once (a mirrored request).
    Copy(Option<Copied>),
}

/// A whole request body as a [`Tee`] saw it: its data chunks and trailers.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    /// The data, in order.
    pub chunks: Vec<Bytes>,
    /// The trailers, if any.
    pub trailers: Option<HeaderMap>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Stream(b, count) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Some(d) = f.data_ref() {
                        count.fetch_add(d.len() as u64, Ordering::Relaxed);
                    }
                    Poll::Ready(Some(Ok(f)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            RequestBody::Replay(r) => r.poll(cx),
            RequestBody::Copy(copy) => Poll::Ready(next_copied(copy)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Stream(b, _) => b.is_end_stream(),
            RequestBody::Replay(r) => r.is_end(),
            RequestBody::Copy(copy) => copy.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Stream(b, _) => b.size_hint(),
            RequestBody::Replay(r) => r.size_hint(),
            RequestBody::Copy(Some(c)) if c.trailers.is_none() => {
                SizeHint::with_exact(c.chunks.iter().map(|b| b.len() as u64).sum())
            }
            RequestBody::Copy(_) => SizeHint::default(),
        }
    }
}

/// The next frame of a copied body: its chunks, then its trailers; `None` at the end.
fn next_copied(copy: &mut Option<Copied>) -> Option<Result<Frame<Bytes>, BoxError>> {
    let c = copy.as_mut()?;
    if !c.chunks.is_empty() {
        let chunk = c.chunks.remove(0);
        if c.chunks.is_empty() && c.trailers.is_none() {
            *copy = None;
        }
        return Some(Ok(Frame::data(chunk)));
    }
    let trailers = copy.take()?.trailers?;
    Some(Ok(Frame::trailers(trailers)))
}

// === impl Tee ===

/// A copy of a request body as the first try reads it, for a mirror: it resolves once
/// the whole body went by, or to nothing when the body outgrew the replay limit
/// ([`RETRY_BUFFER_LIMIT`]) or the request ended before its body was read.
#[derive(Debug)]
pub struct Tee(tokio::sync::oneshot::Receiver<Copied>);

impl Tee {
    /// The whole body, or `None` when it could not be copied.
    pub async fn body(self) -> Option<Copied> {
        self.0.await.ok()
    }
}

// === impl ReplayBody ===

#[derive(Debug)]
struct ReplayState {
    incoming: Incoming,
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    size: usize,
    overflow: bool,
    complete: bool,
    attempt: u32,
    hint: SizeHint,
    count: Arc<AtomicU64>,
    /// Mirrors waiting for the whole body.
    tees: Vec<tokio::sync::oneshot::Sender<Copied>>,
}

impl ReplayState {
    /// The body has been read to its end: waiting mirrors get their copy.
    fn finish(&mut self) {
        self.complete = true;
        if self.overflow {
            return;
        }
        for tee in self.tees.drain(..) {
            // A mirror that gave up is no concern of the request's.
            let _ = tee.send(Copied {
                chunks: self.chunks.clone(),
                trailers: self.trailers.clone(),
            });
        }
    }
}

/// A request body that records what it forwards (up to [`RETRY_BUFFER_LIMIT`]) so that
/// a retry can send it again. Each try gets its own view with [`ReplayBody::next_try`];
/// a superseded view fails, so an abandoned upstream connection can never steal data
/// meant for the current try. Only one try reads at a time, so the mutex never waits.
#[derive(Debug)]
pub struct ReplayBody {
    state: Arc<Mutex<ReplayState>>,
    attempt: u32,
    pos: usize,
    trailers_sent: bool,
}

impl ReplayBody {
    /// Wraps a downstream body; `count` accumulates the bytes read from downstream.
    pub fn new(incoming: Incoming, count: Arc<AtomicU64>) -> Self {
        let hint = incoming.size_hint();
        let state = ReplayState {
            incoming,
            chunks: Vec::new(),
            trailers: None,
            size: 0,
            overflow: false,
            complete: false,
            attempt: 0,
            hint,
            count,
            tees: Vec::new(),
        };
        ReplayBody {
            state: Arc::new(Mutex::new(state)),
            attempt: 0,
            pos: 0,
            trailers_sent: false,
        }
    }

    /// Whether the body can still be sent again from the start.
    pub fn can_replay(&self) -> bool {
        self.state.lock().map(|s| !s.overflow).unwrap_or(false)
    }

    /// A copy of the whole body for a mirror, once it has been read (by the tries).
    pub fn tee(&self) -> Tee {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut s) = self.state.lock() {
            if s.complete && !s.overflow {
                let _ = tx.send(Copied {
                    chunks: s.chunks.clone(),
                    trailers: s.trailers.clone(),
                });
            } else if !s.overflow {
                s.tees.push(tx);
            }
        }
        Tee(rx)
    }

    /// A fresh view for the next try; the previous views stop working.
    pub fn next_try(&self) -> ReplayBody {
        let attempt = match self.state.lock() {
            Ok(mut s) => {
                s.attempt += 1;
                s.attempt
            }
            Err(_) => u32::MAX,
        };
        ReplayBody {
            state: self.state.clone(),
            attempt,
            pos: 0,
            trailers_sent: false,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Ok(mut s) = self.state.lock() else {
            return Poll::Ready(Some(Err("request body state poisoned".into())));
        };
        if s.attempt != self.attempt {
            return Poll::Ready(Some(Err("request body superseded by a retry".into())));
        }
        if !s.overflow && self.pos < s.chunks.len() {
            let chunk = s.chunks[self.pos].clone();
            self.pos += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if s.complete {
            if !self.trailers_sent {
                self.trailers_sent = true;
                if let Some(t) = s.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
            }
            return Poll::Ready(None);
        }
        match Pin::new(&mut s.incoming).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                s.finish();
                self.trailers_sent = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    s.count.fetch_add(d.len() as u64, Ordering::Relaxed);
                    if !s.overflow {
                        s.size += d.len();
                        if s.size > RETRY_BUFFER_LIMIT {
                            s.overflow = true;
                            s.chunks = Vec::new();
                            // Mirrors waiting for a copy learn there will be none.
                            s.tees.clear();
                        } else {
                            s.chunks.push(d.clone());
                            self.pos += 1;
                        }
                    }
                } else if let Some(t) = frame.trailers_ref() {
                    s.trailers = Some(t.clone());
                    s.finish();
                    self.trailers_sent = true;
                }
                if s.incoming.is_end_stream() && !s.complete {
                    s.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end(&self) -> bool {
        match self.state.lock() {
            // Without trailers to send, the body ends with its last chunk: saying so lets
            // hyper put END_STREAM on that frame. Otherwise an HTTP/2 upstream gets the
            // downstream's empty closing DATA frame without END_STREAM, and h2 servers
            // count those per connection and close it past a limit (GOAWAY
            // ENHANCE_YOUR_CALM "too_many_data_frames"), failing the calls on it.
            Ok(s) => {
                s.attempt == self.attempt
                    && s.complete
                    && (self.trailers_sent || s.trailers.is_none())
                    && (s.overflow || self.pos >= s.chunks.len())
            }
            Err(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.state.lock().map(|s| s.hint).unwrap_or_default()
    }
}

// === impl ResponseBody ===

/// The body sent downstream.
#[derive(Debug)]
pub enum ResponseBody {
    /// Streamed from upstream; bytes are counted into the exchange.
    Upstream(Incoming, super::exchange::Exchange),
    /// A local reply (or the last frame of one); the exchange ends when it is dropped.
    Local(Option<Bytes>, Option<super::exchange::Exchange>),
}

impl ResponseBody {
    /// An empty body with no exchange attached (admin, tests).
    pub fn empty() -> Self {
        ResponseBody::Local(None, None)
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        match self {
            // hyper may not poll a body that is already at its end (e.g. `content-length: 0`).
            ResponseBody::Upstream(b, ex) if b.is_end_stream() => ex.upstream_complete(),
            ResponseBody::Local(_, Some(ex)) => ex.mark_complete(),
            _ => {}
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Upstream(b, ex) => match Pin::new(&mut *b).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Some(d) = f.data_ref() {
                        ex.bytes_out += d.len() as u64;
                    } else if let Some(t) = f.trailers_ref() {
                        ex.observe_grpc_status(t);
                    }
                    if b.is_end_stream() {
                        ex.upstream_complete();
                    }
                    Poll::Ready(Some(Ok(f)))
                }
                Poll::Ready(Some(Err(e))) => {
                    ex.upstream_reset();
                    Poll::Ready(Some(Err(e.into())))
                }
                Poll::Ready(None) => {
                    ex.upstream_complete();
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
            ResponseBody::Local(data, ex) => {
                let frame = data.take().map(|d| {
                    if let Some(ex) = ex {
                        ex.bytes_out += d.len() as u64;
                    }
                    Ok(Frame::data(d))
                });
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(b, _) => b.is_end_stream(),
            ResponseBody::Local(d, _) => d.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(b, _) => b.size_hint(),
            ResponseBody::Local(d, _) => {
                SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests;

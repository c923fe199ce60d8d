//! A Redis client connection: commands are decoded as they arrive (pipelined or not),
//! each is dispatched in turn, and replies are written strictly in command order. Bytes
//! that are not RESP get Redis's protocol error and the connection is closed; other
//! connections never notice.

use std::sync::Arc;

use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::RedisListener;
use super::pending::Pending;
use super::route::dispatch;
use super::session::Session;
use crate::proxy::{READ_CHUNK, WRITE_BATCH};
use crate::redis::command::{Kind, check_arity, lookup, unknown_command, unsupported_command};
use crate::redis::resp::{CommandDecoder, Value, encode};

/// Largest command accepted from a client (Redis's own limit for a bulk string).
pub const DEFAULT_MAX_REQUEST: usize = 512 * 1024 * 1024;
/// Replies waiting to be written before the connection stops reading commands.
const PIPELINE_DEPTH: usize = 1024;

/// Serves one client until it closes, QUITs, or sends bytes that are not RESP.
pub async fn serve<S>(stream: S, listener: Arc<RedisListener>, max_request: usize)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (replies, queue) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let writing = tokio::spawn(write_loop(writer, queue));
    let mut decoder = CommandDecoder::new(max_request);
    let mut session = Session::new(&listener.config);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = BytesMut::new();
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    let reply = handle(&listener, &mut session, cmd, &mut scratch).await;
                    if replies.send(reply).await.is_err() || session.closing {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(listener = %listener.name, error = %e, "closing a Redis connection that sent unreadable bytes");
                    let _ = replies.send(Pending::ready(e.reply())).await;
                    break 'read;
                }
            }
        }
        buf.reserve(READ_CHUNK);
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Replies to commands already sent are still written before the connection closes.
    drop(replies);
    let _ = writing.await;
}

/// The reply to one command: answered here, refused, or sent upstream.
async fn handle(
    l: &Arc<RedisListener>,
    session: &mut Session,
    cmd: crate::redis::resp::Command,
    scratch: &mut BytesMut,
) -> Pending {
    let ready = Pending::ready;
    let Some(info) = cmd.args.first().and_then(|name| lookup(name)) else {
        return ready(unknown_command(&cmd.args));
    };
    if !session.authenticated && !matches!(info.name, "auth" | "hello" | "quit") {
        return ready(Value::error("NOAUTH Authentication required."));
    }
    if let Err(e) = check_arity(info, cmd.args.len()) {
        return ready(e);
    }
    match info.kind {
        Kind::Connection => ready(session.answer(&l.config, info.name, &cmd.args)),
        Kind::Keyless => ready(Session::keyless(info.name, &cmd.args)),
        Kind::Unsupported => ready(unsupported_command(info)),
        Kind::SingleKey
        | Kind::EvalKeys
        | Kind::Colocated
        | Kind::MultiGet
        | Kind::MultiSet
        | Kind::MultiSum => dispatch(l, info, cmd, scratch).await,
    }
}

/// Writes replies in command order, batching those already done. Replies are waited
/// for in order, so one timer, set to the deadline of the reply at the head, enforces
/// every command's op timeout.
async fn write_loop<W: AsyncWrite>(writer: W, mut queue: mpsc::Receiver<Pending>) {
    tokio::pin!(writer);
    let mut out = BytesMut::new();
    let mut held: Option<Pending> = None;
    let timer = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(timer);
    loop {
        let mut first = match held.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        out.clear();
        let value = match ((&mut first).now_or_never(), first.deadline()) {
            (Some(v), _) => v,
            (None, None) => first.await,
            (None, Some(deadline)) => {
                timer.as_mut().reset(deadline.into());
                tokio::select! {
                    biased;
                    v = &mut first => v,
                    () = timer.as_mut() => first.expire(),
                }
            }
        };
        encode(&value, &mut out);
        // Replies already finished go out in the same write; the first one still
        // waiting starts the next.
        while out.len() < WRITE_BATCH {
            let Ok(mut next) = queue.try_recv() else {
                break;
            };
            match (&mut next).now_or_never() {
                Some(v) => encode(&v, &mut out),
                None => {
                    held = Some(next);
                    break;
                }
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

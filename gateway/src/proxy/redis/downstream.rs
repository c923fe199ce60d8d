//! A Redis client connection: commands are decoded as they arrive (pipelined or not),
//! each is dispatched in turn, and replies are written strictly in command order. Bytes
//! that are not RESP get Redis's protocol error and the connection is closed; other
//! connections never notice.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::RedisListener;
use super::frame::Frame;
use super::pending::Pending;
use super::route::dispatch;
use super::session::Session;
use crate::proxy::{READ_CHUNK, WRITE_BATCH};
use crate::redis::command::{Kind, check_arity, lookup, unknown_command, unsupported_command};
use crate::redis::resp::{CommandDecoder, Value};

/// Largest command accepted from a client (Redis's own limit for a bulk string).
pub const DEFAULT_MAX_REQUEST: usize = 512 * 1024 * 1024;
/// Replies owed before the connection stops reading commands.
const PIPELINE_DEPTH: usize = 1024;

/// Serves one client until it closes, QUITs, or sends bytes that are not RESP.
///
/// One task does both directions: it dispatches every whole command it has read, writes
/// the replies that are done at the head of the line, and then waits for whichever comes
/// first, more bytes or the head reply. Replies are waited for in order, so one timer,
/// set to the deadline of the reply at the head, enforces every command's op timeout.
pub async fn serve<S>(stream: S, listener: Arc<RedisListener>, max_request: usize)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let stream = listener.tcp.count(stream);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = CommandDecoder::new(max_request);
    let mut session = Session::new(&listener.config);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = BytesMut::new();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut out = BytesMut::new();
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    // Cleared by end of stream, QUIT or unreadable bytes: the replies already owed are
    // still written before the connection closes.
    let mut reading = true;
    loop {
        while reading && queue.len() < PIPELINE_DEPTH {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    queue.push_back(handle(&listener, &mut session, cmd, &mut scratch).await);
                    reading = !session.closing;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(listener = %listener.name, error = %e, "closing a Redis connection that sent unreadable bytes");
                    queue.push_back(Pending::ready(e.reply()));
                    reading = false;
                }
            }
        }
        // Replies already done go out in one write; the first one still waiting is
        // waited for below.
        while out.len() < WRITE_BATCH {
            let Some(head) = queue.front_mut() else { break };
            let Some(frame) = head.now_or_never() else {
                break;
            };
            queue.pop_front();
            frame.encode(&mut out);
        }
        if !out.is_empty() {
            if writer.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            continue;
        }
        if !reading && queue.is_empty() {
            break;
        }
        let can_read = reading && queue.len() < PIPELINE_DEPTH;
        let deadline = queue.front().and_then(Pending::deadline);
        if let Some(deadline) = deadline {
            timer.as_mut().reset(deadline.into());
        }
        tokio::select! {
            biased;
            Some(frame) = head(&mut queue), if !queue.is_empty() => {
                queue.pop_front();
                frame.encode(&mut out);
            }
            () = timer.as_mut(), if deadline.is_some() => {
                if let Some(late) = queue.pop_front() {
                    late.expire().encode(&mut out);
                }
            }
            read = reader.read_buf(&mut buf), if can_read => {
                if matches!(read, Ok(0) | Err(_)) {
                    reading = false;
                }
                buf.reserve(READ_CHUNK);
            }
        }
    }
    let _ = writer.shutdown().await;
}

/// The reply at the head of the line, when it is done (`None` for an empty line); it
/// stays in the line, for the caller to take off.
async fn head(queue: &mut VecDeque<Pending>) -> Option<Frame> {
    match queue.front_mut() {
        Some(pending) => Some(pending.await),
        None => None,
    }
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

//! A downstream connection of a codec-based protocol: frames are decoded, heartbeats
//! answered, requests routed and sent upstream concurrently, and answers (or local
//! replies in the protocol's own error form) written back. A stream that cannot be
//! decoded gets the codec's error reply, if it has one, and is closed; other
//! connections never notice.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::call::{Backend, CallRecord, call};
use crate::codec::{Codec, Frame, MessageType};
use crate::policy::request::Source;
use crate::proxy::READ_CHUNK;
use crate::telemetry::tcp::Counted;

/// Answers queued for the writer before request tasks wait.
const ANSWER_QUEUE: usize = 1024;

/// An answer on its way to the writer, with its position for in-order protocols.
struct Answer {
    seq: u64,
    bytes: Bytes,
}

/// Serves one downstream connection until the caller closes it or sends bytes the codec
/// cannot read.
pub async fn serve<S, B>(stream: S, source: Source, codec: Arc<dyn Codec>, backend: Arc<B>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    B: Backend,
{
    let stream = Counted::new(stream, backend.tcp_metrics().cloned());
    let (mut reader, writer) = tokio::io::split(stream);
    let (answers, queue) = mpsc::channel::<Answer>(ANSWER_QUEUE);
    let ordered = codec.responses_in_order();
    let writing = tokio::spawn(write_loop(writer, queue, ordered));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut seq = 0u64;
    'read: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Some(answer) =
                        handle(&codec, &backend, source.clone(), frame, seq, &answers)
                        && answers.send(answer).await.is_err()
                    {
                        break 'read;
                    }
                    seq += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(protocol = codec.name(), error = %e, "closing a connection that sent unreadable bytes");
                    if let Some(reply) = codec.error_reply(&buf, &e) {
                        let _ = answers.send(Answer { seq, bytes: reply }).await;
                    }
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
    // Calls in flight still answer before the connection closes.
    drop(answers);
    let _ = writing.await;
}

/// Starts serving one frame; returns an answer that is ready at once (heartbeats), else
/// spawns the call, which sends its answer when done.
fn handle<B: Backend>(
    codec: &Arc<dyn Codec>,
    backend: &Arc<B>,
    source: Source,
    frame: Frame,
    seq: u64,
    answers: &mpsc::Sender<Answer>,
) -> Option<Answer> {
    match frame.metadata.message_type {
        // Every frame yields exactly one answer (maybe empty), so in-order protocols never
        // wait on a position nothing will fill.
        MessageType::Heartbeat => Some(Answer {
            seq,
            bytes: codec.heartbeat_reply(&frame.metadata).unwrap_or_default(),
        }),
        MessageType::Request | MessageType::Oneway => {
            let (codec, backend, answers) = (codec.clone(), backend.clone(), answers.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut record = CallRecord::new(frame.bytes.len());
                let bytes = call(&*codec, &backend, &source, &frame, &mut record).await;
                // A one-way call answers nothing: its place stays empty.
                let bytes = bytes.unwrap_or_default();
                record.took = started.elapsed();
                record.response_bytes = bytes.len();
                backend.record(&frame.metadata, &record);
                let _ = answers.send(Answer { seq, bytes }).await;
            });
            None
        }
        MessageType::Response | MessageType::HeartbeatResponse => {
            tracing::debug!(
                protocol = codec.name(),
                "ignoring a response sent by a caller"
            );
            Some(Answer {
                seq,
                bytes: Bytes::new(),
            })
        }
    }
}

/// Writes answers as they come, or in request order for protocols that need it.
async fn write_loop<W: AsyncWrite>(writer: W, mut queue: mpsc::Receiver<Answer>, ordered: bool) {
    tokio::pin!(writer);
    let mut next = 0u64;
    let mut held: BTreeMap<u64, Bytes> = BTreeMap::new();
    let mut batch = BytesMut::new();
    // Answers already queued go out in one write (see `super::write_batch`).
    let mut take = |answer: Answer, batch: &mut BytesMut| {
        if !ordered {
            batch.extend_from_slice(&answer.bytes);
            return;
        }
        held.insert(answer.seq, answer.bytes);
        while let Some(bytes) = held.remove(&next) {
            batch.extend_from_slice(&bytes);
            next += 1;
        }
    };
    while let Some(first) = queue.recv().await {
        batch.clear();
        take(first, &mut batch);
        while batch.len() < crate::proxy::WRITE_BATCH {
            match queue.try_recv() {
                Ok(answer) => take(answer, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

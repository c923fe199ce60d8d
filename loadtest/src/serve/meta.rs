//! The Dubbo and Thrift connection loop: messages read with the gateway's codec, each
//! call answered from its own task once its wait is over, answers written in the order
//! their waits end (so a caller must match them by id).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use corridor_gateway::codec::{
    Codec, CodecError, Frame, MessageType, dubbo::DubboCodec, thrift::ThriftCodec,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::OwnedWriteHalf},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::debug;

use super::{Backend, dubbo, thrift};

/// Bytes read from a socket at a time: most calls fit in one read.
const READ_CHUNK: usize = 16 * 1024;

/// What the backend does with one message it read.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    /// The `--log-calls` line, for calls.
    pub(crate) log: Option<String>,
    /// The answer, if the message gets one.
    pub(crate) answer: Option<Bytes>,
    /// Whether the answer waits for the call's faults (calls do, heartbeats do not).
    pub(crate) delayed: bool,
}

/// The message protocols this loop serves.
#[derive(Debug, Clone, Copy)]
pub(super) enum Meta {
    Dubbo,
    Thrift,
}

impl Meta {
    /// Reads a message and writes its answer. `fail` says whether this call is answered
    /// with the protocol's error.
    fn read(self, backend: &Backend, frame: &Frame, fail: bool) -> Result<Incoming, CodecError> {
        let name = backend.config.name.as_deref();
        match self {
            Self::Dubbo => dubbo::read(frame, name, fail),
            Self::Thrift => thrift::read(frame, name, fail),
        }
    }
}

/// Serves one Dubbo or Thrift connection until the caller closes it.
pub(super) async fn connection(stream: TcpStream, backend: Arc<Backend>, meta: Meta) {
    let _ = stream.set_nodelay(true);
    let codec: Box<dyn Codec> = match meta {
        Meta::Dubbo => Box::new(DubboCodec::default()),
        Meta::Thrift => Box::new(ThriftCodec::default()),
    };
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut writer = AbortOnDrop(tokio::spawn(write_loop(wr, rx)));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Err(e) = handle(&backend, meta, &frame, &tx) {
                        debug!(error = %e, "unreadable call, closing");
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "bad input, closing");
                    return;
                }
            }
        }
        buf.reserve(READ_CHUNK);
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            // The peer stopped reading answers (or the socket broke): nothing more to do.
            _ = &mut writer.0 => return,
        }
    }
    // The caller is done sending: the answers still waiting go out, then the writer
    // ends with the last sender.
    drop(tx);
    let _ = (&mut writer.0).await;
}

/// Aborts the writer when its connection ends (bad input, shutdown), which closes the
/// socket even while answers are still waiting for their delay.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn handle(
    backend: &Backend,
    meta: Meta,
    frame: &Frame,
    tx: &mpsc::UnboundedSender<Bytes>,
) -> Result<(), CodecError> {
    // Only calls are counted and planned: a heartbeat must not start the stall.
    let is_call = matches!(
        frame.metadata.message_type,
        MessageType::Request | MessageType::Oneway
    );
    let plan = is_call.then(|| backend.faults.plan());
    let incoming = meta.read(backend, frame, plan.is_some_and(|p| p.fail))?;
    if let Some(line) = incoming.log {
        backend.log_call(|| line);
    }
    let Some(answer) = incoming.answer else {
        return Ok(());
    };
    let wait = match plan {
        Some(plan) if incoming.delayed && !plan.wait.is_zero() => plan.wait,
        _ => {
            let _ = tx.send(answer);
            return Ok(());
        }
    };
    let tx = tx.clone();
    let due = tokio::time::Instant::now() + wait;
    tokio::spawn(async move {
        super::clock::sleep_until(due).await;
        let _ = tx.send(answer);
    });
    Ok(())
}

/// Writes answers as they come, several per write when they queue up.
async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        batch.extend_from_slice(&first);
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
        }
        if wr.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = wr.shutdown().await;
}

//! The one proxy path of every codec-based protocol (Dubbo, Thrift, ...): downstream
//! frames are decoded by the listener's [`Codec`](crate::codec::Codec), routed on their
//! metadata, and sent over shared upstream connections ([`upstream::Multiplexed`]) that
//! rewrite request ids and match responses back. [`call`] is the one call path
//! (admission, routing, mirrors, retries, timeouts), [`downstream`] a caller's
//! connection, [`backend`] the listener's wiring to the snapshot and telemetry.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub mod backend;
pub mod call;
pub mod downstream;
pub mod upstream;

/// Writes `first` and whatever else is already queued (up to `WRITE_BATCH` bytes) with
/// one write; `batch` is scratch space kept across calls.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    first: Bytes,
    queue: &mut mpsc::Receiver<Bytes>,
    batch: &mut BytesMut,
) -> std::io::Result<()> {
    let Ok(second) = queue.try_recv() else {
        return writer.write_all(&first).await;
    };
    batch.clear();
    batch.extend_from_slice(&first);
    batch.extend_from_slice(&second);
    while batch.len() < crate::proxy::WRITE_BATCH {
        match queue.try_recv() {
            Ok(more) => batch.extend_from_slice(&more),
            Err(_) => break,
        }
    }
    writer.write_all(batch).await
}

#[cfg(test)]
mod tests;

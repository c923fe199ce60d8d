//! Opaque TCP proxying: one upstream connection per downstream connection.

use std::sync::Arc;

use tokio::net::TcpStream;

use super::TcpProxyListener;
use super::exchange::EndpointActive;
use crate::cluster::lb;

/// Proxies one accepted connection to an endpoint of the listener's cluster.
pub async fn serve(l: Arc<TcpProxyListener>, mut down: TcpStream) {
    l.opened.increment(1);
    let snap = l.shared.snapshot.load_full();
    let result = async {
        let Some(cluster) = snap.clusters.get(&l.cluster) else {
            return Err(format!("cluster {} not found", l.cluster));
        };
        let ep = lb::pick(cluster, &[], None, "", &mut rand::rng()).ok_or("no healthy upstream")?;
        let _active = EndpointActive::new(ep.clone());
        let mut up =
            match tokio::time::timeout(cluster.config.connect_timeout, TcpStream::connect(ep.addr))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(format!("connect to {}: {e}", ep.addr)),
                Err(_) => return Err(format!("connect to {} timed out", ep.addr)),
            };
        let _ = up.set_nodelay(true);
        let _ = down.set_nodelay(true);
        match tokio::io::copy_bidirectional(&mut down, &mut up).await {
            Ok((to_up, to_down)) => {
                l.sent.increment(to_up);
                l.received.increment(to_down);
                Ok(())
            }
            Err(e) => Err(format!("relay with {}: {e}", ep.addr)),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(listener = %l.name, error = %e, "tcp proxy connection failed");
    }
    l.closed.increment(1);
}

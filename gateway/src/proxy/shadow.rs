//! HTTP and gRPC mirroring: the copy of a request sent to each of its route's sampled
//! mirror clusters. The copy carries the upstream head the real request got (headers
//! cleaned, `x-forwarded-*` set) with `-shadow` appended to its authority, and the body
//! the tries read, through a [`Tee`]; a body past the replay limit is not copied, and
//! the copy is skipped and counted. Sending, the breaker and the bounds are
//! `policy::mirror`'s, shared with Dubbo and Thrift.

use std::sync::Arc;

use http::header::HOST;
use http::{HeaderValue, Request, Uri, Version};
use http_body_util::BodyExt;

use super::body::{RequestBody, Tee};
use crate::cluster::pool::Conn;
use crate::cluster::{ClusterState, Snapshot, lb};
use crate::policy::mirror;
use crate::telemetry::metrics::Metrics;

/// What every copy of one request shares.
pub(super) struct Copy<'a> {
    /// The upstream request head (headers as sent upstream, before the host is set).
    pub parts: &'a http::request::Parts,
    /// The authority the real request carries upstream.
    pub host: &'a HeaderValue,
    /// Its path and query, after rewrites.
    pub uri: &'a Uri,
}

/// Sends a copy of the request to each of `clusters`, in the background. `tee` gives
/// the body when there is one; without it the copy has none.
pub(super) fn launch(
    snap: &Arc<Snapshot>,
    metrics: &Arc<Metrics>,
    clusters: Vec<Arc<str>>,
    copy: &Copy<'_>,
    mut tees: impl FnMut() -> Option<Tee>,
) {
    let shadow = mirror::shadow_host(copy.host.to_str().unwrap_or(""));
    for cluster in clusters {
        let Some(state) = snap.clusters.get(&*cluster) else {
            mirror::skipped(Some(metrics), &cluster, "unknown cluster");
            continue;
        };
        let request = head(copy, &shadow, state.config.http2);
        let tee = tees();
        let target = state.clone();
        let metrics_for_body = metrics.clone();
        let name = cluster.clone();
        mirror::spawn(cluster, mirror::admit(state), Some(metrics), async move {
            let body = match tee {
                None => RequestBody::Empty,
                Some(tee) => match tee.body().await {
                    Some(copied) => RequestBody::Copy(Some(copied)),
                    None => {
                        mirror::skipped(Some(&metrics_for_body), &name, "body not copied");
                        return Ok(());
                    }
                },
            };
            send(&target, request.map(|()| body)).await
        });
    }
}

/// The copy's head for a cluster speaking HTTP/2 or HTTP/1.1.
fn head(copy: &Copy<'_>, shadow: &str, http2: bool) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = copy.parts.method.clone();
    *req.headers_mut() = copy.parts.headers.clone();
    let pq = copy.uri.path_and_query().map_or("/", |p| p.as_str());
    if http2 {
        *req.version_mut() = Version::HTTP_2;
        req.headers_mut().remove(HOST);
        if let Ok(uri) = Uri::try_from(format!("http://{shadow}{pq}")) {
            *req.uri_mut() = uri;
        }
    } else {
        *req.version_mut() = Version::HTTP_11;
        if let Ok(host) = HeaderValue::from_str(shadow) {
            req.headers_mut().insert(HOST, host);
        }
        if let Ok(uri) = Uri::try_from(pq) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Sends one copy to an endpoint of `cluster` and reads the answer to its end, so an
/// HTTP/1.1 connection can be pooled again; the answer itself is dropped.
async fn send(cluster: &Arc<ClusterState>, req: Request<RequestBody>) -> Result<(), String> {
    let ep = lb::pick(cluster, &[], None, "", &mut rand::rng())
        .ok_or_else(|| format!("no healthy endpoint in {}", cluster.config.name))?;
    let (conn, _) = ep
        .pool
        .checkout(cluster.config.connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    match conn {
        Conn::H1(mut s) => {
            let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            ep.pool.checkin(s);
        }
        Conn::H2(mut s) => {
            let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

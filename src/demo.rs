//! Demo backends for the example mesh: one small HTTP server (HTTP/1.1 and h2c) per
//! endpoint listed in the example EndpointSlices, answering with the pod it stands for.

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use serde::Deserialize;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpListener;

/// One demo pod: where it listens and who it claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPod {
    /// `<pod name>` from the endpoint's targetRef (or the address when absent).
    pub pod: String,
    /// `<service>.<namespace>`, from the slice's `kubernetes.io/service-name` label.
    pub service: String,
    /// Pod IP and target port.
    pub addr: SocketAddr,
}

/// Reads every EndpointSlice in the manifests under `dir` and lists the endpoints to serve.
pub fn pods_in(dir: &Path) -> anyhow::Result<Vec<DemoPod>> {
    let mut pods = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if !matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc)
                .with_context(|| format!("parsing {}", path.display()))?;
            for pod in slice_pods(&value) {
                pods.insert(pod.addr, pod);
            }
        }
    }
    Ok(pods.into_values().collect())
}

fn slice_pods(doc: &serde_yaml_ng::Value) -> Vec<DemoPod> {
    if doc["kind"].as_str() != Some("EndpointSlice") {
        return Vec::new();
    }
    let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    let svc = doc["metadata"]["labels"]["kubernetes.io/service-name"]
        .as_str()
        .unwrap_or("unknown");
    let ports: Vec<u16> = doc["ports"]
        .as_sequence()
        .map(|ps| ps.iter().filter_map(|p| p["port"].as_u64()).filter_map(|p| u16::try_from(p).ok()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for ep in doc["endpoints"].as_sequence().into_iter().flatten() {
        let pod_name = ep["targetRef"]["name"].as_str();
        for addr in ep["addresses"].as_sequence().into_iter().flatten() {
            let Some(ip) = addr.as_str().and_then(|a| a.parse().ok()) else { continue };
            for port in &ports {
                out.push(DemoPod {
                    pod: pod_name.map(str::to_string).unwrap_or_else(|| format!("{ip}")),
                    service: format!("{svc}.{ns}"),
                    addr: SocketAddr::new(ip, *port),
                });
            }
        }
    }
    out
}

/// Binds and serves one demo pod until the task is dropped.
pub async fn serve(pod: DemoPod) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(pod.addr)
        .await
        .with_context(|| format!("binding demo pod {} on {}", pod.pod, pod.addr))?;
    let body = Bytes::from(format!("hello from {} ({})\n", pod.pod, pod.service));
    let name = pod.pod.clone();
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let body = body.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let resp = Response::builder()
                        .header("content-type", "text/plain")
                        .header("x-served-by", name.as_str())
                        .body(Full::new(body.clone()));
                    async move { resp }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_endpoint_of_the_examples() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let pods = pods_in(&dir).unwrap();
        assert!(pods.iter().any(|p| p.pod == "reviews-v2-9c1e3" && p.service == "reviews.default"));
        assert!(pods.iter().all(|p| p.addr.ip().is_loopback()));
        assert_eq!(pods.iter().filter(|p| p.service == "ratings.default").count(), 2);
    }
}

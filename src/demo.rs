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

/// What a demo pod speaks, from its EndpointSlice port (name prefix or appProtocol, as
/// the controller decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoProtocol {
    /// HTTP/1.1 and h2c (and anything else: a TCP client gets an HTTP answer).
    Http,
    /// Dubbo2: served by corridor-load's Dubbo echo backend.
    Dubbo,
    /// Thrift: served by corridor-load's Thrift echo backend.
    Thrift,
    /// Redis: served by a `redis-server` child process, when one is on PATH.
    Redis,
}

impl DemoProtocol {
    fn of(port: &serde_yaml_ng::Value) -> DemoProtocol {
        let name = port["name"].as_str().unwrap_or("");
        let app = port["appProtocol"].as_str().unwrap_or("");
        let dubbo = ["tcp-dubbo", "tcp-metaprotocol-dubbo", "dubbo"];
        if app == "dubbo" || dubbo.iter().any(|p| name == *p || name.starts_with(&format!("{p}-"))) {
            DemoProtocol::Dubbo
        } else if app == "thrift" || name == "tcp-thrift" || name.starts_with("tcp-thrift-") || name.starts_with("tcp-metaprotocol-thrift") {
            DemoProtocol::Thrift
        } else if app == "redis" || name == "redis" || name.starts_with("redis-") || name.starts_with("tcp-redis-") {
            DemoProtocol::Redis
        } else {
            DemoProtocol::Http
        }
    }
}

/// One demo pod: where it listens and who it claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPod {
    /// `<pod name>` from the endpoint's targetRef (or the address when absent).
    pub pod: String,
    /// `<service>.<namespace>`, from the slice's `kubernetes.io/service-name` label.
    pub service: String,
    /// Pod IP and target port.
    pub addr: SocketAddr,
    /// What it speaks.
    pub protocol: DemoProtocol,
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
    let ports: Vec<(u16, DemoProtocol)> = doc["ports"]
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| Some((u16::try_from(p["port"].as_u64()?).ok()?, DemoProtocol::of(p))))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for ep in doc["endpoints"].as_sequence().into_iter().flatten() {
        let pod_name = ep["targetRef"]["name"].as_str();
        for addr in ep["addresses"].as_sequence().into_iter().flatten() {
            let Some(ip) = addr.as_str().and_then(|a| a.parse().ok()) else { continue };
            for (port, protocol) in &ports {
                out.push(DemoPod {
                    pod: pod_name.map(str::to_string).unwrap_or_else(|| format!("{ip}")),
                    service: format!("{svc}.{ns}"),
                    addr: SocketAddr::new(ip, *port),
                    protocol: *protocol,
                });
            }
        }
    }
    out
}

/// A running demo pod.
#[derive(Debug)]
pub enum Running {
    /// The HTTP server task.
    Http(tokio::task::JoinHandle<()>),
    /// A corridor-load echo backend.
    Echo(corridor_load::serve::Echo),
    /// A child process (redis-server).
    Process(tokio::process::Child),
    /// Nothing could serve it (the reason was printed).
    Missing,
}

impl Running {
    /// Stops serving.
    pub async fn stop(self) {
        match self {
            Running::Http(task) => task.abort(),
            Running::Echo(echo) => echo.shutdown().await,
            Running::Process(mut child) => {
                let _ = child.kill().await;
            }
            Running::Missing => {}
        }
    }
}

/// Binds and serves one demo pod until stopped: an HTTP server naming the pod, or for
/// Dubbo/Thrift pods corridor-load's echo backend answering `"<pod>: <argument>"`.
pub async fn serve(pod: DemoPod) -> anyhow::Result<Running> {
    let protocol = match pod.protocol {
        DemoProtocol::Http => return serve_http(pod).await.map(Running::Http),
        DemoProtocol::Dubbo => corridor_load::serve::Protocol::Dubbo,
        DemoProtocol::Thrift => corridor_load::serve::Protocol::Thrift,
        DemoProtocol::Redis => return serve_redis(&pod).await,
    };
    let config = corridor_load::serve::EchoConfig {
        protocol,
        listen: pod.addr,
        name: Some(pod.pod.clone()),
        delay: std::time::Duration::ZERO,
        jitter: std::time::Duration::ZERO,
        stall: None,
        error_rate: 0.0,
        log_calls: false,
    };
    let echo = corridor_load::serve::start(config)
        .await
        .with_context(|| format!("serving demo pod {} on {}", pod.pod, pod.addr))?;
    Ok(Running::Echo(echo))
}

/// Runs `redis-server` for a Redis pod (no persistence), or says how to get one.
async fn serve_redis(pod: &DemoPod) -> anyhow::Result<Running> {
    let spawned = tokio::process::Command::new("redis-server")
        .args(["--bind", &pod.addr.ip().to_string(), "--port", &pod.addr.port().to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    match spawned {
        Ok(child) => Ok(Running::Process(child)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "redis-server is not on PATH: {} ({}) has no backend. Install it (Debian: `sudo apt install redis-server`) and run `corridor up` again.",
                pod.pod, pod.service
            );
            Ok(Running::Missing)
        }
        Err(e) => Err(anyhow::anyhow!("starting redis-server for {}: {e}", pod.pod)),
    }
}

async fn serve_http(pod: DemoPod) -> anyhow::Result<tokio::task::JoinHandle<()>> {
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
        let greeter: Vec<_> = pods.iter().filter(|p| p.service == "greeter.default").collect();
        assert_eq!(greeter.len(), 2);
        assert!(greeter.iter().all(|p| p.protocol == DemoProtocol::Dubbo));
        assert!(pods.iter().any(|p| p.service == "calculator.default" && p.protocol == DemoProtocol::Thrift));
        assert!(pods.iter().filter(|p| p.service == "reviews.default").all(|p| p.protocol == DemoProtocol::Http));
        assert!(pods.iter().any(|p| p.service == "cache.default" && p.protocol == DemoProtocol::Redis));
    }
}

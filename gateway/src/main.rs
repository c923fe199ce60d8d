//! corridor-gateway: the shared east-west L7 gateway, configured over xDS.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use corridor_gateway::app::{self, Config};
use corridor_gateway::config::{self, parse_duration};
use corridor_gateway::telemetry;

/// mimalloc rather than the system allocator: the data path allocates small, short-lived
/// blocks per request (reply slots, argument lists, header maps) from one thread and
/// frees them from another, which glibc's malloc serves at several times the cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "corridor-gateway",
    version,
    about = "Corridor's east-west L7 gateway, configured over xDS"
)]
struct Args {
    /// Control plane (ADS) address, e.g. 127.0.0.1:15010.
    #[arg(long, env = "CORRIDOR_XDS")]
    xds: String,
    /// Admin listen address (port 0 picks a free port).
    #[arg(long, default_value = config::DEFAULT_ADMIN)]
    admin: SocketAddr,
    /// Also serve the read-only probes (/ready, /healthz, /metrics) here, e.g.
    /// 0.0.0.0:15020 in a cluster; the admin address keeps everything else on localhost.
    #[arg(long)]
    probe_listen: Option<SocketAddr>,
    /// Node id sent to the control plane (default: hostname-pid).
    #[arg(long)]
    node_id: Option<String>,
    /// How long in-flight requests may take to finish on shutdown.
    #[arg(long, default_value = "15s", value_parser = parse_duration_arg)]
    drain_timeout: Duration,
    /// Log filter (RUST_LOG syntax), changeable at runtime with POST /logging?level=.
    #[arg(long, default_value = config::DEFAULT_LOG_LEVEL)]
    log_level: String,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Largest Dubbo or Thrift message accepted, in bytes, framing included.
    #[arg(long, default_value_t = corridor_gateway::codec::DEFAULT_MAX_MESSAGE)]
    max_rpc_message_bytes: usize,
    /// Largest Redis command accepted from a client, in bytes.
    #[arg(long, default_value_t = corridor_gateway::proxy::redis::downstream::DEFAULT_MAX_REQUEST)]
    max_redis_request_bytes: usize,
    /// The zone this gateway runs in (its node's topology.kubernetes.io/zone); clusters
    /// with zone-aware balancing prefer endpoints there. Empty: no zone preference.
    #[arg(long, env = "CORRIDOR_ZONE", default_value = "")]
    zone: String,
    /// Export spans over OTLP/gRPC to this collector (host:port or http://host:port).
    #[arg(long, env = "CORRIDOR_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Percentage (0-100) of requests without a traceparent that start a sampled trace;
    /// requests with one keep their caller's sampling decision.
    #[arg(long, default_value_t = config::DEFAULT_TRACE_SAMPLING, value_parser = parse_percent)]
    trace_sampling: f64,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let log = telemetry::init_tracing(&args.log_level)?;
    let mut config = Config::new(args.xds);
    config.admin_address = args.admin;
    config.probe_address = args.probe_listen;
    config.node_id = args.node_id.unwrap_or_else(config::default_node_id);
    config.drain_timeout = args.drain_timeout;
    config.log_level = args.log_level;
    config.worker_threads = args.worker_threads;
    config.max_rpc_message_bytes = args.max_rpc_message_bytes;
    config.max_redis_request_bytes = args.max_redis_request_bytes;
    config.zone = args.zone;
    config.otlp_endpoint = args.otlp_endpoint;
    config.trace_sampling = args.trace_sampling;
    config.log_handle = Some(log);

    // One worker: the current-thread scheduler does the same job without the cross-thread
    // synchronisation of the work-stealing one.
    let mut rt = match config.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let bound = app::build(config).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "corridor-gateway bound admin={}", bound.admin_addr)?;
        out.flush()?;
        drop(out);
        shutdown_signal().await;
        bound.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! `corridor up`: demo backends for every endpoint of the example manifests, the
//! controller reading them, and a gateway fed by it, all in this process.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use corridor_controller::app as controller;
use corridor_gateway::{app as gateway, telemetry};

use crate::demo;

/// How long the gateway may take to receive and apply its first full config.
const READY_PATIENCE: Duration = Duration::from_secs(10);

/// Flags of `corridor up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory of manifests describing the mesh (watched for changes).
    #[arg(long, default_value = "examples")]
    examples: PathBuf,
    /// Where the controller serves xDS.
    #[arg(long, default_value = corridor_controller::config::DEFAULT_XDS_LISTEN)]
    xds_listen: SocketAddr,
    /// Gateway admin address.
    #[arg(long, default_value = corridor_gateway::config::DEFAULT_ADMIN)]
    admin: SocketAddr,
    /// Range of gateway addresses for meshed services.
    #[arg(long, default_value = corridor_controller::config::DEFAULT_GATEWAY_CIDR)]
    gateway_cidr: String,
    /// Do not start demo backends (the endpoints are served by something else).
    #[arg(long)]
    no_backends: bool,
    /// Log filter.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// Runs the example mesh until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let log = telemetry::init_tracing(&args.log_level)?;

    let mut backends = Vec::new();
    if !args.no_backends {
        for pod in demo::pods_in(&args.examples)? {
            backends.push(demo::serve(pod).await?);
        }
    }

    let mut cc = controller::Config::new(&args.examples, args.xds_listen);
    cc.gateway_cidr = args.gateway_cidr.parse().map_err(|e| anyhow::anyhow!("--gateway-cidr {}: {e}", args.gateway_cidr))?;
    let control = controller::build(cc).await.context("starting the controller")?;

    let mut gc = gateway::Config::new(control.xds_addr.to_string());
    gc.admin_address = args.admin;
    gc.log_handle = Some(log);
    let gw = gateway::build(gc).await.context("starting the gateway")?;

    let deadline = tokio::time::Instant::now() + READY_PATIENCE;
    while !gw.ready().is_ready() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the gateway is not ready after {READY_PATIENCE:?}: pending {:?}", gw.ready().pending());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("Corridor is up: {} demo pods, controller xDS on {}, gateway admin on http://{}", backends.len(), control.xds_addr, gw.admin_addr);
    println!("Send requests through the gateway:");
    for (name, addr) in gw.listeners() {
        println!("  curl -s http://{addr}/        # {name}");
    }
    println!("Edit the files in {} and watch the routes change. Ctrl-C stops.", args.examples.display());

    shutdown_signal().await;
    gw.shutdown().await;
    control.shutdown().await?;
    for b in backends {
        b.abort();
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

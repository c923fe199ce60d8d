//! `corridor up`: demo backends for every endpoint of the example manifests, the
//! controller reading them, a gateway and a cluster DNS fed by it, all in this process.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use corridor_controller::app as controller;
use corridor_dns::app as dns;
use corridor_dns::zone::Lookup;
use corridor_gateway::{app as gateway, telemetry};

use crate::demo;

/// How long the gateway may take to receive and apply its first full config.
const READY_PATIENCE: Duration = Duration::from_secs(10);

/// corridor-dns's address locally: 5353 needs no privileges, unlike a cluster's port 53.
pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:5353";

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
    /// Where corridor-dns serves DNS (UDP and TCP).
    #[arg(long, default_value = DEFAULT_DNS_LISTEN)]
    dns_listen: SocketAddr,
    /// Do not start corridor-dns.
    #[arg(long)]
    no_dns: bool,
    /// Do not start demo backends (the endpoints are served by something else).
    #[arg(long)]
    no_backends: bool,
    /// Log filter (hickory's per-query lines are left out by default).
    #[arg(long, default_value = corridor_dns::config::DEFAULT_LOG_LEVEL)]
    log_level: String,
}

/// Runs the example mesh until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let log = telemetry::init_tracing(&args.log_level)?;

    let mut backends = Vec::new();
    let pods = if args.no_backends { Vec::new() } else { demo::pods_in(&args.examples)? };
    for pod in &pods {
        backends.push(demo::serve(pod.clone()).await?);
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
        println!("  {}        # {name}", call_hint(&name, addr, &pods));
    }
    let dns = if args.no_dns {
        None
    } else {
        let mut dc = dns::Config::new(control.xds_addr.to_string(), args.dns_listen);
        dc.log_level = args.log_level.clone();
        let bound = dns::build(dc).await.context("starting corridor-dns")?;
        let hints = controller::service_addresses(&controller::Config::new(&args.examples, control.xds_addr));
        wait_for_rewrite(&bound, hints.iter().next()).await?;
        println!("Resolve through corridor-dns (meshed names answer their gateway address; health http://{}/health, metrics http://{}/metrics):", bound.edges.health, bound.edges.metrics);
        for (host, addr) in &hints {
            println!("  dig @{} -p {} {host} +short        # {addr}", bound.dns_addr.ip(), bound.dns_addr.port());
        }
        Some(bound)
    };

    println!("Edit the files in {} and watch the routes change. Ctrl-C stops.", args.examples.display());

    shutdown_signal().await;
    if let Some(d) = dns {
        d.shutdown().await;
    }
    gw.shutdown().await;
    control.shutdown().await?;
    for b in backends {
        b.stop().await;
    }
    Ok(())
}

/// The command that calls listener `name` (`<service>.<ns>.svc...:<port>`) on `addr`: a
/// corridor-load Dubbo or Thrift call when the service's demo pods speak one, else curl.
fn call_hint(name: &str, addr: SocketAddr, pods: &[demo::DemoPod]) -> String {
    let host = name.rsplit_once(':').map_or(name, |(h, _)| h);
    let protocol = pods
        .iter()
        .find(|p| host.starts_with(&format!("{}.svc.", p.service)) && p.addr.port() == addr.port())
        .map(|p| p.protocol);
    match protocol {
        Some(demo::DemoProtocol::Dubbo) => format!(
            "corridor-load dubbo --target {addr} --interface org.apache.dubbo.demo.DemoService --method sayHello --arg world --rate 1 --connections 1 --duration 1s"
        ),
        Some(demo::DemoProtocol::Thrift) => {
            format!("corridor-load thrift --target {addr} --method echo --rate 1 --connections 1 --duration 1s")
        }
        Some(demo::DemoProtocol::Redis) => format!("redis-cli -h {} -p {} SET greeting hello", addr.ip(), addr.port()),
        _ => format!("curl -s http://{addr}/"),
    }
}

/// Waits until corridor-dns answers a meshed name with its gateway address (the name
/// table arrived and says the gateway pool is available), so the printed `dig` line shows
/// the rewrite.
async fn wait_for_rewrite(dns: &dns::Bound, meshed: Option<(&String, &std::net::Ipv4Addr)>) -> anyhow::Result<()> {
    let Some((host, addr)) = meshed else { return Ok(()) };
    let name = hickory_server::proto::rr::Name::from_ascii(format!("{host}."))?;
    let deadline = tokio::time::Instant::now() + READY_PATIENCE;
    loop {
        if let Some(Lookup::Answer(a)) = dns.lookup(&name, hickory_server::proto::rr::RecordType::A)
            && a.answers.iter().any(|r| r.data.to_string() == addr.to_string())
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("corridor-dns does not answer {host} with its gateway address {addr} after {READY_PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

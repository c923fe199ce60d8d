//! corridor-dns: the cluster DNS that answers meshed names with the gateway address.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use corridor_dns::app::{self, Config};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("--log-level {:?} is not a log filter", config.log_level))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();

    // One worker: the current-thread scheduler does the same work without cross-thread
    // hand-offs.
    let mut rt = match config.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt.enable_all().build().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let bound = app::build(config).await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "corridor-dns bound dns={} health={} ready={} metrics={}",
            bound.dns_addr, bound.edges.health, bound.edges.ready, bound.edges.metrics
        )?;
        out.flush()?;
        drop(out);
        shutdown_signal().await;
        tracing::info!("shutting down");
        bound.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

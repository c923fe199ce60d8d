//! `corridor-controller`: parse flags, start the controller, print the bound addresses,
//! stop on SIGTERM/SIGINT (or, with `--uninstall-coredns-hook`, remove the CoreDNS hook
//! and exit).

use std::io::{IsTerminal, Write};

use clap::Parser;
use corridor_controller::app::{self, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| anyhow::anyhow!("--log-level {:?}: {e}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    if config.cluster.uninstall_coredns_hook {
        app::uninstall_coredns_hook(&config).await?;
        return Ok(());
    }
    let bound = app::build(config).await?;
    {
        let mut out = std::io::stdout().lock();
        match bound.probe_addr {
            Some(probe) => writeln!(
                out,
                "corridor-controller bound xds={} probe={probe}",
                bound.xds_addr
            )?,
            None => writeln!(out, "corridor-controller bound xds={}", bound.xds_addr)?,
        }
        out.flush()?;
    }
    let handle = bound.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        handle.shutdown();
    });
    bound.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

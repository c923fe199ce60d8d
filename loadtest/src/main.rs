//! corridor-load: the load-test harness SREs run against the mesh.
//!
//! Today it drives HTTP/1.1 keep-alive load, either open-loop at a constant rate (latency
//! measured from each request's intended send time, so a stalled server cannot hide its
//! queueing: no coordinated omission) or closed-loop at maximum throughput.

mod http;
mod report;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "corridor-load", about = "Load-test harness for Corridor and its peers")]
struct Flags {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HTTP/1.1 keep-alive load against one URL.
    Http(http::HttpArgs),
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    match flags.command {
        Command::Http(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.max(1))
                .enable_all()
                .build()?;
            let result = rt.block_on(http::run(&args))?;
            report::print(&result, args.json)?;
            rt.shutdown_timeout(Duration::from_secs(1));
            if result.errors > 0 && args.fail_on_error {
                anyhow::bail!("{} requests failed", result.errors);
            }
            Ok(())
        }
    }
}

//! corridor-load: the load-test harness SREs run against the mesh.
//!
//! Not built yet (issue "corridor-load"); until then `loadtest/bench-http.sh` drives wrk.

use clap::Parser;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "corridor-load", about = "Load-test harness (not implemented yet)")]
struct Flags {}

fn main() -> anyhow::Result<()> {
    let _flags = Flags::parse();
    anyhow::bail!("corridor-load is not implemented yet; use loadtest/bench-http.sh")
}
